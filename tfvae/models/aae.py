"""Adversarial Autoencoders (Makhzani et al. 2016).

An autoencoder whose code distribution is shaped by a GAN in latent space: a discriminator D
tells prior samples z ~ p(z) ("real") from codes z ~ q(z|x) ("fake"), and the encoder, playing
the generator, learns to fool it, so that the aggregated posterior q(z) = ∫ q(z|x) p_data(x) dx
matches p(z). The prior only has to be sampled, which is why a swiss roll works as well as a
Gaussian. Each train step runs the paper's two phases (Sec. 2) as three `TrainingPhase`s of
`GenerativeModel`, each with its own optimizer:

1. reconstruction: encoder and decoder minimize -log p(x|z), summed over pixels (nats/example);
2. discriminator: D minimizes the cross-entropy of prior samples (label 1) against codes
   (label 0), `objectives.discriminator_loss` (Goodfellow et al. 2014, Eq. 1);
3. generator: the encoder minimizes the non-saturating `objectives.generator_loss`, -log D(z).

Labels (Sec. 2.3 and 5 of the paper) enter through `label_mode`: "discriminator" gives D a
one-hot of the label (an extra slot for unlabelled examples) and draws each labelled example's
prior sample from its class's part of the prior (`Prior.sample_for_labels`); "decoder" gives the
decoder the one-hot, so the code is left with the style.

`SemiSupervisedAAE` (Sec. 5 and 6) splits the code into a class y, q(y|x) categorical, and a
style z, with a discriminator for each; a fourth phase fits q(y|x) to the labelled examples, and
without labels the classes are clusters. `DimensionalityReductionAAE` (Sec. 7) maps y by learned
cluster heads into the style's space and adds the two. What the forms share (no density, the
observation model, the discriminators' noisy input, the GAN terms) is written once, in
`_AdversarialAutoencoderBase`.
"""
import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import distributions, likelihoods, networks, objectives
from tfvae.models.base import (GenerativeModel, TrainingPhase, discriminator_terms,
                               labelled_classification_terms, labelled_count,
                               noisy_discriminator_logits)

tfd = tfp.distributions

__all__ = ["AdversarialAutoencoder", "SemiSupervisedAAE", "DimensionalityReductionAAE"]

POSTERIORS = ("deterministic", "gaussian", "universal")
LABEL_MODES = (None, "discriminator", "decoder")
#: The paper's MNIST networks (Makhzani et al. 2016, Appendix A): two ReLU layers of 1000 units.
DEFAULT_HIDDEN_UNITS = (1000, 1000)

_NO_DENSITY = (
    "{name} has no density: the adversarial regularizer matches the aggregated posterior to the "
    "prior without a bound on log p(x), so there is nothing to evaluate. Estimate log p(x) from "
    "samples instead, as the paper does (Sec. 3): tfvae.evaluation.parzen_log_likelihood("
    "model.sample(10000, seed=0), x_test, validation=x_validation).")


