"""Generative adversarial networks (Goodfellow et al. 2014), the baseline of the adversarial families.

A generator x̂ = g(n), n ~ N(0, I), and a discriminator D(x) that tells data (label 1) from
generated samples (label 0). Each train step runs `discriminator_steps` discriminator phases
(`objectives.discriminator_loss`, the negated value function of Eq. 1) and then one generator
phase (the non-saturating `objectives.generator_loss`, -log D(g(n)), Sec. 3), on the phases
and named optimizers of `GenerativeModel`, as the adversarial autoencoders and AVB do.

`ImplicitGenerator` holds what every model with an implicit decoder shares: the output
activation (a sigmoid for images in [0, 1], none for points in the plane), the decoder's
output reshaped to the data, instance noise on the discriminators' inputs and the default
networks for images and for vectors. The implicit autoencoder (`models/iae.py`) is this GAN
with an encoder whose code conditions the generator and the discriminator.
"""
import keras
import tensorflow as tf

from tfvae import distributions, networks, objectives
from tfvae.models.base import (GenerativeModel, TrainingPhase, check_count, discriminator_terms,
                               noisy_discriminator_logits)

__all__ = ["GAN", "ImplicitGenerator", "OUTPUT_ACTIVATIONS", "gan_optimizer"]

#: Output activations of an implicit decoder, with the support of the data each one can match.
OUTPUT_ACTIVATIONS = {"sigmoid": (0.0, 1.0), "linear": None}

_NO_DENSITY = (
    "{name} has no density: its decoder is implicit, a sample x = g(code, noise) with no "
    "likelihood, so log p(x) cannot be evaluated. Estimate it from samples instead: "
    "tfvae.evaluation.parzen_log_likelihood(model.sample(10000, seed=0), x_test).")


_NO_ENCODER = ("GAN has no encoder: it maps noise to data only (see tfvae.ImplicitAutoencoder "
               "for a GAN with one).")


def gan_optimizer():
    """The adversarial families' default optimizer: Adam(2e-4, β1 = 0.5), the DCGAN setting
    (Radford et al. 2016, Sec. 4)."""
    return keras.optimizers.Adam(2e-4, beta_1=0.5)


def _is_image(shape):
    """Whether observations of `shape` are images the convolutional defaults take: (H, W, C)
    with H and W divisible by 4."""
    return len(shape) == 3 and shape[0] % 4 == 0 and shape[1] % 4 == 0


