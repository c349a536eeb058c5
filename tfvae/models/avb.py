"""Adversarial Variational Bayes (Mescheder et al. 2017).

The inference model is any network that takes noise as an extra input, z = f(x, ε) with
ε ~ N(0, I): a black-box posterior q(z|x) with no density. The KL term of the ELBO,
E_q[log q(z|x) − log p(z)], is estimated by a discriminator T(x, z) trained to tell pairs
(x, z ~ q(z|x)) from pairs (x, z ~ p(z)) by logistic regression (Eq. 3): its optimum is
T*(x, z) = log q(z|x) − log p(z) (Proposition 1), so the encoder and decoder maximize

    E_{p_D(x)} E_ε [ −T(x, f(x, ε)) + log p(x | f(x, ε)) ]                      (Eq. 4)

with T held fixed (Proposition 2: T's gradient in its parameters vanishes at the optimum, so the
gradient through z is the KL's). Each train step runs two `TrainingPhase`s of `GenerativeModel`:
the discriminator (T alone, `discriminator_optimizer`) and the autoencoder (encoder and decoder,
`optimizer`); the GAN loss is `objectives.discriminator_loss`, shared with the adversarial
autoencoders.

Adaptive contrast (Sec. 4): T has to represent the whole log-ratio of q and p, which grows with
their distance. With `adaptive_contrast=True` the contrast is r_α(z|x) = N(μ(x), σ²(x)), the
Gaussian with the mean and variance of q(z|x) (estimated from `contrast_samples` draws per x,
gradients stopped); T sees z̃ = (z − μ)/σ and tells it from ε ~ N(0, I), and the objective is

    E [ log p(x|z) + log p(z) − log r_α(z|x) − T(x, z̃) ]                        (Eq. 11)

where T estimates KL(q̃(z̃|x) ‖ N(0, I)) = KL(q(z|x) ‖ r_α(z|x)), a much smaller quantity.

`NeuralSampler` is the same machinery without x (the paper's Figure 1 and Sec. 5.1): a network
z = g(ε) trained so that its samples follow an unnormalized density p̃(z), through the estimate
E[log p̃(z) − log r(z) − T(z̃)] of −KL(q ‖ p) up to log Z.
"""
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import distributions, likelihoods, networks, objectives
from tfvae.models.base import (DecoderDensity, GenerativeModel, TrainingPhase, check_count,
                               discriminator_terms)

tfd = tfp.distributions

__all__ = ["AVB", "NeuralSampler"]

_NO_DENSITY = (
    "{name} has no posterior density: its encoder is a black box z = f(x, ε), so importance "
    "sampling with q(z|x) cannot evaluate it. Use annealed importance sampling, which needs only "
    "the decoder's density: tfvae.evaluation.ais_log_likelihood(model, x).")


def _standard_normal(dim):
    """N(0, I) over `dim` units: the neural sampler's reference for z."""
    zeros = tf.zeros([dim])
    return tfd.Independent(tfd.Normal(zeros, 1.0), reinterpreted_batch_ndims=1)


