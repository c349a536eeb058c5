"""Implicit Autoencoders (Makhzani 2018).

Both paths are implicit. The encoder gives a global code z ~ q(z|x) (deterministic, Gaussian, or
a categorical class); the decoder is a generator x̂ = g(z, n) whose local noise n ~ N(0, I) of
`local_dim` units lets it draw what the code leaves out (the style, given a class or a small
code). Two GANs replace the VAE's two terms:

- reconstruction: a discriminator D_rec on pairs tells data pairs (x, z ~ q(z|x)), drawn from
  q(x, z) = p_data(x) q(z|x), from reconstruction pairs (x̂ = g(z, n), z), drawn from
  r(x, z) = q(z) p(x|z); the encoder and decoder learn to fool it, which matches r to q;
- regularization: a discriminator D_reg tells prior samples z ~ p(z) from codes z ~ q(z), and
  the encoder learns to fool it, as in the adversarial autoencoder.

At the two discriminators' optima this maximizes the bound (Eq. 4 of the paper)

    E_data[log p(x)] ≥ −KL(q(x, z) ‖ r(x, z)) − KL(q(z) ‖ p(z)) − H_data(x),

and each discriminator's mean logit on its real side estimates its KL (the density-ratio
trick: D*'s logit is log q − log r), logged as `reconstruction_kl` and `regularization_kl`.

Each train step runs the phases of `GenerativeModel` with named optimizers: D_rec
(`discriminator_steps` times), D_rec's and D_reg's cross-entropies `objectives.discriminator_loss`,
then the encoder and decoder on the non-saturating `objectives.generator_loss` of both, then,
for a categorical code given labels, the labelled phase of the semi-supervised AAE (-log q(y|x)
on the labelled examples, y = -1 unlabelled).
"""
import keras
import numpy as np
import tensorflow as tf

from tfvae import distributions, objectives
from tfvae.models.base import (GenerativeModel, TrainingPhase, check_count, discriminator_terms,
                               labelled_classification_terms, labelled_count)
from tfvae.models.gan import ImplicitGenerator, gan_optimizer

__all__ = ["ImplicitAutoencoder"]

POSTERIORS = ("deterministic", "gaussian")