class ImplicitGenerator:
    """What the GAN and the implicit autoencoder share (a mixin for a `GenerativeModel`).

    Args (keyword, taken by the models' constructors):
        output_activation: "sigmoid" (x̂ in (0, 1): images; the data must lie in [0, 1]) or
            "linear" (x̂ anywhere: points in the plane, standardized data).
        discriminator_noise: std of the Gaussian instance noise added to every discriminator
            input in training (data and generated samples alike; for the implicit
            autoencoder's pairs, to x and z).
    """

    has_density = False

    def init_generator(self, output_activation, discriminator_noise):
        name = type(self).__name__
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"{name}: expected output_activation as one of "
                             f"{sorted(OUTPUT_ACTIVATIONS)}; got {output_activation!r}.")
        self.output_activation = output_activation
        try:
            self.discriminator_noise = float(discriminator_noise)
        except (TypeError, ValueError):
            self.discriminator_noise = -1.0
        if not self.discriminator_noise >= 0:
            raise ValueError(f"{name}: expected discriminator_noise as a number >= 0; got "
                             f"{discriminator_noise!r}.")

    # ----------------------------------------------------------------- default networks
    def default_network(self, role):
        """The default body of `role` ("encoder", "decoder", "discriminator", "code_discriminator")
        for this model's data: small DCGAN-style convolutional networks for images (leaky ReLU
        in the encoder and the discriminators; what made the adversarial reconstruction train on
        MNIST here), MLPs of two layers of 128 units for vectors."""
        if _is_image(self.data_shape):
            if role == "decoder":
                return networks.conv_decoder(filters=(64, 32), dense_units=512, activation="relu")
            if role == "code_discriminator":
                return networks.mlp([512, 512], activation="leaky_relu")
            return networks.conv_encoder(filters=(32, 64), dense_units=512, activation="leaky_relu")
        return networks.mlp([128, 128], activation="leaky_relu" if role != "decoder" else "relu")

    def build_network(self, network, role, input_shape, output_shape):
        """`network` (None: `default_network(role)`) made to map `input_shape` to `output_shape`,
        its variables created and its output shape checked."""
        network = networks.resolve(network, output_shape, lambda: self.default_network(role))
        networks.check_output(network, input_shape, output_shape, f"{type(self).__name__}'s {role}")
        return network

    # ----------------------------------------------------------------- data space
    def observation_support(self):
        return OUTPUT_ACTIVATIONS[self.output_activation]

    def observation_name(self):
        return f"{self.output_activation} decoder"

    def generate(self, network, inputs, training=False):
        """The decoder `network` on inputs `[B, d]` → samples `[B, *input_shape]` (through the
        output activation)."""
        out = tf.cast(network(inputs, training=training), tf.float32)
        out = tf.reshape(out, tf.concat([tf.shape(inputs)[:1], self.data_shape], 0))
        out = tf.ensure_shape(out, (inputs.shape[0],) + self.data_shape)
        return tf.sigmoid(out) if self.output_activation == "sigmoid" else out

    def discriminator_logits(self, network, inputs, seed=None, training=False):
        """Logits `[B]` of a discriminator, with instance noise in training (see
        `noisy_discriminator_logits`)."""
        return noisy_discriminator_logits(network, inputs, self.discriminator_noise, seed, training)

    def log_likelihood(self, *args, **kwargs):
        """Not available: an implicit decoder has no density (see `parzen_log_likelihood`)."""
        raise NotImplementedError(_NO_DENSITY.format(name=type(self).__name__))

    def log_importance_weights(self, *args, **kwargs):
        raise NotImplementedError(_NO_DENSITY.format(name=type(self).__name__))

    def generator_config(self):
        return {"output_activation": self.output_activation,
                "discriminator_noise": self.discriminator_noise}


