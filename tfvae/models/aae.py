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
"""
import math

import keras
import tensorflow as tf

from tfvae import distributions, likelihoods, networks, objectives
from tfvae.models.base import GenerativeModel, TrainingPhase

__all__ = ["AdversarialAutoencoder"]

POSTERIORS = ("deterministic", "gaussian", "universal")
LABEL_MODES = (None, "discriminator", "decoder")
#: The paper's MNIST networks (Makhzani et al. 2016, Appendix A): two ReLU layers of 1000 units.
DEFAULT_HIDDEN_UNITS = (1000, 1000)

_NO_DENSITY = (
    "{name} has no density: the adversarial regularizer matches the aggregated posterior to the "
    "prior without a bound on log p(x), so there is nothing to evaluate. Estimate log p(x) from "
    "samples instead, as the paper does (Sec. 3): tfvae.evaluation.parzen_log_likelihood("
    "model.sample(10000, seed=0), x_test, validation=x_validation).")


@keras.saving.register_keras_serializable(package="tfvae")
class AdversarialAutoencoder(GenerativeModel):
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
    2·ln 2 ≈ 1.39 equilibrium with codes matching N(0, I).

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
    has_density = False

    def __init__(self, input_shape, latent_dim, *, encoder=None, decoder=None, discriminator=None,
                 prior="standard_normal", posterior="deterministic", likelihood="bernoulli",
                 label_mode=None, num_classes=None, noise_dim=None, adversarial_weight=1.0,
                 discriminator_noise=0.1, min_posterior_scale=1e-4, seed=None, **kwargs):
        super().__init__(input_shape, seed=seed, **kwargs)
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
        self.adversarial_weight = float(adversarial_weight)
        self.discriminator_noise = float(discriminator_noise)
        if self.adversarial_weight < 0 or self.discriminator_noise < 0:
            raise ValueError(f"{name}: adversarial_weight and discriminator_noise must be >= 0; got "
                             f"{adversarial_weight!r}, {discriminator_noise!r}.")
        self.min_posterior_scale = float(min_posterior_scale)

        self.observation_model = likelihoods.get(likelihood)
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
            _check_network(self.encoder, encoder_in, encoder_out, "encoder")
        except Exception as error:
            if posterior != "universal" or str(error).startswith("the encoder must map"):
                raise
            raise ValueError(f"{name}: the universal posterior feeds the encoder a flat vector of "
                             f"{math.prod(self.data_shape)} inputs + {self.noise_dim} noise units; "
                             f"{type(self.encoder).__name__} cannot take it ({error}). Use an MLP "
                             "encoder.") from error
        _check_network(self.decoder, (self.decoder_input_dim,),
                       self.observation_model.param_shape(self.data_shape), "decoder")
        _check_network(self.discriminator, (self.discriminator_input_dim,), (1,), "discriminator")
        self.build()

    # ----------------------------------------------------------------- shapes
    @property
    def decoder_input_dim(self):
        return self.latent_dim + (self.num_classes if self.label_mode == "decoder" else 0)

    @property
    def discriminator_input_dim(self):
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
        lead = tf.shape(z)[:-1]
        inputs = tf.reshape(z, [-1, self.latent_dim])
        if self.label_mode == "decoder":
            labels = tf.reshape(tf.broadcast_to(labels, lead), [-1])
            inputs = tf.concat([inputs, tf.one_hot(labels, self.num_classes, dtype=inputs.dtype)], -1)
        params = self.decoder(inputs, training=training)
        param_shape = self.observation_model.param_shape(self.data_shape)
        params = tf.reshape(params, tf.concat([lead, param_shape], axis=0))
        return tf.ensure_shape(params, z.shape[:-1].concatenate(param_shape))

    def discriminate(self, z, labels=None, seed=None, training=False):
        """D's logits `[B]` for codes `[B, D]` (and labels, in discriminator label mode). With
        `training` and a `seed`, Gaussian noise of std `discriminator_noise` is added to z."""
        z = tf.cast(z, tf.float32)
        if training and seed is not None and self.discriminator_noise > 0:
            z = z + self.discriminator_noise * tf.random.stateless_normal(tf.shape(z), seed)
        if self.label_mode == "discriminator":
            slots = tf.where(labels < 0, self.num_classes, labels)
            z = tf.concat([z, tf.one_hot(slots, self.num_classes + 1, dtype=z.dtype)], axis=-1)
        logits = self.discriminator(z, training=training)
        return tf.reshape(tf.cast(logits, tf.float32), [-1])

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

    def observation_support(self):
        return self.observation_model.support

    def observation_name(self):
        return type(self.observation_model).__name__

    def log_likelihood(self, *args, **kwargs):
        """Not available: the AAE has no density (see `tfvae.evaluation.parzen_log_likelihood`)."""
        raise NotImplementedError(_NO_DENSITY.format(name=type(self).__name__))

    def log_importance_weights(self, *args, **kwargs):
        raise NotImplementedError(_NO_DENSITY.format(name=type(self).__name__))

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
        labels = tf.convert_to_tensor(labels)
        if labels.shape.rank == 0 and labels.dtype.is_integer:
            labels = tf.fill(tf.reshape(num_samples, [1]), labels)
        labels = self.check_labels(labels, self.num_classes, name="labels",
                                   allow_unlabelled=self.label_mode == "discriminator")
        if isinstance(num_samples, int) and labels.shape[0] not in (None, num_samples):
            raise ValueError(f"{type(self).__name__}.sample: expected one label per sample "
                             f"({num_samples}); got {labels.shape[0]} labels.")
        return labels

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
        reconstruction = -self.observation_model.log_prob(
            self.decoder_params(z, labels, training), x, len(self.data_shape))
        return reconstruction, {"loss": reconstruction, "reconstruction": reconstruction}

    def discriminator_losses(self, x, y=None, seed=None, training=False):
        """D's cross-entropy: prior samples labelled 1, codes labelled 0, per example `[B]`."""
        code_seed, prior_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        fake = tf.stop_gradient(self._codes(x, code_seed, training))
        real = self.prior_samples(tf.shape(fake)[0], y, prior_seed)
        labels = None if y is None else tf.concat([y, y], axis=0)
        logits = self.discriminate(tf.concat([real, fake], axis=0), labels, noise_seed, training)
        real_logits, fake_logits = tf.split(logits, 2)
        loss = objectives.discriminator_loss(real_logits, fake_logits)
        accuracy = 0.5 * (tf.cast(real_logits > 0, tf.float32) + tf.cast(fake_logits < 0, tf.float32))
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
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            prior=keras.saving.serialize_keras_object(self.latent_prior),
            posterior=self.posterior_type,
            likelihood=keras.saving.serialize_keras_object(self.observation_model),
            label_mode=self.label_mode, num_classes=self.num_classes, noise_dim=self.noise_dim,
            adversarial_weight=self.adversarial_weight,
            discriminator_noise=self.discriminator_noise,
            min_posterior_scale=self.min_posterior_scale)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "discriminator", "likelihood", "prior"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _network(network, target_shape):
    """The paper's MLP by default; tfvae bodies get their output shape set."""
    if network is None:
        network = networks.mlp(DEFAULT_HIDDEN_UNITS, activation="relu")
    if isinstance(network, dict):
        network = keras.saving.deserialize_keras_object(network)
    if isinstance(network, networks.Network):
        return network.with_target_shape(target_shape)
    return network


def _check_network(network, input_shape, output_shape, role):
    """Create the network's variables (a call on zeros) and check its output shape."""
    out = network(tf.zeros((1,) + tuple(input_shape)))
    if tuple(out.shape[1:]) != tuple(output_shape):
        raise ValueError(f"the {role} must map {tuple(input_shape)} to {tuple(output_shape)}; "
                         f"it gives {tuple(out.shape[1:])}.")