class _AdversarialVariationalBase(GenerativeModel):
    """What AVB and the neural sampler share: a noise-driven sampler of codes, a discriminator T
    over (context, code) pairs against a reference distribution, the adaptive contrast, the two
    training phases and the objective of Eq. 4 / Eq. 11.

    A subclass provides `codes(x, num_samples, seed, training)` → `[S, B, D]`, `context(x)`
    (T's extra input per example, `[B, C]`, or None), `log_target(x, z)` (log p(x|z) + log p(z)
    up to a constant, `[S, B]`) and `reference` (the prior p(z) as a TFP distribution).
    """

    optimizer_names = ("optimizer", "discriminator_optimizer")
    metric_names = ("loss", "elbo", "reconstruction", "kl", "discriminator_loss",
                    "discriminator_accuracy")
    #: Whether T's logits get the reference term ½‖z̃‖² under adaptive contrast (`discriminate`).
    contrast_reference_term = False

    def __init__(self, input_shape, latent_dim, *, adaptive_contrast=False, contrast_samples=16,
                 discriminator_steps=1, min_contrast_scale=1e-4, **kwargs):
        name = type(self).__name__
        self.latent_dim = check_count(latent_dim, "latent_dim", name)
        self.contrast_samples = check_count(contrast_samples, "contrast_samples", name)
        self.discriminator_steps = check_count(discriminator_steps, "discriminator_steps", name)
        if adaptive_contrast and self.contrast_samples < 2:
            raise ValueError(f"{name}: adaptive_contrast estimates the mean and variance of q from "
                             f"contrast_samples >= 2 draws per example; got {contrast_samples}.")
        super().__init__(input_shape, **kwargs)
        self.adaptive_contrast = bool(adaptive_contrast)
        self.min_contrast_scale = float(min_contrast_scale)

    # ----------------------------------------------------------------- T
    def discriminator_input(self, context, z):
        """T's input `[N, C + D]` (or `[N, D]` without a context) for codes `[S, B, D]` and a
        context `[B, C]` repeated for each of the S draws: the pair (x, z) of the right example."""
        z = tf.cast(z, tf.float32)
        if context is None:
            return tf.reshape(z, [-1, self.latent_dim])
        context = tf.broadcast_to(context[None], tf.concat([tf.shape(z)[:1], tf.shape(context)], 0))
        pairs = tf.concat([context, z], axis=-1)
        return tf.reshape(pairs, [-1, pairs.shape[-1]])

    def discriminate(self, context, z, training=False):
        """T(context, z) for codes `[S, B, D]`: logits `[S, B]`.

        The network's output plus log ref(0) − log ref(z) of T's reference (½‖z‖² for
        N(0, I), as in the authors' code): T* = log q − log ref, so the network is left with
        log q(z|x) up to a constant, and starts near 0 (the full −log ref(z) would start every
        logit at (D/2) log 2π, a bias that takes Adam thousands of steps to unlearn). Under
        adaptive contrast the reference of z̃ is N(0, I), and the term is added only where
        `contrast_reference_term` says so: the authors' AVB+AC adds none (q̃ is close to N(0, I)
        by construction, and the term kept T at chance on MNIST with D = 8), their neural
        sampler does (`NeuralSampler.contrast_reference_term`).
        """
        logits = self.discriminator(self.discriminator_input(context, z), training=training)
        logits = tf.reshape(tf.cast(logits, tf.float32), tf.shape(z)[:-1])
        if self.adaptive_contrast and not self.contrast_reference_term:
            return logits
        z = tf.cast(z, tf.float32)
        reference = _standard_normal(self.latent_dim) if self.adaptive_contrast else self.reference
        return logits + reference.log_prob(tf.zeros_like(z[..., :1, :])) - reference.log_prob(z)

    # ----------------------------------------------------------------- the contrast
    def contrast_moments(self, z):
        """The adaptive contrast's (μ, σ) `[B, D]` from draws `[S, B, D]` of q, gradients
        stopped (Sec. 4: r_α is a Gaussian with the moments of q)."""
        return objectives.sample_moments(tf.stop_gradient(z), axis=0,
                                         min_scale=self.min_contrast_scale)

    def num_training_draws(self):
        """Draws of q per example in a training step: enough for the contrast's moments."""
        return self.contrast_samples if self.adaptive_contrast else 1

    def reference_log_prob(self, z):
        """log r(z) of T's reference without adaptive contrast, `[S, B]`; None where the
        reference is the prior p(z) itself, whose terms in Eq. 11 then cancel (Eq. 4)."""
        return None

    # ----------------------------------------------------------------- phases
    def training_phases(self):
        """`discriminator_steps` updates of T first (so that the autoencoder's step sees a T
        closer to T*; the authors take 2 on the toy problems), then one of the sampler."""
        discriminator = TrainingPhase("discriminator_optimizer", self.discriminator.trainable_variables,
                                      self.discriminator_losses)
        return [discriminator] * self.discriminator_steps + [
            TrainingPhase("optimizer", self.autoencoder_variables(), self.compute_losses)]

    def autoencoder_variables(self):
        """The variables of the phase that maximizes Eq. 4 (everything but T)."""
        raise NotImplementedError

    def discriminator_losses(self, x, y=None, seed=None, training=False):
        """T's cross-entropy (Eq. 3) per example: q-samples labelled 1, reference samples 0."""
        code_seed, reference_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z = tf.stop_gradient(self.codes(x, self.num_training_draws(), code_seed, training))
        batch = tf.shape(z)[1]
        if self.adaptive_contrast:
            mean, scale = self.contrast_moments(z)
            real = (z[:1] - mean) / scale                         # z̃ of one draw per example
            fake = tf.random.stateless_normal(tf.shape(real), reference_seed)
        else:
            real = z[:1]
            fake = self.reference.sample([1, batch], seed=reference_seed)
        context = self.context(x)
        logits = self.discriminate(context, tf.concat([real, fake], axis=0), training)
        loss, accuracy = discriminator_terms(logits[0], logits[1])
        return loss, {"discriminator_loss": loss, "discriminator_accuracy": accuracy}

    def compute_losses(self, x, y=None, seed=None, training=False):
        """−(Eq. 4) per example, or −(Eq. 11) with adaptive contrast, averaged over the draws."""
        z = self.codes(x, self.num_training_draws(), seed, training)            # [S, B, D]
        log_likelihood, log_prior = self.log_target(x, z)                        # [S, B] each
        if self.adaptive_contrast:
            mean, scale = self.contrast_moments(z)
            log_contrast = objectives.diagonal_gaussian_log_prob(z, mean, scale)
            t = self.discriminate(self.context(x), (z - mean) / scale, training)
            elbo = objectives.avb_elbo(log_likelihood, t, log_prior, log_contrast)
        else:
            t = self.discriminate(self.context(x), z, training)
            log_reference = self.reference_log_prob(z)  # None: the reference is the prior
            elbo = objectives.avb_elbo(log_likelihood, t, None if log_reference is None else log_prior,
                                       log_reference)
        elbo = tf.reduce_mean(elbo, axis=0)
        reconstruction = -tf.reduce_mean(log_likelihood, axis=0)
        return -elbo, {"loss": -elbo, "elbo": elbo, "reconstruction": reconstruction,
                       "kl": -elbo - reconstruction}