class _AdversarialAutoencoderBase(GenerativeModel):
    """What every form of the adversarial autoencoder shares: no density, the observation model
    p(x|decoder output) and its reconstruction term, the discriminators' noisy input, the
    weights of the adversarial terms, label vectors for sampling, and their configuration."""

    has_density = False
    #: Constructor arguments that hold nested Keras objects (deserialized by `from_config`).
    nested_config_keys = ("encoder", "decoder", "likelihood")

    def __init__(self, input_shape, *, likelihood="bernoulli", adversarial_weight=1.0,
                 discriminator_noise=0.1, seed=None, **kwargs):
        super().__init__(input_shape, seed=seed, **kwargs)
        self.adversarial_weight = float(adversarial_weight)
        self.discriminator_noise = float(discriminator_noise)
        if self.adversarial_weight < 0 or self.discriminator_noise < 0:
            raise ValueError(f"{type(self).__name__}: adversarial_weight and discriminator_noise "
                             f"must be >= 0; got {adversarial_weight!r}, {discriminator_noise!r}.")
        self.observation_model = likelihoods.get(likelihood)

    # ----------------------------------------------------------------- networks
    def discriminator_logits(self, network, codes, seed=None, training=False, condition=None):
        """A discriminator's logits `[B]` for codes `[B, d]`, with noise of std
        `discriminator_noise` on the codes in training (see `noisy_discriminator_logits`)."""
        return noisy_discriminator_logits(network, codes, self.discriminator_noise, seed, training,
                                          condition)

    def decoder_output(self, inputs, training=False):
        """The decoder on inputs `[..., d]` → the likelihood's parameters `[..., *param_shape]`."""
        lead = tf.shape(inputs)[:-1]
        params = self.decoder(tf.reshape(inputs, [-1, inputs.shape[-1]]), training=training)
        param_shape = self.observation_model.param_shape(self.data_shape)
        params = tf.reshape(params, tf.concat([lead, param_shape], axis=0))
        return tf.ensure_shape(params, inputs.shape[:-1].concatenate(param_shape))

    def reconstruction_loss(self, params, x):
        """-log p(x | params), summed over the pixels: nats per example `[B]`."""
        return -self.observation_model.log_prob(params, x, len(self.data_shape))

    def class_labels(self, labels, num_samples, num_classes, *, allow_unlabelled=False,
                     method="sample"):
        """`labels` (int `[N]`, or one int for all N) as checked int32 `[N]`, N = num_samples."""
        labels = tf.convert_to_tensor(labels)
        if labels.shape.rank == 0 and labels.dtype.is_integer:
            labels = tf.fill(tf.reshape(num_samples, [1]), labels)
        labels = self.check_labels(labels, num_classes, name="labels",
                                   allow_unlabelled=allow_unlabelled)
        if isinstance(num_samples, int) and labels.shape[0] not in (None, num_samples):
            raise ValueError(f"{type(self).__name__}.{method}: expected one label per sample "
                             f"({num_samples}); got {labels.shape[0]} labels.")
        return labels

    # ----------------------------------------------------------------- no density
    def observation_support(self):
        return self.observation_model.support

    def observation_name(self):
        return type(self.observation_model).__name__

    def log_likelihood(self, *args, **kwargs):
        """Not available: the AAE has no density (see `tfvae.evaluation.parzen_log_likelihood`)."""
        raise NotImplementedError(_NO_DENSITY.format(name=type(self).__name__))

    def log_importance_weights(self, *args, **kwargs):
        raise NotImplementedError(_NO_DENSITY.format(name=type(self).__name__))

    # ----------------------------------------------------------------- saving
    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            likelihood=keras.saving.serialize_keras_object(self.observation_model),
            adversarial_weight=self.adversarial_weight,
            discriminator_noise=self.discriminator_noise)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class AdversarialAutoencoder(_AdversarialAutoencoderBase):
    """Adversarial autoencoder (Makhzani et al. 2016) in its unsupervised and supervised forms.

    Args:
        input_shape: shape of one observation, e.g. `(28, 28, 1)`.
        latent_dim: size D of the code z.
        encoder, decoder, discriminator: bodies from `tfvae.networks` (the model sizes their last
            layer) or Keras layers with the right shapes. Default for all three: the paper's
            `mlp([1000, 1000], activation="relu")`. The discriminator has no batch norm: batch
            norm in D broke training in trials here (D stuck at 50 %, or the codes drifted); its
            input gets Gaussian noise instead (`discriminator_noise`).
        prior: p(z) as a name from `tfvae.distributions` ("standard_normal",
            "mixture_of_gaussians", "swiss_roll", ...), a `tfvae.distributions.Prior`, a TFP
            distribution with event shape `[latent_dim]` (→ `DistributionPrior`), or a sampler
            `f(num_samples, seed) -> [num_samples, latent_dim]` (→ `SamplerPrior`; see there
            what saves). It is only sampled; its weights, if any, are not trained.
        posterior: q(z|x).
            "deterministic": z = f(x), the paper's main form.
            "gaussian": z = μ(x) + σ(x)·ε (reparameterized; the encoder outputs 2·D).
            "universal": z = f(x, η), η ~ N(0, I_noise_dim) concatenated to the flattened input
            (the encoder body must take a flat vector: an MLP, not a conv encoder).
        likelihood: 'bernoulli', 'gaussian', 'fixed_gaussian' or a `tfvae.likelihoods.Likelihood`:
            the reconstruction cost is -log p(x|z), summed over the pixels (nats per example).
        label_mode: None; "discriminator": `fit((x, y))` with y in [-1, num_classes), -1 for an
            unlabelled example; D also sees a one-hot of num_classes + 1 slots (the last one for
            unlabelled), and the prior sample of a labelled example comes from its class's part
            of the prior (a mixture component, an arc of the roll; the prior must have
            `num_classes` classes). "decoder": `fit((x, y))` with y in [0, num_classes); the
            decoder takes [z, one-hot(y)], and `decode`, `reconstruct`, `sample` take labels.
        num_classes: number of classes, required with a `label_mode`.
        noise_dim: size of η for the universal posterior (default: latent_dim).
        adversarial_weight: weight of the generator loss -log D(z) (nats per example, ln 2 at
            equilibrium) relative to the reconstruction -log p(x|z) (nats per example, ~100 for
            MNIST). The two are minimized in separate phases by separate optimizers, so with
            Adam (invariant to the scale of a loss) it changes little; with SGD-like optimizers
            it scales the generator step.
        discriminator_noise: standard deviation of the Gaussian noise added to D's input codes
            (prior samples and encoder codes alike, not the label one-hot) during training.
        min_posterior_scale: floor of σ(x) for the gaussian posterior.
        seed: seeds the training noise (see `GenerativeModel`).

    Training defaults (`compile`): the discriminator and generator optimizers default to copies
    of `optimizer`, so the default `compile()` trains all three phases with Adam(1e-3, β1=0.9).
    In trials on MNIST, reconstruction at Adam 1e-3 with the adversarial pair at 2e-4 (β1 0.5)
    let the discriminator win (D loss 0.11, code std 2.3), while equal rates sat near the
    2·ln 2 ≈ 1.39 equilibrium with codes matching N(0, I). At a fixed rate the game keeps
    oscillating, and q(z) with it: on 5,000 MNIST images with a 2-D code, the MMD² to N(0, I)
    moved between 0.004 and 0.024 from one 10-epoch check to the next; with every rate
    decayed, `compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
    1e-3, total_steps, alpha=0.01)))` (the copies keep the schedule), it ended at 0.0005
    after 30 epochs (`benchmarks/aae_mnist.py`, part a).

    Metrics: `loss` (= `reconstruction`, -log p(x|z) per example), `discriminator_loss`
    (2·ln 2 at equilibrium), `generator_loss` (ln 2 at equilibrium), `discriminator_accuracy`
    (0.5 at equilibrium; near 1.0 means D wins).

    The AAE has no density (`has_density = False`): `log_likelihood` raises; use
    `tfvae.evaluation.parzen_log_likelihood` on samples, and `tfvae.evaluation.prior_mismatch`
    to measure how well q(z) matches the prior.
    """

    optimizer_names = ("optimizer", "discriminator_optimizer", "generator_optimizer")
    metric_names = ("loss", "reconstruction", "discriminator_loss", "generator_loss",
                    "discriminator_accuracy")
    nested_config_keys = ("encoder", "decoder", "discriminator", "likelihood", "prior")

    def __init__(self, input_shape, latent_dim, *, encoder=None, decoder=None, discriminator=None,
                 prior="standard_normal", posterior="deterministic", likelihood="bernoulli",
                 label_mode=None, num_classes=None, noise_dim=None, adversarial_weight=1.0,
                 discriminator_noise=0.1, min_posterior_scale=1e-4, seed=None, **kwargs):
        super().__init__(input_shape, likelihood=likelihood, adversarial_weight=adversarial_weight,
                         discriminator_noise=discriminator_noise, seed=seed, **kwargs)
        name = type(self).__name__
        self.latent_dim = self.check_count(latent_dim, "latent_dim")
        if posterior not in POSTERIORS:
            raise ValueError(f"{name}: expected posterior as one of {POSTERIORS}; got {posterior!r}.")
        if label_mode not in LABEL_MODES:
            raise ValueError(f"{name}: expected label_mode as one of {LABEL_MODES}; got {label_mode!r}.")
        self.posterior_type = posterior
        self.label_mode = label_mode
        if label_mode is None:
            if num_classes is not None:
                raise ValueError(f"{name}: num_classes={num_classes!r} is only used with a "
                                 "label_mode ('discriminator' or 'decoder').")
            self.num_classes = None
        else:
            if num_classes is None:
                raise ValueError(f"{name}: label_mode={label_mode!r} needs num_classes.")
            self.num_classes = self.check_count(num_classes, "num_classes")
        if posterior == "universal":
            self.noise_dim = self.check_count(latent_dim if noise_dim is None else noise_dim,
                                              "noise_dim")
        elif noise_dim is not None:
            raise ValueError(f"{name}: noise_dim is only used with posterior='universal'.")
        else:
            self.noise_dim = None
        self.min_posterior_scale = float(min_posterior_scale)

        self.latent_prior = distributions.get(prior, self.latent_dim)
        if label_mode == "discriminator" and self.latent_prior.num_classes != self.num_classes:
            raise ValueError(
                f"{name}: label_mode='discriminator' draws each class from its own part of the "
                f"prior, so the prior needs num_classes={self.num_classes} classes; "
                f"{type(self.latent_prior).__name__} has "
                f"{self.latent_prior.num_classes or 'none'}. Use e.g. tfvae.distributions."
                f"MixtureOfGaussians({self.latent_dim}, num_components={self.num_classes}).")

        encoder_out = (2 * self.latent_dim,) if posterior == "gaussian" else (self.latent_dim,)
        self.encoder = _network(encoder, encoder_out)
        self.decoder = _network(decoder, self.observation_model.param_shape(self.data_shape))
        self.discriminator = _network(discriminator, (1,))
        encoder_in = ((math.prod(self.data_shape) + self.noise_dim,) if posterior == "universal"
                      else self.data_shape)
        try:
            networks.check_output(self.encoder, encoder_in, encoder_out, "encoder")
        except Exception as error:
            if posterior != "universal" or str(error).startswith("the encoder must map"):
                raise
            raise ValueError(f"{name}: the universal posterior feeds the encoder a flat vector of "
                             f"{math.prod(self.data_shape)} inputs + {self.noise_dim} noise units; "
                             f"{type(self.encoder).__name__} cannot take it ({error}). Use an MLP "
                             "encoder.") from error
        networks.check_output(self.decoder, (self.decoder_input_dim,),
                       self.observation_model.param_shape(self.data_shape), "decoder")
        networks.check_output(self.discriminator, (self.discriminator_input_dim,), (1,), "discriminator")
        self.build()

    # ----------------------------------------------------------------- shapes
    @property
    def decoder_input_dim(self):
        """Width of the decoder's input: the code, plus a one-hot label with `label_mode="decoder"`."""
        return self.latent_dim + (self.num_classes if self.label_mode == "decoder" else 0)

    @property
    def discriminator_input_dim(self):
        """Width of the discriminator's input: the code, plus a one-hot label and an unlabelled flag with `label_mode="discriminator"`."""
        return self.latent_dim + (self.num_classes + 1 if self.label_mode == "discriminator" else 0)

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer="adam", discriminator_optimizer=None, generator_optimizer=None,
                **kwargs):
        """Keras `compile` with the three optimizers, one per phase.

        `optimizer` trains the encoder and decoder on the reconstruction;
        `discriminator_optimizer` trains D; `generator_optimizer` trains the encoder against D.
        Each of the last two defaults to a fresh copy of `optimizer` (same class and settings,
        own state): equal rates, which in trials kept D near equilibrium, whereas a slower
        adversarial pair (2e-4, β1 0.5 against 1e-3) let D win. All three are built here and
        kept by `.keras` saving.
        """
        super().compile(optimizer=optimizer, discriminator_optimizer=discriminator_optimizer,
                        generator_optimizer=generator_optimizer, **kwargs)

    # ----------------------------------------------------------------- networks
    def _encoder_input(self, x, seed):
        if self.posterior_type != "universal":
            return x
        flat = tf.reshape(x, [-1, math.prod(self.data_shape)])
        shape = tf.stack([tf.shape(flat)[0], self.noise_dim])
        noise = (tf.zeros(shape, flat.dtype) if seed is None
                 else tf.random.stateless_normal(shape, seed, dtype=flat.dtype))
        return tf.concat([flat, noise], axis=-1)

    def _codes(self, x, seed=None, training=False):
        """z `[B, D]`: a draw from q(z|x) with a stateless `seed`, the deterministic code without."""
        params = tf.cast(self.encoder(self._encoder_input(x, seed), training=training), tf.float32)
        if self.posterior_type != "gaussian":
            return params
        q = distributions.diagonal_gaussian(params, self.min_posterior_scale)
        return q.mean() if seed is None else q.sample(seed=seed)

    def decoder_params(self, z, labels=None, training=False):
        """Decoder output for codes `[..., D]` (and, in decoder label mode, labels broadcasting
        to `z.shape[:-1]`) → `[..., *param_shape]`."""
        if self.label_mode == "decoder":
            labels = tf.broadcast_to(labels, tf.shape(z)[:-1])
            z = tf.concat([z, tf.one_hot(labels, self.num_classes, dtype=z.dtype)], -1)
        return self.decoder_output(z, training)

    def discriminate(self, z, labels=None, seed=None, training=False):
        """D's logits `[B]` for codes `[B, D]` (and labels, in discriminator label mode). With
        `training` and a `seed`, Gaussian noise of std `discriminator_noise` is added to z."""
        condition = None
        if self.label_mode == "discriminator":
            slots = tf.where(labels < 0, self.num_classes, labels)
            condition = tf.one_hot(slots, self.num_classes + 1)
        return self.discriminator_logits(self.discriminator, z, seed, training, condition)

    def prior_samples(self, num_samples, labels=None, seed=None):
        """`num_samples` prior draws `[N, D]`; in discriminator label mode each from the part of
        the prior that belongs to its label (the whole prior for -1)."""
        if self.label_mode == "discriminator" and labels is not None:
            z = self.latent_prior.sample_for_labels(labels, seed=seed)
        else:
            z = self.latent_prior.sample(num_samples, seed=seed)
        return tf.cast(z, tf.float32)

    # ----------------------------------------------------------------- distributions
    def prior(self):
        return self.latent_prior.distribution()

    def posterior(self, x):
        """q(z|x) = N(μ(x), diag σ²(x)) for the gaussian posterior (batch [B], event [D]); the
        deterministic and universal posteriors have no density."""
        if self.posterior_type != "gaussian":
            raise NotImplementedError(f"{type(self).__name__}: the {self.posterior_type} posterior "
                                      "has no density; encode(x) gives its codes.")
        params = tf.cast(self.encoder(self.check_input(x)), tf.float32)
        return distributions.diagonal_gaussian(params, self.min_posterior_scale)

    def likelihood(self, z, labels=None):
        """p(x|z) (and the labels in decoder label mode), batch shape `z.shape[:-1]`."""
        labels = self._decoder_labels(labels, z)
        return self.observation_model.distribution(self.decoder_params(z, labels),
                                                   len(self.data_shape))

    # ----------------------------------------------------------------- tensors
    def encode(self, x):
        """The deterministic code of each example, `[B, D]`: f(x) (deterministic), the mean μ(x)
        (gaussian), or f(x, η = 0), the code at the noise's mean (universal; not the mean of
        q(z|x) in general — average `reconstruct`-style draws for that)."""
        return self._codes(self.check_input(x))

    def decode(self, z, labels=None):
        """E[x|z] for codes `[N, D]`; in decoder label mode `labels` (int `[N]`, or one int for
        all) are required."""
        z = self.check_codes(z, self.latent_dim)
        labels = self._decoder_labels(labels, z, "decode")
        return self.observation_model.mean(self.decoder_params(z, labels))

    def reconstruct(self, x, seed=None, labels=None):
        """decode(encode(x)) when `seed` is None; a draw from q(z|x) decoded otherwise (the
        deterministic posterior ignores the seed). Decoder label mode needs `labels`."""
        x = self.check_input(x)
        z = self._codes(x, None if seed is None else distributions.stateless_seed(seed))
        return self.decode(z, labels)

    def sample(self, num_samples, seed=None, labels=None):
        """`num_samples` images E[x|z], z from the prior, decoded; the same seed gives the same
        images. With a `label_mode`, `labels` (int `[N]` or one int) pick the classes: in
        discriminator mode z comes from each label's part of the prior, in decoder mode the
        labels go to the decoder; decoder mode without labels draws them uniformly from the
        seed."""
        num_samples = self.check_count(num_samples, "num_samples")
        seed = distributions.stateless_seed(seed)
        if self.label_mode is None:
            if labels is not None:
                raise ValueError(f"{type(self).__name__}: labels are only taken with a label_mode; "
                                 "this model has none.")
            return self.decode(self.prior_samples(num_samples, seed=seed))
        if labels is not None:
            labels = self._sample_labels(labels, num_samples)
        if self.label_mode == "discriminator":
            return self.decode(self.prior_samples(num_samples, labels, seed))
        label_seed, z_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if labels is None:
            labels = tf.random.stateless_uniform(tf.reshape(num_samples, [1]), label_seed, 0,
                                                 self.num_classes, dtype=tf.int32)
        return self.decode(self.prior_samples(num_samples, seed=z_seed), labels)

    def call(self, inputs, training=False):
        """The reconstruction decode(encode(x)), a tensor. Decoder label mode takes `(x, labels)`."""
        if self.label_mode == "decoder":
            if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
                raise ValueError(f"{type(self).__name__} with label_mode='decoder' reconstructs "
                                 "(x, labels): call it as model((x, labels)).")
            return self.reconstruct(inputs[0], labels=inputs[1])
        return self.reconstruct(inputs)

    def _decoder_labels(self, labels, z, method="likelihood"):
        if self.label_mode != "decoder":
            if labels is not None:
                raise ValueError(f"{type(self).__name__}.{method}: labels go to the decoder only "
                                 f"with label_mode='decoder'; this model has {self.label_mode!r}.")
            return None
        if labels is None:
            raise ValueError(f"{type(self).__name__}.{method}: label_mode='decoder' needs labels, "
                             f"integers in [0, {self.num_classes}), one per code.")
        labels = tf.convert_to_tensor(labels)
        if labels.shape.rank == 0 and labels.dtype.is_integer:
            labels = tf.fill(tf.shape(z)[:1], labels)
        if z.shape.rank == 2:
            return self.check_labels(labels, self.num_classes, allow_unlabelled=False, x=z,
                                     name="labels")
        return tf.cast(labels, tf.int32)

    def _sample_labels(self, labels, num_samples):
        return self.class_labels(labels, num_samples, self.num_classes,
                                 allow_unlabelled=self.label_mode == "discriminator")

    # ----------------------------------------------------------------- training
    def check_targets(self, y, x):
        if self.label_mode is None:
            return None  # an unlabelled model ignores labels (e.g. a supervised tfds split)
        return self.check_labels(y, self.num_classes, x=x,
                                 allow_unlabelled=self.label_mode == "discriminator")

    def training_phases(self):
        """Reconstruction (encoder + decoder), discriminator (D), generator (encoder)."""
        autoencoder = self.encoder.trainable_variables + self.decoder.trainable_variables
        return [
            TrainingPhase("optimizer", autoencoder, self.reconstruction_losses),
            TrainingPhase("discriminator_optimizer", self.discriminator.trainable_variables,
                          self.discriminator_losses),
            # The reconstruction phase already applies the encoder's regularizers this step.
            TrainingPhase("generator_optimizer", self.encoder.trainable_variables,
                          self.generator_losses, regularization=False),
        ]

    def reconstruction_losses(self, x, y=None, seed=None, training=False):
        """-log p(x|z), z ~ q(z|x), summed over the pixels: `[B]` nats (the reconstruction phase)."""
        z = self._codes(x, seed, training)
        labels = y if self.label_mode == "decoder" else None
        reconstruction = self.reconstruction_loss(self.decoder_params(z, labels, training), x)
        return reconstruction, {"loss": reconstruction, "reconstruction": reconstruction}

    def discriminator_losses(self, x, y=None, seed=None, training=False):
        """D's cross-entropy: prior samples labelled 1, codes labelled 0, per example `[B]`."""
        code_seed, prior_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        fake = tf.stop_gradient(self._codes(x, code_seed, training))
        real = self.prior_samples(tf.shape(fake)[0], y, prior_seed)
        labels = None if y is None else tf.concat([y, y], axis=0)
        logits = self.discriminate(tf.concat([real, fake], axis=0), labels, noise_seed, training)
        loss, accuracy = discriminator_terms(*tf.split(logits, 2))
        return loss, {"discriminator_loss": loss, "discriminator_accuracy": accuracy}

    def generator_losses(self, x, y=None, seed=None, training=False):
        """The encoder's non-saturating loss -log D(z), times `adversarial_weight`, `[B]`."""
        code_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        labels = y if self.label_mode == "discriminator" else None
        logits = self.discriminate(self._codes(x, code_seed, training), labels, noise_seed, training)
        loss = objectives.generator_loss(logits)
        return self.adversarial_weight * loss, {"generator_loss": loss}

    # ----------------------------------------------------------------- export
    def serving_endpoints(self):
        """The default endpoints (no `log_likelihood`: no density); with a label_mode, also
        `sample_for_labels(labels, seed)`, and in decoder mode `decode` and `reconstruct` take
        `labels` (int32 [B])."""
        from tfvae import export as export_lib  # the export layer sits above the models

        endpoints = export_lib.default_endpoints(self)
        if self.label_mode is None:
            return endpoints
        labels_spec = tf.TensorSpec([None], tf.int32, name="labels")
        seed_spec = tf.TensorSpec([2], tf.int32, name="seed")

        def sample_for_labels(labels, seed):
            return {"samples": self.sample(tf.shape(labels)[0], seed=seed, labels=labels)}

        endpoints["sample_for_labels"] = (sample_for_labels, [labels_spec, seed_spec])
        if self.label_mode == "decoder":
            x_spec = tf.TensorSpec((None,) + self.data_shape, tf.float32, name="x")
            z_spec = tf.TensorSpec((None, self.latent_dim), tf.float32, name="z")

            def decode(z, labels):
                return {"x_mean": self.decode(z, labels)}

            def reconstruct(x, labels, seed):
                return {"reconstruction": self.reconstruct(x, seed=seed, labels=labels)}

            endpoints["decode"] = (decode, [z_spec, labels_spec])
            endpoints["reconstruct"] = (reconstruct, [x_spec, labels_spec, seed_spec])
        return endpoints

    # ----------------------------------------------------------------- saving
    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            prior=keras.saving.serialize_keras_object(self.latent_prior),
            posterior=self.posterior_type,
            label_mode=self.label_mode, num_classes=self.num_classes, noise_dim=self.noise_dim,
            min_posterior_scale=self.min_posterior_scale)
        return config