@keras.saving.register_keras_serializable(package="tfvae")
class ImplicitAutoencoder(ImplicitGenerator, GenerativeModel):
    """Implicit autoencoder: a global code z ~ q(z|x), an implicit decoder x̂ = g(z, n) with local
    noise n, and two GANs, on (x, z) pairs and on z (Makhzani 2018).

    Args:
        input_shape: shape of one observation: `(28, 28, 1)`, or `(2,)` for points in the plane.
        global_dim: size of the global code z; with `prior="categorical"`, the number of
            clusters (z is then a class-probability vector).
        local_dim: size of the decoder's local noise n (0: deterministic reconstructions).
        encoder: body mapping x to q's outputs (global_dim values; 2·global_dim for the Gaussian
            posterior). Default: `ImplicitGenerator.default_network` (conv for images).
        decoder: body mapping [z, n] `[B, global_dim + local_dim]` to `[B, *input_shape]`
            (before the output activation).
        reconstruction_discriminator: body mapping a pair to one logit. The pair is the image
            with z broadcast over its pixels as extra channels, `[B, H, W, C + global_dim]`
            (so the first convolution already sees the code), or, for other shapes,
            [flatten(x), z] `[B, prod(input_shape) + global_dim]`.
        regularization_discriminator: body mapping z `[B, global_dim]` to one logit.
        posterior: "deterministic" (z = f(x); for a categorical code, z = softmax(f(x))) or
            "gaussian" (z = μ(x) + σ(x)·ε).
        prior: p(z): "standard_normal", "categorical" (uniform one-hots over global_dim
            clusters), or anything `tfvae.distributions.get` takes. Only sampled.
        output_activation, discriminator_noise: see `ImplicitGenerator`. The noise is added to
            both parts of D_rec's pairs and to D_reg's codes.
        code_reconstruction_weight: weight of an optional cycle term in the autoencoder phase,
            `objectives.code_reconstruction_loss` of f(g(z, n)) against z (not in the paper; 0
            by default).
        mean_reconstruction_weight: weight of an optional anchor in the autoencoder phase: the
            squared error Σ (x − g(z, 0))² between the input and the decoder at the noise's mean
            (`objectives.squared_error`), so the reconstruction's centre keeps the input's content
            while D_rec shapes its spread around it. Not in the paper, but on by default (1.0):
            with 0, the paper's purely adversarial reconstruction, D_rec never learned to check
            that x and z belong together within the budget of `benchmarks/iae_mnist.py`
            (reconstructions kept the digit's class at chance, 8-11 %, after 2-3 epochs on 5,000
            images, with D_rec at 50 % accuracy; the cycle term and `mismatched_pairs` did not
            change that), while with it the class is kept and the local noise still varies the
            style (see docs/results.md).
        mismatched_pairs: also show D_rec data images paired with another example's code
            (x_i, z_{i+1}) as fake, the matching-aware discriminator of Reed et al. (2016, Sec.
            4.1): D_rec must then check that x and z belong together, not only that x looks like
            data, which is what makes reconstructions keep the input's content (not in the
            paper). Its loss is `objectives.discriminator_loss` with the fake side the mean of
            the two negatives' terms.
        discriminator_steps: D_rec updates per train step.
        seed: seeds the training noise (see `GenerativeModel`).

    `compile(optimizer=None, reconstruction_discriminator_optimizer=None,
    regularization_discriminator_optimizer=None, classifier_optimizer=None)` (the last with a
    categorical code): `optimizer` defaults to the DCGAN setting Adam(2e-4, β1 = 0.5) (what the
    MNIST settings were found with), and missing ones are copies of it; `.keras` keeps all.

    `fit(x)`; with a categorical code also `fit((x, y))`, y in [-1, global_dim), -1 unlabelled
    (semi-supervised classification, as `SemiSupervisedAAE`).

    Metrics: `loss` (the autoencoder phase's), `reconstruction_generator_loss` and
    `regularization_generator_loss` (ln 2 at the equilibrium), the discriminators' `*_loss`
    (2 ln 2) and `*_accuracy` (0.5), `reconstruction_kl` and `regularization_kl` (their
    density-ratio estimates, 0 at the equilibrium), `code_reconstruction`; with labels,
    `classification_loss` and `classification_error`.

    Tensors: `encode(x)` z `[B, global_dim]` (the mean for a Gaussian q; class probabilities
    for a categorical code); `decode(z, seed)` `[B, *input_shape]`, g(z, n) with n drawn from
    `seed` (None: n = 0, the noise's mean); `reconstruct(x, seed)`; `sample(n, seed)`; with a
    categorical code `classify(x)` `[B, K]` and `cluster(x)` int32 `[B]`. No density:
    `log_likelihood` raises.
    """

    metric_names = ("loss", "reconstruction_generator_loss", "regularization_generator_loss",
                    "reconstruction_discriminator_loss", "reconstruction_discriminator_accuracy",
                    "regularization_discriminator_loss", "regularization_discriminator_accuracy",
                    "reconstruction_kl", "regularization_kl", "code_reconstruction",
                    "mean_reconstruction",
                    "classification_loss", "classification_error")
    label_metric_names = ("classification_loss", "classification_error")
    nested_config_keys = ("encoder", "decoder", "reconstruction_discriminator",
                          "regularization_discriminator", "prior")

    def __init__(self, input_shape, global_dim, local_dim, *, encoder=None, decoder=None,
                 reconstruction_discriminator=None, regularization_discriminator=None,
                 posterior="deterministic", prior="standard_normal", output_activation="sigmoid",
                 discriminator_noise=0.1, code_reconstruction_weight=0.0,
                 mean_reconstruction_weight=1.0, mismatched_pairs=False,
                 discriminator_steps=1, min_posterior_scale=1e-4, seed=None, **kwargs):
        super().__init__(input_shape, seed=seed, **kwargs)
        name = type(self).__name__
        self.init_generator(output_activation, discriminator_noise)
        self.global_dim = check_count(global_dim, "global_dim", name)
        if (isinstance(local_dim, bool) or not isinstance(local_dim, (int, np.integer))
                or local_dim < 0):
            raise ValueError(f"{name}: expected local_dim as an integer >= 0 (0: deterministic "
                             f"reconstructions); got {local_dim!r}.")
        self.local_dim = int(local_dim)
        self.discriminator_steps = check_count(discriminator_steps, "discriminator_steps", name)
        if posterior not in POSTERIORS:
            raise ValueError(f"{name}: expected posterior as one of {POSTERIORS}; got {posterior!r}.")
        self.categorical = prior == "categorical"
        if self.categorical and posterior != "deterministic":
            raise ValueError(f"{name}: a categorical code is q(y|x) = softmax(f(x)), a "
                             f"deterministic posterior; got posterior={posterior!r}.")
        self.posterior_type = posterior
        weight = float(code_reconstruction_weight)
        if not weight >= 0:
            raise ValueError(f"{name}: expected code_reconstruction_weight >= 0; got "
                             f"{code_reconstruction_weight!r}.")
        self.code_reconstruction_weight = weight
        if not weight:  # no cycle term: nothing to log
            self.trackers.pop("code_reconstruction")
        self.mismatched_pairs = bool(mismatched_pairs)
        self.mean_reconstruction_weight = float(mean_reconstruction_weight)
        if not self.mean_reconstruction_weight >= 0:
            raise ValueError(f"{name}: expected mean_reconstruction_weight >= 0; got "
                             f"{mean_reconstruction_weight!r}.")
        if not self.mean_reconstruction_weight:
            self.trackers.pop("mean_reconstruction")
        self.min_posterior_scale = float(min_posterior_scale)
        self.latent_prior = distributions.get(
            "uniform_categorical" if self.categorical else prior, self.global_dim)
        # the labelled phase's optimizer exists only where there is a class to learn
        self.optimizer_names = ("optimizer", "reconstruction_discriminator_optimizer",
                                "regularization_discriminator_optimizer") + (
            ("classifier_optimizer",) if self.categorical else ())

        outputs = 2 * self.global_dim if posterior == "gaussian" else self.global_dim
        self.encoder = self.build_network(encoder, "encoder", self.data_shape, (outputs,))
        self.decoder = self.build_network(decoder, "decoder", (self.global_dim + self.local_dim,),
                                          self.data_shape)
        self.reconstruction_discriminator = self.build_network(
            reconstruction_discriminator, "discriminator", self.pair_shape, (1,))
        self.regularization_discriminator = self.build_network(
            regularization_discriminator, "code_discriminator", (self.global_dim,), (1,))
        self.build()

    @property
    def latent_dim(self):
        """The size of the global code z (what `encode` gives and `decode` takes)."""
        return self.global_dim

    @property
    def num_clusters(self):
        """The number of clusters of a categorical code (None otherwise)."""
        return self.global_dim if self.categorical else None

    @property
    def pair_shape(self):
        """The shape of one input of D_rec: the image with the code as extra channels, or the
        flattened observation followed by the code."""
        if len(self.data_shape) == 3:
            height, width, channels = self.data_shape
            return (height, width, channels + self.global_dim)
        size = 1
        for d in self.data_shape:
            size *= d
        return (size + self.global_dim,)

    def compile(self, optimizer=None, reconstruction_discriminator_optimizer=None,
                regularization_discriminator_optimizer=None, classifier_optimizer=None, **kwargs):
        extras = dict(reconstruction_discriminator_optimizer=reconstruction_discriminator_optimizer,
                      regularization_discriminator_optimizer=regularization_discriminator_optimizer)
        if self.categorical:
            extras["classifier_optimizer"] = classifier_optimizer
        elif classifier_optimizer is not None:
            raise ValueError(f"{type(self).__name__}: classifier_optimizer trains q(y|x) of a "
                             "categorical code (prior='categorical').")
        super().compile(optimizer=gan_optimizer() if optimizer is None else optimizer, **extras,
                        **kwargs)

    # ----------------------------------------------------------------- the two paths
    def encoder_outputs(self, x, training=False):
        """The encoder's raw outputs `[B, global_dim]` (`[B, 2·global_dim]` for the Gaussian q:
        its means, then the pre-softplus scales; logits for a categorical code)."""
        return tf.cast(self.encoder(x, training=training), tf.float32)

    def codes(self, x, seed=None, training=False):
        """z ~ q(z|x) `[B, global_dim]` for checked inputs (the Gaussian posterior draws with
        `seed`; None: its mean)."""
        outputs = self.encoder_outputs(x, training)
        if self.categorical:
            return tf.nn.softmax(outputs)
        if self.posterior_type == "deterministic":
            return outputs
        mean, raw_scale = tf.split(outputs, 2, axis=-1)
        if seed is None:
            return mean
        scale = tf.nn.softplus(raw_scale) + self.min_posterior_scale
        return mean + scale * tf.random.stateless_normal(tf.shape(mean), seed)

    def local_noise(self, batch, seed):
        """n ~ N(0, I) `[batch, local_dim]` drawn with `seed`; zeros (its mean) when seed is None."""
        shape = tf.stack([batch, self.local_dim])
        if seed is None:
            return tf.zeros(shape)
        return tf.random.stateless_normal(shape, seed)

    def generate_from(self, z, seed=None, training=False):
        """x̂ = g(z, n) `[B, *input_shape]` for codes `[B, global_dim]`, n drawn with `seed`."""
        z = tf.cast(z, tf.float32)
        inputs = tf.concat([z, self.local_noise(tf.shape(z)[0], seed)], axis=-1)
        return self.generate(self.decoder, tf.ensure_shape(
            inputs, (z.shape[0], self.global_dim + self.local_dim)), training)

    def reconstruction_pair(self, x, z):
        """D_rec's input `[B, *pair_shape]` for observations `[B, ...]` and codes `[B, G]`: row i
        pairs x_i with z_i (images: z_i repeated over every pixel of x_i as extra channels)."""
        x, z = tf.cast(x, tf.float32), tf.cast(z, tf.float32)
        if len(self.data_shape) == 3:
            height, width = self.data_shape[:2]
            planes = tf.tile(z[:, None, None, :], [1, height, width, 1])
            return tf.concat([x, planes], axis=-1)
        return tf.concat([tf.reshape(x, [-1, self.pair_shape[0] - self.global_dim]), z], axis=-1)

    # ----------------------------------------------------------------- training
    def check_targets(self, y, x):
        if y is None:
            return None
        if not self.categorical:
            raise ValueError(f"{type(self).__name__}: labels train q(y|x) of a categorical code; "
                             "this model has a continuous one (use prior='categorical', or fit(x)).")
        return self.check_labels(y, self.global_dim, x=x, allow_unlabelled=True)

    def training_phases(self):
        """D_rec (`discriminator_steps` times), D_reg, then the encoder and decoder; with a
        categorical code, the labelled phase (the encoder, on the labelled examples only)."""
        phases = [TrainingPhase("reconstruction_discriminator_optimizer",
                                self.reconstruction_discriminator.trainable_variables,
                                self.reconstruction_discriminator_losses)] * self.discriminator_steps
        phases += [
            TrainingPhase("regularization_discriminator_optimizer",
                          self.regularization_discriminator.trainable_variables,
                          self.regularization_discriminator_losses),
            TrainingPhase("optimizer", self.encoder.trainable_variables
                          + self.decoder.trainable_variables, self.autoencoder_losses)]
        if self.categorical:
            phases.append(TrainingPhase("classifier_optimizer", self.encoder.trainable_variables,
                                        self.classification_losses, regularization=False,
                                        count_fn=labelled_count))
        return phases

    def _seeds(self, seed, count):
        return tf.unstack(tf.random.experimental.stateless_split(seed, count))

    def reconstruction_logits(self, x, z, x_hat, seed=None, training=False):
        """D_rec's logits on the data pairs (x, z) and the reconstruction pairs (x̂, z), `[B]` each."""
        pairs = tf.concat([self.reconstruction_pair(x, z), self.reconstruction_pair(x_hat, z)], 0)
        return tf.split(self.discriminator_logits(self.reconstruction_discriminator, pairs, seed,
                                                  training), 2)

    def reconstruction_discriminator_losses(self, x, y=None, seed=None, training=False):
        """D_rec's cross-entropy of data pairs (label 1) against reconstruction pairs (label 0)."""
        code_seed, noise_seed, instance_seed = self._seeds(seed, 3)
        z = tf.stop_gradient(self.codes(x, code_seed, training))
        x_hat = tf.stop_gradient(self.generate_from(z, noise_seed, training))
        real, fake = self.reconstruction_logits(x, z, x_hat, instance_seed, training)
        loss, accuracy = discriminator_terms(real, fake)
        if self.mismatched_pairs:  # (x_i, z_{i+1}): real images, the wrong code
            mismatched = self.discriminator_logits(
                self.reconstruction_discriminator,
                self.reconstruction_pair(x, tf.roll(z, shift=-1, axis=0)),
                tf.random.experimental.stateless_fold_in(instance_seed, 1), training)
            loss = 0.5 * (loss + objectives.discriminator_loss(real, mismatched))
        return loss, {"reconstruction_discriminator_loss": loss,
                      "reconstruction_discriminator_accuracy": accuracy, "reconstruction_kl": real}

    def regularization_discriminator_losses(self, x, y=None, seed=None, training=False):
        """D_reg's cross-entropy of codes (label 1: KL(q(z) ‖ p(z)) is its real side's mean
        logit) against prior samples (label 0)."""
        code_seed, prior_seed, instance_seed = self._seeds(seed, 3)
        z = tf.stop_gradient(self.codes(x, code_seed, training))
        prior = tf.cast(self.latent_prior.sample(tf.shape(z)[0], seed=prior_seed), tf.float32)
        logits = self.discriminator_logits(self.regularization_discriminator,
                                           tf.concat([z, prior], 0), instance_seed, training)
        real, fake = tf.split(logits, 2)
        loss, accuracy = discriminator_terms(real, fake)
        return loss, {"regularization_discriminator_loss": loss,
                      "regularization_discriminator_accuracy": accuracy, "regularization_kl": real}

    def autoencoder_losses(self, x, y=None, seed=None, training=False):
        """The encoder's and decoder's non-saturating losses: -log D_rec(x̂, z) (the
        reconstruction pair taken for data) and -log(1 - D_reg(z)) (the code taken for a prior
        sample), plus the optional cycle term, `[B]`."""
        code_seed, noise_seed, instance_seed, code_instance_seed = self._seeds(seed, 4)
        z = self.codes(x, code_seed, training)
        x_hat = self.generate_from(z, noise_seed, training)
        fake = self.discriminator_logits(self.reconstruction_discriminator,
                                         self.reconstruction_pair(x_hat, z), instance_seed, training)
        reconstruction = objectives.generator_loss(fake)
        code_logits = self.discriminator_logits(self.regularization_discriminator, z,
                                                code_instance_seed, training)
        regularization = objectives.generator_loss(-code_logits)
        loss = reconstruction + regularization
        logs = {"reconstruction_generator_loss": reconstruction,
                "regularization_generator_loss": regularization}
        if self.code_reconstruction_weight:
            recovered = self.encoder_outputs(x_hat, training)
            if self.posterior_type == "gaussian":
                recovered = tf.split(recovered, 2, axis=-1)[0]
            cycle = objectives.code_reconstruction_loss(z, recovered, self.categorical)
            loss += self.code_reconstruction_weight * cycle
            logs["code_reconstruction"] = cycle
        if self.mean_reconstruction_weight:
            anchor = objectives.squared_error(x, self.generate_from(z, None, training),
                                              len(self.data_shape))
            loss += self.mean_reconstruction_weight * anchor
            logs["mean_reconstruction"] = anchor
        logs["loss"] = loss
        return loss, logs

    def classification_losses(self, x, y=None, seed=None, training=False):
        """-log q(y|x) on the labelled examples (0 elsewhere), `[B]`."""
        logits = self.encoder_outputs(x, training)
        return labelled_classification_terms(logits, y)

    # ----------------------------------------------------------------- tensors
    def prior(self):
        """p(z) as a TFP distribution (a uniform one-hot categorical for a categorical code)."""
        return self.latent_prior.distribution()

    def posterior(self, x):
        raise NotImplementedError(
            f"{type(self).__name__}.posterior: q(z|x) is given by its samples; use encode(x) "
            "(its mean) or model.codes(x, seed).")

    def encode(self, x):
        """The global code `[B, global_dim]`: f(x), the mean of a Gaussian q, or q(y|x)."""
        return self.codes(self.check_input(x))

    def decode(self, z, seed=None):
        """x̂ = g(z, n) `[N, *input_shape]` for codes `[N, global_dim]`; n drawn with `seed`
        (None: n = 0)."""
        z = self.check_codes(z, self.global_dim)
        return self.generate_from(z, None if seed is None else distributions.stateless_seed(seed))

    def reconstruct(self, x, seed=None):
        """g(z, n) with z ~ q(z|x) and n drawn with `seed` (None: z the mean code and n = 0):
        different seeds give different reconstructions when local_dim > 0."""
        x = self.check_input(x)
        if seed is None:
            return self.generate_from(self.codes(x))
        code_seed, noise_seed = self._seeds(distributions.stateless_seed(seed), 2)
        return self.generate_from(self.codes(x, code_seed), noise_seed)

    def sample(self, num_samples, seed=None):
        """`num_samples` draws g(z, n), z ~ p(z), n ~ N(0, I)."""
        num_samples = self.check_count(num_samples, "num_samples")
        prior_seed, noise_seed = self._seeds(distributions.stateless_seed(seed), 2)
        z = tf.cast(self.latent_prior.sample(num_samples, seed=prior_seed), tf.float32)
        return self.generate_from(z, noise_seed)

    def classify(self, x):
        """q(y|x) `[B, global_dim]` of a categorical code."""
        self._require_categorical("classify")
        return self.encode(x)

    def cluster(self, x):
        """The most probable cluster of each example, int32 `[B]` (argmax of q(y|x))."""
        self._require_categorical("cluster")
        return tf.argmax(self.encode(x), axis=-1, output_type=tf.int32)

    def _require_categorical(self, method):
        if not self.categorical:
            raise ValueError(f"{type(self).__name__}.{method} needs a categorical code "
                             "(prior='categorical', global_dim = the number of clusters).")

    def call(self, x, training=False):
        """The reconstruction g(mean code, n = 0) (a tensor, so predict() and export work)."""
        return self.reconstruct(x)

    # ----------------------------------------------------------------- export
    def serving_endpoints(self):
        """The default endpoints (no `log_likelihood`), with `decode(z, seed)` → `x`; with a
        categorical code also `classify(x)` → `probabilities` and `cluster(x)` → `cluster`."""
        from tfvae import export as export_lib  # the export layer sits above the models

        endpoints = export_lib.default_endpoints(self)
        x_spec = tf.TensorSpec((None,) + self.data_shape, tf.float32, name="x")

        def decode(z, seed):
            return {"x": self.decode(z, seed=seed)}

        endpoints["decode"] = (decode, [tf.TensorSpec((None, self.global_dim), tf.float32, name="z"),
                                        tf.TensorSpec([2], tf.int32, name="seed")])
        if self.categorical:
            def classify(x):
                return {"probabilities": self.classify(x)}

            def cluster(x):
                return {"cluster": self.cluster(x)}

            endpoints.update(classify=(classify, [x_spec]), cluster=(cluster, [x_spec]))
        return endpoints

    # ----------------------------------------------------------------- saving
    def get_config(self):
        config = super().get_config()
        config.update(
            global_dim=self.global_dim, local_dim=self.local_dim, posterior=self.posterior_type,
            prior=("categorical" if self.categorical
                   else keras.saving.serialize_keras_object(self.latent_prior)),
            code_reconstruction_weight=self.code_reconstruction_weight,
            mismatched_pairs=self.mismatched_pairs,
            mean_reconstruction_weight=self.mean_reconstruction_weight,
            discriminator_steps=self.discriminator_steps,
            min_posterior_scale=self.min_posterior_scale,
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            reconstruction_discriminator=keras.saving.serialize_keras_object(
                self.reconstruction_discriminator),
            regularization_discriminator=keras.saving.serialize_keras_object(
                self.regularization_discriminator),
            **self.generator_config())
        return config