@keras.saving.register_keras_serializable(package="tfvae")
class GAN(ImplicitGenerator, GenerativeModel):
    """A generative adversarial network: a generator x̂ = g(n), n ~ N(0, I_noise_dim), and a
    discriminator D(x) (Goodfellow et al. 2014), trained by `fit(x)`.

    Args:
        input_shape: shape of one observation: `(28, 28, 1)`, or `(2,)` for points in the plane.
        noise_dim: size of n.
        generator: a body mapping n `[B, noise_dim]` to `[B, *input_shape]` (before the output
            activation); default: `ImplicitGenerator.default_network("decoder")`.
        discriminator: a body mapping x `[B, *input_shape]` to one logit; default: a conv net
            for images, an MLP for vectors.
        output_activation, discriminator_noise: see `ImplicitGenerator`.
        discriminator_steps: discriminator updates per train step, before the generator's.
        seed: seeds the training noise (see `GenerativeModel`).

    `compile(optimizer=None, discriminator_optimizer=None)`: `optimizer` trains the generator
    (default: `gan_optimizer()`, Adam(2e-4, β1 = 0.5)); the discriminator's defaults to a copy
    of it. Metrics: `loss` (= `generator_loss`, ln 2 at the
    equilibrium), `discriminator_loss` (2 ln 2), `discriminator_accuracy` (0.5).
    Tensors: `sample(n, seed)` `[n, *input_shape]`; `decode(noise)` g(n); `call(noise)` too.
    """

    optimizer_names = ("optimizer", "discriminator_optimizer")
    metric_names = ("loss", "generator_loss", "discriminator_loss", "discriminator_accuracy")
    nested_config_keys = ("generator", "discriminator")

    def __init__(self, input_shape, noise_dim, *, generator=None, discriminator=None,
                 output_activation="sigmoid", discriminator_noise=0.0, discriminator_steps=1,
                 seed=None, **kwargs):
        super().__init__(input_shape, seed=seed, **kwargs)
        self.init_generator(output_activation, discriminator_noise)
        self.noise_dim = check_count(noise_dim, "noise_dim", type(self).__name__)
        self.discriminator_steps = check_count(discriminator_steps, "discriminator_steps",
                                               type(self).__name__)
        self.generator = self.build_network(generator, "decoder", (self.noise_dim,),
                                            self.data_shape)
        self.discriminator = self.build_network(discriminator, "discriminator", self.data_shape,
                                                (1,))
        self.build()

    @property
    def latent_dim(self):
        """The size of the generator's input (what `decode` takes)."""
        return self.noise_dim

    def compile(self, optimizer=None, discriminator_optimizer=None, **kwargs):
        super().compile(optimizer=gan_optimizer() if optimizer is None else optimizer,
                        discriminator_optimizer=discriminator_optimizer, **kwargs)

    def training_phases(self):
        """`discriminator_steps` discriminator updates, then one generator update."""
        return [TrainingPhase("discriminator_optimizer", self.discriminator.trainable_variables,
                              self.discriminator_losses)] * self.discriminator_steps + [
            TrainingPhase("optimizer", self.generator.trainable_variables, self.generator_losses)]

    def draw(self, batch, seed, training=False):
        """Generated samples `[batch, *input_shape]` from noise drawn with `seed`."""
        noise = tf.random.stateless_normal(tf.stack([batch, self.noise_dim]), seed)
        return self.generate(self.generator, noise, training)

    def discriminator_losses(self, x, y=None, seed=None, training=False):
        """D's cross-entropy of data (label 1) against generated samples (label 0), `[B]`."""
        noise_seed, instance_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        fake = tf.stop_gradient(self.draw(tf.shape(x)[0], noise_seed, training))
        logits = self.discriminator_logits(self.discriminator, tf.concat([x, fake], 0),
                                           instance_seed, training)
        loss, accuracy = discriminator_terms(*tf.split(logits, 2))
        return loss, {"discriminator_loss": loss, "discriminator_accuracy": accuracy}

    def generator_losses(self, x, y=None, seed=None, training=False):
        """The generator's -log D(g(n)) per sample, as many as the batch, `[B]`."""
        noise_seed, instance_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        fake = self.draw(tf.shape(x)[0], noise_seed, training)
        loss = objectives.generator_loss(self.discriminator_logits(self.discriminator, fake,
                                                                   instance_seed, training))
        return loss, {"loss": loss, "generator_loss": loss}

    # ----------------------------------------------------------------- tensors
    def sample(self, num_samples, seed=None):
        """`num_samples` samples `[n, *input_shape]`; the same seed gives the same samples."""
        num_samples = self.check_count(num_samples, "num_samples")
        return self.draw(num_samples, distributions.stateless_seed(seed))

    def decode(self, z):
        """g(n) for noise vectors `[N, noise_dim]`."""
        return self.generate(self.generator, self.check_codes(z, self.noise_dim))

    def encode(self, x):
        raise NotImplementedError(_NO_ENCODER)

    def reconstruct(self, x, seed=None):
        raise NotImplementedError(_NO_ENCODER)

    def prior(self):
        raise NotImplementedError("GAN's noise is N(0, I) over noise_dim units; draw from it "
                                  "with model.sample(n, seed).")

    def call(self, z, training=False):
        """g(n) for noise `[N, noise_dim]` (a tensor, so predict() and export work)."""
        return self.generate(self.generator, tf.cast(z, tf.float32), training)

    def predict(self, x, *args, **kwargs):
        """g(n) for an array of noise vectors `[N, noise_dim]`."""
        return keras.Model.predict(self, x, *args, **kwargs)

    def serving_endpoints(self):
        """`sample(num_samples, seed)` → `samples` (the default endpoint) and `decode(z)` →
        `samples`, z the noise `[B, noise_dim]`."""
        from tfvae import export as export_lib  # the export layer sits above the models

        endpoints = export_lib.default_endpoints(self)
        z_spec = tf.TensorSpec((None, self.noise_dim), tf.float32, name="z")

        def decode(z):
            return {"samples": self.decode(z)}

        return {"sample": endpoints["sample"], "decode": (decode, [z_spec])}

    def get_config(self):
        config = super().get_config()
        config.update(noise_dim=self.noise_dim, discriminator_steps=self.discriminator_steps,
                      generator=keras.saving.serialize_keras_object(self.generator),
                      discriminator=keras.saving.serialize_keras_object(self.discriminator),
                      **self.generator_config())
        return config