@keras.saving.register_keras_serializable(package="tfvae")
class AVB(DecoderDensity, _AdversarialVariationalBase):
    """Adversarial Variational Bayes: a black-box encoder z = f(x, ε), a decoder p(x|z) and a
    discriminator T(x, z) that estimates log q(z|x) − log p(z) (Mescheder et al. 2017).

    Args:
        input_shape: shape of one observation, e.g. `(28, 28, 1)` or `(2, 2, 1)`.
        latent_dim: D, the size of z.
        encoder: a body mapping `[B, prod(input_shape) + noise_dim]` (the flattened x and ε,
            concatenated) to z `[B, D]` (default: `networks.mlp([256, 256])`).
        decoder: a body mapping z `[B, D]` to the likelihood's parameters (default: the same MLP).
        discriminator: a body mapping `[N, prod(input_shape) + D]` (x and z concatenated) to one
            logit `[N, 1]` (default: `networks.mlp([256, 256, 256])`).
        noise_dim: size of ε (default: D).
        likelihood: 'bernoulli', 'gaussian', 'fixed_gaussian' or a `tfvae.likelihoods.Likelihood`.
        prior: p(z), a name or `tfvae.distributions.Prior` with a density (default N(0, I)).
        adaptive_contrast: use r_α(z|x) = N(μ(x), σ²(x)) as the contrast (Sec. 4, Eq. 11).
        contrast_samples: draws of q per example for r_α's moments (with adaptive contrast).
        discriminator_steps: updates of T per train step (before the autoencoder's one).
        encode_samples: draws averaged by `encode(x)` (an estimate of E_q[z|x]).

    Metrics: `elbo` (estimated through T: not a bound, see `tfvae.evaluation.ais_log_likelihood`
    for log p(x)), `reconstruction` (−log p(x|z), nats), `kl` (T's estimate), and T's
    `discriminator_loss` and `discriminator_accuracy`.
    """

    has_density = False  # q(z|x) has none: no importance-sampled log_likelihood (AIS instead)
    nested_config_keys = ("encoder", "decoder", "discriminator", "likelihood", "prior")

    def __init__(self, input_shape, latent_dim, *, encoder=None, decoder=None, discriminator=None,
                 noise_dim=None, likelihood="bernoulli", prior="standard_normal",
                 adaptive_contrast=False, contrast_samples=16, encode_samples=64, **kwargs):
        name = type(self).__name__
        super().__init__(input_shape, latent_dim, adaptive_contrast=adaptive_contrast,
                         contrast_samples=contrast_samples, **kwargs)
        self.noise_dim = self.latent_dim if noise_dim is None else check_count(noise_dim, "noise_dim", name)
        self.encode_samples = check_count(encode_samples, "encode_samples", name)
        self.observation_model = likelihoods.get(likelihood)
        self.latent_prior = distributions.get(prior, self.latent_dim)
        if not self.latent_prior.has_density:
            raise ValueError(f"{name} needs a prior with a density; "
                             f"{type(self.latent_prior).__name__} can only be sampled.")
        width = math.prod(self.data_shape)
        param_shape = self.observation_model.param_shape(self.data_shape)
        self.encoder = networks.resolve(encoder, (self.latent_dim,), lambda: networks.mlp([256, 256]))
        self.decoder = networks.resolve(decoder, param_shape, lambda: networks.mlp([256, 256]))
        self.discriminator = networks.resolve(discriminator, (1,),
                                              lambda: networks.mlp([256, 256, 256]))
        networks.check_output(self.encoder, (width + self.noise_dim,), (self.latent_dim,), "encoder")
        networks.check_output(self.decoder, (self.latent_dim,), param_shape, "decoder")
        networks.check_output(self.discriminator, (width + self.latent_dim,), (1,), "discriminator")
        self.build()

    @property
    def reference(self):
        """The distribution T contrasts q-samples with (without adaptive contrast): p(z)."""
        return self.prior()

    def compile(self, optimizer="adam", discriminator_optimizer=None, **kwargs):
        """Keras `compile` with T's own optimizer (default: a fresh copy of `optimizer`)."""
        super().compile(optimizer=optimizer, discriminator_optimizer=discriminator_optimizer, **kwargs)

    def autoencoder_variables(self):
        """The encoder's and the decoder's variables (the phase of Eq. 4)."""
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    # ----------------------------------------------------------------- networks
    def context(self, x):
        """x flattened, `[B, prod(input_shape)]`: what T and the encoder see of an example."""
        return tf.reshape(tf.cast(x, tf.float32), [-1, math.prod(self.data_shape)])

    def codes(self, x, num_samples, seed, training=False):
        """`num_samples` draws z = f(x, ε), ε ~ N(0, I), per example: `[S, B, D]`."""
        context = self.context(x)
        batch = tf.shape(context)[0]
        noise = tf.random.stateless_normal(tf.stack([num_samples, batch, self.noise_dim]), seed)
        context = tf.broadcast_to(context[None], tf.stack([num_samples, batch, context.shape[-1]]))
        inputs = tf.concat([context, noise], axis=-1)
        z = self.encoder(tf.reshape(inputs, [-1, inputs.shape[-1]]), training=training)
        return tf.reshape(tf.cast(z, tf.float32), tf.stack([num_samples, batch, self.latent_dim]))

    def log_target(self, x, z):
        """(log p(x|z), log p(z)), `[S, B]` each, for codes `[S, B, D]`."""
        return self.conditional_log_prob(x, z), self.prior().log_prob(z)

    # ----------------------------------------------------------------- distributions
    def prior(self):
        return self.latent_prior.distribution()

    def posterior(self, x):
        raise NotImplementedError(_NO_DENSITY.format(name=type(self).__name__))

    def log_likelihood(self, *args, **kwargs):
        """Not available: q(z|x) has no density. See `tfvae.evaluation.ais_log_likelihood`."""
        raise NotImplementedError(_NO_DENSITY.format(name=type(self).__name__))

    def log_importance_weights(self, *args, **kwargs):
        raise NotImplementedError(_NO_DENSITY.format(name=type(self).__name__))

    # ----------------------------------------------------------------- tensors
    def posterior_samples(self, x, num_samples=None, seed=0):
        """`num_samples` (default `encode_samples`) draws of q(z|x) per example, `[S, B, D]`."""
        x = self.check_input(x)
        num_samples = self.encode_samples if num_samples is None else self.check_count(num_samples, "num_samples")
        return self.codes(x, num_samples, distributions.stateless_seed(seed))

    def posterior_moments(self, x, num_samples=None, seed=0):
        """(mean, stddev) of q(z|x) `[B, D]` each, from `num_samples` draws (default
        `encode_samples`); what adaptive contrast's r_α and AIS's step sizes use."""
        return objectives.sample_moments(self.posterior_samples(x, num_samples, seed), axis=0,
                                         min_scale=self.min_contrast_scale)

    def encode(self, x):
        """E_q[z|x] estimated from `encode_samples` draws with a fixed seed: `[B, D]`, the same
        for the same x."""
        return tf.reduce_mean(self.posterior_samples(x), axis=0)

    def decode(self, z):
        """E[x|z] for codes `[N, D]`."""
        z = self.check_codes(z, self.latent_dim)
        return self.observation_model.mean(self.decoder(z))

    def reconstruct(self, x, seed=None):
        """decode(encode(x)) without a seed; with one, a draw z = f(x, ε) decoded."""
        if seed is None:
            return self.decode(self.encode(x))
        return self.decode(self.posterior_samples(x, 1, seed)[0])

    def sample(self, num_samples, seed=None):
        """`num_samples` observations E[x|z], z ~ p(z)."""
        num_samples = self.check_count(num_samples, "num_samples")
        z = self.latent_prior.sample(num_samples, seed=distributions.stateless_seed(seed))
        return self.decode(z)

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim, noise_dim=self.noise_dim,
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            likelihood=keras.saving.serialize_keras_object(self.observation_model),
            prior=keras.saving.serialize_keras_object(self.latent_prior),
            adaptive_contrast=self.adaptive_contrast, contrast_samples=self.contrast_samples,
            discriminator_steps=self.discriminator_steps, encode_samples=self.encode_samples,
            min_contrast_scale=self.min_contrast_scale)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class NeuralSampler(_AdversarialVariationalBase):
    """AVB outside autoencoders (Mescheder et al. 2017, Fig. 1 and Sec. 5.1): a network
    z = g(ε), ε ~ N(0, I), trained so that its samples follow an unnormalized density p̃(z).

    It maximizes E_ε[log p̃(g(ε)) − log r(z) − T(z̃)] = −KL(q ‖ p̃/Z) + log Z (up to T's error),
    with T telling samples from the reference r: N(0, I) on z itself, or with
    `adaptive_contrast=True` (the default) the Gaussian with the batch's mean and variance, T
    then seeing the standardized z̃. The same phases and objectives as `AVB`; there is no data.

    Args:
        target_log_prob_fn: log p̃(z) for z `[..., D]` → `[...]` (TensorFlow ops; any constant).
        event_dim: D.
        noise_dim: size of ε (default: D).
        generator, discriminator: bodies (default: `networks.mlp([128, 128, 128])` each).
        adaptive_contrast: the Gaussian reference with the batch's moments (default True).
        discriminator_steps: updates of T per train step (before the generator's one).

    `fit(steps=N, batch_size=B)` trains (it draws its own noise), `sample(n, seed)` draws. To save
    it as `.keras`, register `target_log_prob_fn` with `keras.saving.register_keras_serializable`.
    """

    metric_names = ("loss", "elbo", "kl", "discriminator_loss", "discriminator_accuracy")
    nested_config_keys = ("target_log_prob_fn", "generator", "discriminator")
    contrast_reference_term = True  # as the authors' sampler: ½‖z̃‖² in T's logits

    def __init__(self, target_log_prob_fn, event_dim, *, noise_dim=None, generator=None,
                 discriminator=None, adaptive_contrast=True, seed=None, **kwargs):
        name = type(self).__name__
        if not callable(target_log_prob_fn):
            raise TypeError(f"{name}: expected target_log_prob_fn as a callable z -> log p~(z); "
                            f"got {target_log_prob_fn!r}.")
        kwargs.pop("input_shape", None)  # from get_config: a batch of placeholders (below)
        super().__init__((1,), event_dim, adaptive_contrast=adaptive_contrast,
                         contrast_samples=2, seed=seed, validate_inputs=False, **kwargs)
        self.target_log_prob_fn = target_log_prob_fn
        self.noise_dim = self.latent_dim if noise_dim is None else check_count(noise_dim, "noise_dim", name)
        self.generator = networks.resolve(generator, (self.latent_dim,),
                                          lambda: networks.mlp([128, 128, 128]))
        self.discriminator = networks.resolve(discriminator, (1,),
                                              lambda: networks.mlp([128, 128, 128]))
        networks.check_output(self.generator, (self.noise_dim,), (self.latent_dim,), "generator")
        networks.check_output(self.discriminator, (self.latent_dim,), (1,), "discriminator")
        self.build()

    @property
    def reference(self):
        """N(0, I): T's reference samples without adaptive contrast."""
        return _standard_normal(self.latent_dim)

    def num_training_draws(self):
        """One draw per placeholder: the contrast's moments are the batch's (one q for all)."""
        return 1

    def reference_log_prob(self, z):
        """log N(z; 0, I): the sampler's reference is not part of its target."""
        return self.reference.log_prob(z)

    def contrast_moments(self, z):
        """The batch's (μ, σ) `[1, D]` for draws `[1, B, D]`, gradients stopped."""
        mean, scale = objectives.sample_moments(tf.stop_gradient(z[0]), axis=0,
                                                min_scale=self.min_contrast_scale)
        return mean[None], scale[None]

    def autoencoder_variables(self):
        """The generator's variables (the sampler's phase)."""
        return self.generator.trainable_variables

    def context(self, x):
        """None: the sampler's T sees the code alone."""
        return None

    def codes(self, x, num_samples, seed, training=False):
        """Draws z = g(ε), `[S, B, D]`, B = the batch of placeholders `x`."""
        batch = tf.shape(x)[0]
        noise = tf.random.stateless_normal(tf.stack([num_samples * batch, self.noise_dim]), seed)
        z = tf.cast(self.generator(noise, training=training), tf.float32)
        return tf.reshape(z, tf.stack([num_samples, batch, self.latent_dim]))

    def log_target(self, x, z):
        """(log p̃(z), 0): the target density plays the part of log p(x|z) + log p(z)."""
        log_target = tf.cast(self.target_log_prob_fn(z), tf.float32)
        return log_target, tf.zeros_like(log_target)

    def compute_losses(self, x, y=None, seed=None, training=False):
        loss, logs = super().compute_losses(x, y, seed, training)
        logs.pop("reconstruction")
        logs["kl"] = -logs["elbo"]  # KL(q ‖ p̃) up to log Z
        return loss, logs

    def fit(self, steps=1000, batch_size=256, epochs=1, **kwargs):
        """Train for `steps` steps of `batch_size` samples each, spread over `epochs` epochs
        (the model draws its own noise: there is no data). Returns Keras' History."""
        steps = self.check_count(steps, "steps")
        batch_size = self.check_count(batch_size, "batch_size")
        epochs = self.check_count(epochs, "epochs")
        if steps % epochs:
            raise ValueError(f"{type(self).__name__}.fit: expected steps ({steps}) to be a multiple "
                             f"of epochs ({epochs}).")
        if "x" in kwargs or "y" in kwargs:
            raise TypeError(f"{type(self).__name__}.fit takes no data: it draws its own noise.")
        placeholders = tf.data.Dataset.from_tensors(tf.zeros([batch_size, 1])).repeat()
        kwargs.setdefault("shuffle", False)  # the placeholders have no order to shuffle
        return super().fit(placeholders, epochs=epochs, steps_per_epoch=steps // epochs, **kwargs)

    def sample(self, num_samples, seed=None):
        """`num_samples` draws z = g(ε), `[N, D]`."""
        num_samples = self.check_count(num_samples, "num_samples")
        return self.codes(tf.zeros([num_samples, 1]), 1, distributions.stateless_seed(seed))[0]

    def encode(self, x):
        raise NotImplementedError(f"{type(self).__name__} has no encoder: it only samples.")

    def decode(self, z):
        raise NotImplementedError(f"{type(self).__name__} has no decoder: it only samples.")

    def call(self, x, training=False):
        return self.codes(x, 1, distributions.stateless_seed(0), training)[0]

    def get_config(self):
        config = super().get_config()
        for key in ("input_shape", "validate_inputs"):
            config.pop(key)
        config.update(
            target_log_prob_fn=keras.saving.serialize_keras_object(self.target_log_prob_fn),
            event_dim=self.latent_dim, noise_dim=self.noise_dim,
            generator=keras.saving.serialize_keras_object(self.generator),
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            adaptive_contrast=self.adaptive_contrast, discriminator_steps=self.discriminator_steps,
            min_contrast_scale=self.min_contrast_scale)
        return config