@keras.saving.register_keras_serializable(package="tfvae")
class SemiSupervisedAAE(_AdversarialAutoencoderBase):
    """Semi-supervised adversarial autoencoder, and unsupervised clustering without labels
    (Makhzani et al. 2016, Sec. 5 and 6).

    One encoder body with `num_classes + style_dim` outputs gives q(y|x) = Cat(softmax(the first
    K outputs)), the class, and the style z = the other D outputs (deterministic). The decoder
    reconstructs x from [softmax(y logits), z]. Two discriminators shape the codes, each telling
    prior samples (label 1) from codes (label 0): D_y, one-hot samples of a uniform categorical
    (`distributions.UniformCategorical`) against q(y|x)'s softmax, and D_z, N(0, I) samples
    against z. Each train step runs four `TrainingPhase`s, each with its own optimizer:

    1. reconstruction (`optimizer`): encoder and decoder minimize -log p(x | softmax(y), z),
       summed over the pixels (nats per example);
    2. discriminators (`discriminator_optimizer`): D_y and D_z minimize the sum of their
       `objectives.discriminator_loss` (disjoint weights: with Adam, one optimizer is two);
    3. generator (`generator_optimizer`): the encoder minimizes
       `adversarial_weight` · (-log D_y(softmax(y)) - log D_z(z)), the non-saturating loss;
    4. labelled (`classifier_optimizer`): the encoder minimizes the cross-entropy of q(y|x) on
       the labelled examples of the batch, averaged over them
       (`objectives.categorical_cross_entropy` with a mask).

    Data: `fit((x, y))` or `fit(x, y)` (arrays or a Dataset of pairs), y int in
    [-1, num_classes), -1 marking an unlabelled example. The labelled phase learns from the
    labelled part of each batch; in a step whose batch (over all replicas) holds no labelled
    example it changes nothing, neither the encoder nor `classifier_optimizer`'s state
    (`TrainingPhase.count_fn`, also under MirroredStrategy). So a stream in which 100 of 5,000
    examples carry labels works as is, but with batches of 100 it holds about 2 labelled
    examples per step, and none in 13 % of them; the paper updates q(y|x) on a labelled
    mini-batch every step: for that, oversample the labelled examples in the stream (e.g.
    `tf.data.Dataset.sample_from_datasets`). `fit(x)` with no labels at all is the paper's
    unsupervised clustering (Sec. 6, `num_classes` clusters): the labelled phase never runs,
    and the `classification_*` metrics are left out of the logs.

    Args:
        input_shape: shape of one observation, e.g. `(28, 28, 1)`.
        num_classes: K, the classes (or clusters) of y.
        style_dim: D, the size of the style z.
        encoder, decoder, style_discriminator, category_discriminator: bodies from
            `tfvae.networks` (the model sizes their last layer) or Keras layers with the right
            shapes. Default for all four: the paper's MNIST networks, `mlp([1000, 1000],
            activation="relu")` (Appendix A); the discriminators have no batch norm (it broke
            AAE training in trials here) and get Gaussian noise on their inputs instead.
        likelihood: 'bernoulli', 'gaussian', 'fixed_gaussian' or a `tfvae.likelihoods.Likelihood`.
        adversarial_weight: weight of the generator loss (see `AdversarialAutoencoder`; with
            Adam in separate phases it changes little).
        discriminator_noise: std of the Gaussian noise added, during training, to both
            discriminators' inputs (prior samples and codes alike: the one-hots and softmaxes of
            D_y, the styles of D_z). Default 0.5, not the `AdversarialAutoencoder`'s 0.1: D_y
            tells one-hots from softmaxes that are not quite one-hot at once, the encoder's
            softmax saturates onto a few classes, and its gradient vanishes there. On 5,000 real
            MNIST images (1000-1000 networks, Adam(1e-3), batch 100, 30 epochs, 16 clusters, no
            labels) noise 0.1 left 3 clusters in use (70.8 % clustering error), 0.5 used 15
            (35.4 %; 16 and 27.7 % after 100 epochs); with 100 labels the test error went from
            26.2 % (0.1) to 16.1 % (0.5).
        seed: seeds the training noise (see `GenerativeModel`).

    Training defaults (`compile`): every optimizer not given is a fresh copy of `optimizer`
    (default Adam(1e-3)): equal rates kept the AAE's discriminator near equilibrium on MNIST in
    trials here, where a slower adversarial pair let it win. The labelled phase shares the
    encoder with two unsupervised phases that pull it their way: in a small trial on the bundled
    MNIST sample (1,000 labels, 64-unit networks, 5 epochs) the test error was 48 % with all
    four optimizers at Adam(1e-3), 15 % with `classifier_optimizer=Adam(3e-3)` (and 16 % with
    the classifier phase alone). Not a tuned figure: with few labels, try a faster
    `classifier_optimizer` first.

    Tensors: `classify(x)` → q(y|x) `[B, K]`; `cluster(x)` → argmax, int32 `[B]`;
    `encode(x)` → the style z `[B, D]`; `encode_all(x)` → (q(y|x), z); `decode(z, y)` with y
    integer labels `[B]` (or one int) or class probabilities `[B, K]`; `reconstruct(x)`
    decodes (softmax(y), z), and with a `seed` a class drawn from q(y|x) (as a one-hot) with z;
    `sample(n, seed, labels=None)` draws y uniformly (or takes `labels`) and z ~ N(0, I).
    The distributions `prior()`, `posterior(x)`, `likelihood(c)` are over the decoder's input
    c = [y, z] (K + D values; `decoder_input(z, y)` builds it): p(y)p(z), and q(y|x) times a
    point mass at z(x).

    Metrics: `loss` (= `reconstruction`), `style_discriminator_loss` and
    `category_discriminator_loss` (2·ln 2 at equilibrium), their `*_accuracy` (0.5 at
    equilibrium), `generator_loss` (the sum of the two -log D terms, 2·ln 2 at equilibrium),
    and, with labels, `classification_loss` and `classification_error` averaged over the
    labelled examples (with `evaluate((x_test, y_test))`: the test error).

    No density (`has_density = False`): `log_likelihood` raises; use
    `tfvae.evaluation.parzen_log_likelihood` on samples, `tfvae.evaluation.classification_error`
    on `classify(x)` and `clustering_error` on `cluster(x)`.
    """

    optimizer_names = ("optimizer", "discriminator_optimizer", "generator_optimizer",
                       "classifier_optimizer")
    metric_names = ("loss", "reconstruction", "style_discriminator_loss",
                    "category_discriminator_loss", "style_discriminator_accuracy",
                    "category_discriminator_accuracy", "generator_loss", "classification_loss",
                    "classification_error")
    label_metric_names = ("classification_loss", "classification_error")
    nested_config_keys = ("encoder", "decoder", "style_discriminator", "category_discriminator",
                          "likelihood")
    #: Whether `decode` (and its endpoint) takes the classes y beside z.
    decode_takes_classes = True

    def __init__(self, input_shape, num_classes, style_dim, *, encoder=None, decoder=None,
                 style_discriminator=None, category_discriminator=None, likelihood="bernoulli",
                 adversarial_weight=1.0, discriminator_noise=0.5, seed=None, **kwargs):
        super().__init__(input_shape, likelihood=likelihood, adversarial_weight=adversarial_weight,
                         discriminator_noise=discriminator_noise, seed=seed, **kwargs)
        self.num_classes = self.check_count(num_classes, "num_classes")
        self.style_dim = self.check_count(style_dim, "style_dim")
        self.category_prior = distributions.UniformCategorical(self.num_classes)
        self.style_prior = distributions.StandardNormal(self.style_dim)
        encoder_out = (self.num_classes + self.style_dim,)
        param_shape = self.observation_model.param_shape(self.data_shape)
        self.encoder = _network(encoder, encoder_out)
        self.decoder = _network(decoder, param_shape)
        self.style_discriminator = _network(style_discriminator, (1,))
        self.category_discriminator = _network(category_discriminator, (1,))
        networks.check_output(self.encoder, self.data_shape, encoder_out, "encoder")
        networks.check_output(self.decoder, (self.decoder_input_dim,), param_shape, "decoder")
        networks.check_output(self.style_discriminator, (self.style_dim,), (1,), "style_discriminator")
        networks.check_output(self.category_discriminator, (self.num_classes,), (1,),
                       "category_discriminator")
        self._create_code_weights()
        self.build()

    def _create_code_weights(self):
        """Weights of the map from (y, z) to the decoder's input, created before the model is
        built (its state is locked then): none here."""

    @property
    def decoder_input_dim(self):
        """Width of the decoder's input: the class (or cluster) one-hot and the style code."""
        return self.num_classes + self.style_dim

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer="adam", discriminator_optimizer=None, generator_optimizer=None,
                classifier_optimizer=None, **kwargs):
        """Keras `compile` with the four optimizers, one per phase: `optimizer` (encoder and
        decoder on the reconstruction), `discriminator_optimizer` (both discriminators),
        `generator_optimizer` (the encoder against them), `classifier_optimizer` (the encoder on
        the labelled examples). Each of the last three defaults to a fresh copy of `optimizer`.
        All four are built here and kept by `.keras` saving."""
        super().compile(optimizer=optimizer, discriminator_optimizer=discriminator_optimizer,
                        generator_optimizer=generator_optimizer,
                        classifier_optimizer=classifier_optimizer, **kwargs)

    # ----------------------------------------------------------------- codes
    def _encoder_outputs(self, x, training=False):
        """(q(y|x)'s logits `[B, K]`, the style z `[B, D]`) of checked inputs."""
        outputs = tf.cast(self.encoder(x, training=training), tf.float32)
        return outputs[:, :self.num_classes], outputs[:, self.num_classes:]

    def class_vectors(self, y, num_samples, method="decode"):
        """`y` as float32 class vectors `[N, K]`: integer labels (`[N]`, or one int for all N)
        as one-hots, class probabilities `[N, K]` (e.g. `classify(x)`) as they are."""
        name = type(self).__name__
        expected = (f"expected y as integer labels of shape (batch,) in [0, {self.num_classes}) or "
                    f"class probabilities of shape (batch, {self.num_classes})")
        if y is None:
            raise ValueError(f"{name}.{method}: {expected}; got None.")
        y = tf.convert_to_tensor(y)
        if not y.dtype.is_floating:
            labels = self.class_labels(y, num_samples, self.num_classes, method=method)
            return tf.one_hot(labels, self.num_classes)
        if (y.shape.rank != 2 or y.shape[-1] != self.num_classes
                or (isinstance(num_samples, int) and y.shape[0] not in (None, num_samples))):
            raise ValueError(f"{name}.{method}: {expected}, one per code ({num_samples}); got "
                             f"{y.dtype.name} values of shape {tuple(y.shape)}.")
        return tf.cast(y, tf.float32)

    def decoder_input(self, z, y):
        """The decoder's input `[N, K + D]` for styles z `[N, D]` and classes y (labels or
        probabilities, see `class_vectors`): [y, z]."""
        z = tf.cast(z, tf.float32)
        size = z.shape[0] if z.shape[0] is not None else tf.shape(z)[0]
        return tf.concat([self.class_vectors(y, size), z], axis=-1)

    def _mean_image(self, codes):
        return self.observation_model.mean(self.decoder_output(codes))

    # ----------------------------------------------------------------- distributions
    def prior(self):
        """p(y) p(z) over the decoder's input [y, z]: a uniform one-hot and N(0, I)."""
        return tfd.Blockwise([self.category_prior.distribution(), self.style_prior.distribution()])

    def posterior(self, x):
        """q(y|x) times a point mass at z(x), over the decoder's input [y, z] (batch `[B]`).
        The style is deterministic: there is no density to evaluate, only draws."""
        logits, z = self._encoder_outputs(self.check_input(x))
        return tfd.Blockwise([tfd.OneHotCategorical(logits=logits, dtype=tf.float32),
                              tfd.VectorDeterministic(z)])

    def likelihood(self, codes):
        """p(x|c) for decoder inputs c `[..., K + D]` (`decoder_input`), batch `c.shape[:-1]`."""
        return self.observation_model.distribution(
            self.decoder_output(tf.convert_to_tensor(codes, tf.float32)), len(self.data_shape))

    # ----------------------------------------------------------------- tensors
    def classify(self, x):
        """q(y|x): class probabilities `[B, num_classes]`."""
        logits, _ = self._encoder_outputs(self.check_input(x))
        return tf.nn.softmax(logits)

    def cluster(self, x):
        """The most probable class (cluster) of each example, int32 `[B]` (argmax of `classify`)."""
        logits, _ = self._encoder_outputs(self.check_input(x))
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def encode_all(self, x):
        """(q(y|x) `[B, K]`, the style z `[B, D]`)."""
        logits, z = self._encoder_outputs(self.check_input(x))
        return tf.nn.softmax(logits), z

    def encode(self, x):
        """The style code z `[B, style_dim]` (the class is `classify(x)`; both: `encode_all`)."""
        return self.encode_all(x)[1]

    def decode(self, z, y):
        """E[x | y, z] for styles z `[N, style_dim]` and classes y: integer labels `[N]` (or one
        int for all) or class probabilities `[N, num_classes]` (e.g. `classify(x)`)."""
        z = self.check_codes(z, self.style_dim)
        return self._mean_image(self.decoder_input(z, y))

    def reconstruct(self, x, seed=None):
        """E[x | softmax(y), z] for the codes of x; with a `seed`, y is a class drawn from
        q(y|x) (a one-hot), z the same deterministic style."""
        logits, z = self._encoder_outputs(self.check_input(x))
        if seed is None:
            y = tf.nn.softmax(logits)
        else:
            drawn = tf.random.stateless_categorical(logits, 1, distributions.stateless_seed(seed))
            y = tf.one_hot(drawn[:, 0], self.num_classes)
        return self._mean_image(self.decoder_input(z, y))

    def sample(self, num_samples, seed=None, labels=None):
        """`num_samples` images E[x | y, z]: y uniform over the classes (or `labels`, int `[N]`
        or one int), z ~ N(0, I). The same seed gives the same styles whatever the labels."""
        num_samples = self.check_count(num_samples, "num_samples")
        seed = distributions.stateless_seed(seed)
        class_seed, style_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if labels is None:
            y = self.category_prior.sample(num_samples, seed=class_seed)
        else:
            y = self.class_labels(labels, num_samples, self.num_classes)
        z = self.style_prior.sample(num_samples, seed=style_seed)
        return self._mean_image(self.decoder_input(z, y))

    def call(self, inputs, training=False):
        """The reconstruction of x (a tensor, so predict() and export work)."""
        return self.reconstruct(inputs)

    # ----------------------------------------------------------------- training
    def check_targets(self, y, x):
        if y is None:
            return None  # unsupervised clustering
        return self.check_labels(y, self.num_classes, x=x, allow_unlabelled=True)

    def autoencoder_variables(self):
        """What the reconstruction phase trains."""
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    def training_phases(self):
        """Reconstruction (encoder + decoder), discriminators (D_y + D_z), generator (encoder),
        labelled (encoder, on the labelled examples only)."""
        encoder = self.encoder.trainable_variables
        discriminators = (self.style_discriminator.trainable_variables
                          + self.category_discriminator.trainable_variables)
        return [
            TrainingPhase("optimizer", self.autoencoder_variables(), self.reconstruction_losses),
            TrainingPhase("discriminator_optimizer", discriminators, self.discriminator_losses),
            # The reconstruction phase already applies the encoder's regularizers this step.
            TrainingPhase("generator_optimizer", encoder, self.generator_losses,
                          regularization=False),
            TrainingPhase("classifier_optimizer", encoder, self.classification_losses,
                          regularization=False, count_fn=self.labelled_count),
        ]

    labelled_count = staticmethod(labelled_count)

    def reconstruction_losses(self, x, y=None, seed=None, training=False):
        """-log p(x | softmax(y), z), summed over the pixels, `[B]`."""
        logits, z = self._encoder_outputs(x, training)
        codes = self.decoder_input(z, tf.nn.softmax(logits))
        reconstruction = self.reconstruction_loss(self.decoder_output(codes, training), x)
        return reconstruction, {"loss": reconstruction, "reconstruction": reconstruction}

    def discriminator_losses(self, x, y=None, seed=None, training=False):
        """D_y's and D_z's cross-entropies (prior samples 1, codes 0), summed, `[B]`."""
        class_seed, style_seed, class_noise, style_noise = tf.unstack(
            tf.random.experimental.stateless_split(seed, 4))
        logits, z = self._encoder_outputs(x, training)
        probabilities, z = tf.stop_gradient(tf.nn.softmax(logits)), tf.stop_gradient(z)
        batch = tf.shape(z)[0]
        real_y = tf.cast(self.category_prior.sample(batch, seed=class_seed), tf.float32)
        real_z = tf.cast(self.style_prior.sample(batch, seed=style_seed), tf.float32)
        category_loss, category_accuracy = discriminator_terms(*tf.split(self.discriminator_logits(
            self.category_discriminator, tf.concat([real_y, probabilities], 0), class_noise,
            training), 2))
        style_loss, style_accuracy = discriminator_terms(*tf.split(self.discriminator_logits(
            self.style_discriminator, tf.concat([real_z, z], 0), style_noise, training), 2))
        return category_loss + style_loss, {
            "category_discriminator_loss": category_loss, "style_discriminator_loss": style_loss,
            "category_discriminator_accuracy": category_accuracy,
            "style_discriminator_accuracy": style_accuracy}

    def generator_losses(self, x, y=None, seed=None, training=False):
        """The encoder's -log D_y(softmax(y)) - log D_z(z), times `adversarial_weight`, `[B]`."""
        class_noise, style_noise = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        logits, z = self._encoder_outputs(x, training)
        loss = (objectives.generator_loss(self.discriminator_logits(
                    self.category_discriminator, tf.nn.softmax(logits), class_noise, training))
                + objectives.generator_loss(self.discriminator_logits(
                    self.style_discriminator, z, style_noise, training)))
        return self.adversarial_weight * loss, {"generator_loss": loss}

    def classification_losses(self, x, y=None, seed=None, training=False):
        """-log q(y|x) on the labelled examples (0 on the others), `[B]`; the logs are weighted
        by the labelled examples only."""
        logits, _ = self._encoder_outputs(x, training)
        return labelled_classification_terms(logits, y)

    # ----------------------------------------------------------------- export
    def serving_endpoints(self):
        """The default endpoints (no `log_likelihood`: no density) with `decode(z, y)` (y: float32
        class probabilities `[B, K]`, one-hot for a label), plus `classify(x)` →
        `probabilities`, `cluster(x)` → `cluster` (int32) and `sample_for_labels(labels, seed)`."""
        from tfvae import export as export_lib  # the export layer sits above the models

        endpoints = export_lib.default_endpoints(self)
        x_spec = tf.TensorSpec((None,) + self.data_shape, tf.float32, name="x")
        labels_spec = tf.TensorSpec([None], tf.int32, name="labels")
        seed_spec = tf.TensorSpec([2], tf.int32, name="seed")

        def classify(x):
            return {"probabilities": self.classify(x)}

        def cluster(x):
            return {"cluster": self.cluster(x)}

        def sample_for_labels(labels, seed):
            return {"samples": self.sample(tf.shape(labels)[0], seed=seed, labels=labels)}

        endpoints.update(classify=(classify, [x_spec]), cluster=(cluster, [x_spec]),
                         sample_for_labels=(sample_for_labels, [labels_spec, seed_spec]))
        if self.decode_takes_classes:
            def decode(z, y):
                return {"x_mean": self.decode(z, y)}

            endpoints["decode"] = (decode, [
                tf.TensorSpec((None, self.style_dim), tf.float32, name="z"),
                tf.TensorSpec((None, self.num_classes), tf.float32, name="y")])
        return endpoints

    # ----------------------------------------------------------------- saving
    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes, style_dim=self.style_dim,
            style_discriminator=keras.saving.serialize_keras_object(self.style_discriminator),
            category_discriminator=keras.saving.serialize_keras_object(self.category_discriminator))
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class DimensionalityReductionAAE(SemiSupervisedAAE):
    """Dimensionality reduction with an adversarial autoencoder (Makhzani et al. 2016, Sec. 7).

    The clustering form of `SemiSupervisedAAE` (num_clusters classes y, a style z, a
    discriminator on each), with y mapped into the style's space: the representation is
    W·y + z, where W (`cluster_heads`, num_clusters × latent_dim, learned) holds one cluster
    head per row, y is softmax(y logits) and z the style (`latent_dim` values, against N(0, I)).
    The decoder reconstructs x from it, so an n-D code carries the cluster as its head and the
    style as the offset from it. The paper's cost keeps the heads apart: the reconstruction
    phase adds `objectives.cluster_head_distance_penalty(W, eta)`,
    Σ_{i<j} max(0, η - ‖W_i - W_j‖₂), to its per-example loss (so `loss` = `reconstruction` +
    `cluster_head_penalty`), and trains W with the encoder and decoder. The other phases are
    those of `SemiSupervisedAAE`; `fit((x, y))` with some labels (-1: unlabelled) is the
    paper's semi-supervised dimensionality reduction, `fit(x)` the unsupervised one.

    Args:
        num_clusters: K, the clusters (the rows of W).
        latent_dim: n, the dimension of the representation (2 for a plot).
        eta: η, the distance below which two heads are penalized. The style is N(0, I), so η
            is in units of the style's spread: larger η draws the clusters further apart.
        Others as in `SemiSupervisedAAE` (`style_discriminator` sees z, `latent_dim` values).

    Tensors: `encode(x)` → the n-D embedding W·q(y|x) + z (with the class probabilities, not a
    hard cluster); `encode_all(x)` → (q(y|x), z); `cluster(x)`, `classify(x)` as in
    `SemiSupervisedAAE`; `decode(codes)` takes representations `[N, latent_dim]` (what `encode`
    gives), and `decode(z, y)` a style and classes (labels or probabilities) → W·y + z.
    `prior()` is the representation's prior, a uniform mixture of N(W_k, I); `posterior(x)` a
    mixture over q(y|x) of point masses at W_k + z(x). W is initialized N(0, 1).
    """

    metric_names = (("loss", "reconstruction", "cluster_head_penalty")
                    + SemiSupervisedAAE.metric_names[2:])
    decode_takes_classes = False

    def __init__(self, input_shape, num_clusters, latent_dim=2, *, eta=1.0, encoder=None,
                 decoder=None, style_discriminator=None, category_discriminator=None,
                 likelihood="bernoulli", adversarial_weight=1.0, discriminator_noise=0.5, seed=None,
                 **kwargs):
        try:
            eta_value = float(eta)
        except (TypeError, ValueError):
            eta_value = -1.0
        if not eta_value >= 0:
            raise ValueError(f"{type(self).__name__}: expected eta, the least distance between "
                             f"cluster heads, as a number >= 0; got {eta!r}.")
        super().__init__(input_shape, num_clusters, latent_dim, encoder=encoder, decoder=decoder,
                         style_discriminator=style_discriminator,
                         category_discriminator=category_discriminator, likelihood=likelihood,
                         adversarial_weight=adversarial_weight,
                         discriminator_noise=discriminator_noise, seed=seed, **kwargs)
        self.eta = eta_value

    def _create_code_weights(self):
        self.cluster_heads = self.add_weight(
            shape=(self.num_classes, self.style_dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0), name="cluster_heads")

    @property
    def num_clusters(self):
        """The number of clusters (cluster heads) of the categorical code."""
        return self.num_classes

    @property
    def latent_dim(self):
        """n, the dimension of the representation W·y + z (and of the style z)."""
        return self.style_dim

    @property
    def decoder_input_dim(self):
        """Width of the decoder's input: the n-D representation W·y + z."""
        return self.style_dim

    def decoder_input(self, z, y):
        """The representation W·y + z `[N, latent_dim]` for styles z and classes y (labels or
        probabilities, see `class_vectors`)."""
        z = tf.cast(z, tf.float32)
        size = z.shape[0] if z.shape[0] is not None else tf.shape(z)[0]
        heads = tf.convert_to_tensor(self.cluster_heads)
        return tf.matmul(self.class_vectors(y, size), heads) + z

    def prior(self):
        """The representation's prior: a uniform mixture of N(W_k, I) over the heads W_k."""
        heads = tf.convert_to_tensor(self.cluster_heads)
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=tf.zeros([self.num_classes])),
            tfd.MultivariateNormalDiag(loc=heads, scale_diag=tf.ones_like(heads)))

    def posterior(self, x):
        """A mixture over q(y|x) of point masses at W_k + z(x) (batch `[B]`, event `[n]`)."""
        logits, z = self._encoder_outputs(self.check_input(x))
        heads = tf.convert_to_tensor(self.cluster_heads)
        return tfd.MixtureSameFamily(tfd.Categorical(logits=logits),
                                     tfd.VectorDeterministic(heads[None] + z[:, None]))

    def encode(self, x):
        """The n-D embedding W·q(y|x) + z `[B, latent_dim]` (the decoder's input)."""
        probabilities, z = self.encode_all(x)
        return self.decoder_input(z, probabilities)

    def decode(self, z, y=None):
        """E[x | representation] for representations `[N, latent_dim]` (what `encode` gives);
        with `y` (labels or probabilities), `z` are styles and the representation is W·y + z."""
        z = self.check_codes(z, self.latent_dim)
        return self._mean_image(z if y is None else self.decoder_input(z, y))

    def autoencoder_variables(self):
        return super().autoencoder_variables() + [self.cluster_heads]

    def reconstruction_losses(self, x, y=None, seed=None, training=False):
        """-log p(x | W·softmax(y) + z) per example plus the cluster-head penalty, `[B]`."""
        reconstruction, logs = super().reconstruction_losses(x, y, seed, training)
        penalty = objectives.cluster_head_distance_penalty(
            tf.convert_to_tensor(self.cluster_heads), self.eta)
        loss = reconstruction + penalty
        return loss, {**logs, "loss": loss, "cluster_head_penalty": penalty}

    def get_config(self):
        config = super().get_config()
        config["num_clusters"] = config.pop("num_classes")
        config["latent_dim"] = config.pop("style_dim")
        config["eta"] = self.eta
        return config


def _network(network, target_shape):
    """The paper's MLP (two ReLU layers of 1000 units) unless given; see `networks.resolve`."""
    return networks.resolve(network, target_shape,
                            lambda: networks.mlp(DEFAULT_HIDDEN_UNITS, activation="relu"))

