"""Encoder, decoder and discriminator bodies: plain Keras layers.

A network is built in two steps. The user picks a body (`mlp([200, 200])`, `conv_encoder()`,
`conv_decoder()`); the model then asks for the output it needs with `with_target_shape(shape)`:
`(2·latent_dim,)` for a Gaussian encoder, the likelihood's parameter shape for a decoder, `(1,)`
for a discriminator. The body's last layer maps to that shape, so one body spec serves any
model and any likelihood.
"""
import math

import keras
import numpy as np

__all__ = ["Network", "MLP", "ConvEncoder", "ConvDecoder", "VQEncoder", "VQDecoder", "mlp",
           "conv_encoder", "conv_decoder", "vq_encoder", "vq_decoder", "resolve", "check_output"]


class Network(keras.layers.Layer):
    """A body whose final layer produces `target_shape` per example."""

    def __init__(self, target_shape=None, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape) if target_shape is not None else None

    def with_target_shape(self, target_shape):
        """This body, made to output `target_shape`; a new layer unless it already does."""
        target_shape = tuple(int(d) for d in target_shape)
        if self.target_shape == target_shape:
            return self
        config = self.get_config()
        config.pop("name", None)
        config["target_shape"] = target_shape
        return type(self)(**config)

    def _require_target(self):
        if self.target_shape is None:
            raise ValueError(f"{type(self).__name__} has no target_shape; models set it with "
                             "with_target_shape(...) before use.")

    def get_config(self):
        config = super().get_config()
        config.update(target_shape=self.target_shape)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class MLP(Network):
    """Flatten → Dense(hidden units, activation)* → Dense(prod(target_shape)) → reshape.

    The IWAE paper's one-layer model is `mlp([200, 200], activation="tanh")` on both sides.
    """

    def __init__(self, hidden_units=(200, 200), activation="relu", target_shape=None, **kwargs):
        super().__init__(target_shape=target_shape, **kwargs)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.hidden = [keras.layers.Dense(u, activation=activation) for u in self.hidden_units]
        if self.target_shape is not None:
            self.head = keras.layers.Dense(math.prod(self.target_shape))

    def build(self, input_shape):
        """Builds the layers for inputs of `input_shape` (the target shape must be set by the model first)."""
        self._require_target()
        width = math.prod(input_shape[1:])
        for layer in self.hidden:
            layer.build((input_shape[0], width))
            width = layer.units
        self.head.build((input_shape[0], width))

    def call(self, inputs):
        """The network's output `[B, *target_shape]` for inputs `[B, ...]`."""
        h = keras.ops.reshape(inputs, (-1, math.prod(inputs.shape[1:])))
        for layer in self.hidden:
            h = layer(h)
        return keras.ops.reshape(self.head(h), (-1,) + self.target_shape)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_units=self.hidden_units, activation=self.activation)
        return config


class _ConvNetwork(Network):
    """What the convolutional bodies share: filters, kernel size, one dense layer, activation."""

    def __init__(self, filters, kernel_size, dense_units, activation, target_shape=None, **kwargs):
        super().__init__(target_shape=target_shape, **kwargs)
        self.filters = tuple(int(f) for f in filters)
        self.kernel_size = int(kernel_size)
        self.dense_units = int(dense_units) if dense_units else None
        self.activation = activation
        self.dense = (keras.layers.Dense(self.dense_units, activation=activation)
                      if self.dense_units else None)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size,
                      dense_units=self.dense_units, activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class ConvEncoder(_ConvNetwork):
    """Conv2D(stride 2)* → flatten → Dense(dense_units) → Dense(prod(target_shape)).

    For 28×28 and 32×32 images (and any size): each convolution halves the resolution.
    """

    def __init__(self, filters=(32, 64), kernel_size=4, dense_units=256, activation="relu",
                 target_shape=None, **kwargs):
        super().__init__(filters, kernel_size, dense_units, activation, target_shape, **kwargs)
        self.convs = [keras.layers.Conv2D(f, self.kernel_size, strides=2, padding="same",
                                          activation=activation) for f in self.filters]
        if self.target_shape is not None:
            self.head = keras.layers.Dense(math.prod(self.target_shape))

    def build(self, input_shape):
        """Builds the layers for inputs of `input_shape` (the target shape must be set by the model first)."""
        self._require_target()
        if len(input_shape) != 4:
            raise ValueError(f"ConvEncoder expects images (batch, height, width, channels); got {input_shape}.")
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        width = math.prod(shape[1:])
        if self.dense is not None:
            self.dense.build((shape[0], width))
            width = self.dense_units
        self.head.build((shape[0], width))

    def call(self, inputs):
        """The network's output `[B, *target_shape]` for inputs `[B, ...]`."""
        h = inputs
        for conv in self.convs:
            h = conv(h)
        h = keras.ops.reshape(h, (-1, math.prod(h.shape[1:])))
        if self.dense is not None:
            h = self.dense(h)
        return keras.ops.reshape(self.head(h), (-1,) + self.target_shape)


@keras.saving.register_keras_serializable(package="tfvae")
class ConvDecoder(_ConvNetwork):
    """Dense → reshape to (H/2ⁿ, W/2ⁿ, filters[0]) → Conv2DTranspose(stride 2)ⁿ → Conv2D(channels).

    `target_shape` is (H, W, C) with H and W divisible by 2ⁿ, n = len(filters): 28×28 starts at
    7×7 and 32×32 at 8×8 with the default two upsamplings.
    """

    def __init__(self, filters=(64, 32), kernel_size=4, dense_units=256, activation="relu",
                 target_shape=None, **kwargs):
        super().__init__(filters, kernel_size, dense_units, activation, target_shape, **kwargs)
        self.deconvs = [keras.layers.Conv2DTranspose(f, self.kernel_size, strides=2, padding="same",
                                                     activation=activation) for f in self.filters]
        if self.target_shape is not None:
            if len(self.target_shape) != 3:
                raise ValueError(f"ConvDecoder outputs images (height, width, channels); "
                                 f"got target_shape={self.target_shape}.")
            factor = 2 ** len(self.filters)
            height, width, channels = self.target_shape
            if height % factor or width % factor:
                raise ValueError(f"ConvDecoder with {len(self.filters)} upsamplings needs height and "
                                 f"width divisible by {factor}; got {self.target_shape}.")
            self.start_shape = (height // factor, width // factor, self.filters[0])
            self.project = keras.layers.Dense(math.prod(self.start_shape), activation=activation)
            self.head = keras.layers.Conv2D(channels, self.kernel_size, padding="same")

    def build(self, input_shape):
        """Builds the layers for inputs of `input_shape` (the target shape must be set by the model first)."""
        self._require_target()
        batch, width = input_shape[0], math.prod(input_shape[1:])
        if self.dense is not None:
            self.dense.build((batch, width))
            width = self.dense_units
        self.project.build((batch, width))
        shape = (batch,) + self.start_shape
        for deconv in self.deconvs:
            deconv.build(shape)
            shape = deconv.compute_output_shape(shape)
        self.head.build(shape)

    def call(self, inputs):
        """The network's output `[B, *target_shape]` for inputs `[B, ...]`."""
        h = keras.ops.reshape(inputs, (-1, math.prod(inputs.shape[1:])))
        if self.dense is not None:
            h = self.dense(h)
        h = keras.ops.reshape(self.project(h), (-1,) + self.start_shape)
        for deconv in self.deconvs:
            h = deconv(h)
        return self.head(h)


class _ResidualStack(keras.layers.Layer):
    """The VQ-VAE paper's residual blocks: x + Conv1×1(ReLU(Conv3×3(ReLU(x)))), then a ReLU."""

    def __init__(self, filters, num_blocks, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [(keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
                        keras.layers.Conv2D(filters, 1)) for _ in range(int(num_blocks))]

    def build(self, input_shape):
        for conv3, conv1 in self.blocks:
            conv3.build(input_shape)
            conv1.build(conv3.compute_output_shape(input_shape))

    def call(self, h):
        for conv3, conv1 in self.blocks:
            h = h + conv1(conv3(keras.ops.relu(h)))
        return keras.ops.relu(h)


class _VQNetwork(Network):
    def __init__(self, filters=128, residual_blocks=2, target_shape=None, **kwargs):
        super().__init__(target_shape=target_shape, **kwargs)
        self.filters = int(filters)
        self.residual_blocks = int(residual_blocks)
        self.residual = _ResidualStack(self.filters, self.residual_blocks)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, residual_blocks=self.residual_blocks)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class VQEncoder(_VQNetwork):
    """The VQ-VAE paper's encoder (van den Oord et al. 2017, Sec. 4.1): two strided 4×4
    convolutions (ReLU), `residual_blocks` residual blocks, and a 1×1 convolution to the code
    size. Images `[B, H, W, C]` → a grid `[B, H/4, W/4, code_dim]` (7×7 for 28×28, 8×8 for
    32×32); `target_shape` is `(code_dim,)`, the channels of each grid position."""

    def __init__(self, filters=128, residual_blocks=2, target_shape=None, **kwargs):
        super().__init__(filters, residual_blocks, target_shape, **kwargs)
        self.convs = [keras.layers.Conv2D(self.filters, 4, strides=2, padding="same", activation="relu")
                      for _ in range(2)]
        if self.target_shape is not None:
            self.head = keras.layers.Conv2D(self.target_shape[-1], 1)

    def build(self, input_shape):
        """Builds the layers for images of `input_shape` (the target shape must be set first)."""
        self._require_target()
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.residual.build(shape)
        self.head.build(shape)

    def call(self, inputs):
        """The code grid `[B, H/4, W/4, code_dim]` of images `[B, H, W, C]`."""
        h = inputs
        for conv in self.convs:
            h = conv(h)
        return self.head(self.residual(h))


@keras.saving.register_keras_serializable(package="tfvae")
class VQDecoder(_VQNetwork):
    """The VQ-VAE paper's decoder, the encoder mirrored: a 3×3 convolution, `residual_blocks`
    residual blocks, and two strided 4×4 transposed convolutions (the last one linear). A grid
    `[B, h, w, D]` → `[B, 4h, 4w, channels]`; `target_shape` is the likelihood's parameter shape
    `(H, W, channels)` with H and W divisible by 4."""

    def __init__(self, filters=128, residual_blocks=2, target_shape=None, **kwargs):
        super().__init__(filters, residual_blocks, target_shape, **kwargs)
        self.stem = keras.layers.Conv2D(self.filters, 3, padding="same")
        if self.target_shape is not None:
            if len(self.target_shape) != 3 or self.target_shape[0] % 4 or self.target_shape[1] % 4:
                raise ValueError(f"VQDecoder upsamples a code grid 4×: it outputs images "
                                 f"(height, width, channels) with height and width divisible by 4; "
                                 f"got target_shape={self.target_shape}.")
            self.deconvs = [
                keras.layers.Conv2DTranspose(self.filters, 4, strides=2, padding="same", activation="relu"),
                keras.layers.Conv2DTranspose(self.target_shape[-1], 4, strides=2, padding="same")]

    def build(self, input_shape):
        """Builds the layers for grids of `input_shape` (the target shape must be set first)."""
        self._require_target()
        shape = tuple(input_shape)
        self.stem.build(shape)
        shape = self.stem.compute_output_shape(shape)
        self.residual.build(shape)
        for deconv in self.deconvs:
            deconv.build(shape)
            shape = deconv.compute_output_shape(shape)

    def call(self, inputs):
        """The likelihood's parameters `[B, 4h, 4w, channels]` of a grid `[B, h, w, D]`."""
        h = self.residual(self.stem(inputs))
        for deconv in self.deconvs:
            h = deconv(h)
        return h


def vq_encoder(filters=128, residual_blocks=2, **kwargs):
    """The VQ-VAE paper's convolutional encoder (4× downsampling); see `VQEncoder`."""
    return VQEncoder(filters=filters, residual_blocks=residual_blocks, **kwargs)


def vq_decoder(filters=128, residual_blocks=2, **kwargs):
    """The VQ-VAE paper's convolutional decoder (4× upsampling); see `VQDecoder`."""
    return VQDecoder(filters=filters, residual_blocks=residual_blocks, **kwargs)


def mlp(hidden_units=(200, 200), activation="relu", **kwargs):
    """A fully connected body; see `MLP`."""
    return MLP(hidden_units=hidden_units, activation=activation, **kwargs)


def conv_encoder(filters=(32, 64), kernel_size=4, dense_units=256, activation="relu", **kwargs):
    """A convolutional encoder body for 28×28 or 32×32 images; see `ConvEncoder`."""
    return ConvEncoder(filters=filters, kernel_size=kernel_size, dense_units=dense_units,
                       activation=activation, **kwargs)


def conv_decoder(filters=(64, 32), kernel_size=4, dense_units=256, activation="relu", **kwargs):
    """A convolutional decoder body for 28×28 or 32×32 images; see `ConvDecoder`."""
    return ConvDecoder(filters=filters, kernel_size=kernel_size, dense_units=dense_units,
                       activation=activation, **kwargs)


def resolve(network, target_shape, default):
    """The network a model uses: `default()` when None, a deserialized config dict, and a tfvae
    body made to output `target_shape` (any other Keras layer is used as given)."""
    if network is None:
        network = default()
    if isinstance(network, dict):
        network = keras.saving.deserialize_keras_object(network)
    if isinstance(network, Network):
        return network.with_target_shape(target_shape)
    return network


def check_output(network, input_shape, output_shape, role):
    """Create `network`'s variables (one call on zeros of `input_shape`) and check that it maps
    to `output_shape`; ValueError naming the `role` otherwise."""
    out = network(np.zeros((1,) + tuple(input_shape), "float32"))
    if tuple(out.shape[1:]) != tuple(output_shape):
        raise ValueError(f"the {role} must map {tuple(input_shape)} to {tuple(output_shape)}; "
                         f"it gives {tuple(out.shape[1:])}.")
