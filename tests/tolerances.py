"""Floating-point tolerances grounded in the magnitudes involved, for comparisons of one quantity
computed along two different paths. A module of its own (not conftest.py): `pytest tests colab`
loads two conftest modules, and `from conftest import ...` would find the wrong one.
"""
import numpy as np


def rounding_tolerance(*terms, ops=8, dtype=np.float32):
    """Absolute tolerance for one quantity computed along two different floating-point paths.

    Each rounding errs by at most eps/2 times the magnitude it rounds, and in a sum or difference
    that magnitude is that of the terms, not of the result (log q(z) - log p(z) of terms ~5 can
    be ~0.1 and still carry ~5·eps of error). So: `ops` times eps of `dtype` (float32: 2**-23 ≈
    1.19e-7) times the largest |value| among `terms`, which must bound every addend and partial
    sum on both paths. `ops` counts the roundings at that magnitude, on both paths together.
    Use this only across different paths: the same computation run twice is compared exactly.
    """
    magnitude = max(float(np.max(np.abs(np.asarray(t, dtype=np.float64)), initial=0.0)) for t in terms)
    return ops * float(np.finfo(dtype).eps) * magnitude


def float32_tolerance(*terms, ops=8):
    """`rounding_tolerance` for float32 computations (the default dtype of every model)."""
    return rounding_tolerance(*terms, ops=ops, dtype=np.float32)


def float64_tolerance(*terms, ops=8):
    """`rounding_tolerance` for computations that stay in float64 (numpy inputs to pure functions)."""
    return rounding_tolerance(*terms, ops=ops, dtype=np.float64)


def mlp_partial_sums(network, inputs):
    """The largest partial sum in a `tfvae.networks.MLP`'s forward pass on `inputs`: for each Dense
    layer |h| @ |kernel| + |bias|, the bound on the terms its matrix product adds. These, not the
    (often much smaller) outputs, are the magnitudes a network output's rounding error scales with."""
    h = np.asarray(inputs, np.float64)
    h = h.reshape(h.shape[0], -1)
    largest = 0.0
    for layer in [*network.hidden, network.head]:
        kernel, bias = np.asarray(layer.kernel, np.float64), np.asarray(layer.bias, np.float64)
        largest = max(largest, float(np.max(np.abs(h) @ np.abs(kernel) + np.abs(bias))))
        h = np.asarray(layer(h.astype(np.float32)), np.float64)
    return largest


def _linear_part(layer, h):
    """|h| through the linear part of a Dense, convolution or transposed convolution `layer`
    with |kernel| and |bias|: for every output, the sum of the magnitudes of the terms it adds
    (one weighted input per kernel entry that reaches it, and the bias). None for other layers.
    A convolution's own `convolution_op` applies any kernel mask it has (a masked PixelCNN)."""
    import keras
    from keras.src.layers.convolutional.base_conv import BaseConv
    from keras.src.layers.convolutional.base_conv_transpose import BaseConvTranspose

    h = np.abs(np.asarray(h, np.float64))  # fails in a graph: the point is eager values
    kernel = np.abs(np.asarray(layer.kernel, np.float64))
    if isinstance(layer, keras.layers.Dense):
        sums = h.reshape(-1, kernel.shape[0]) @ kernel
    elif isinstance(layer, BaseConv):  # float32: an upper bound, not itself compared
        sums = np.asarray(layer.convolution_op(h.astype(np.float32), kernel.astype(np.float32)),
                          np.float64)
    else:
        sums = np.asarray(keras.ops.conv_transpose(
            h.astype(np.float32), kernel.astype(np.float32), strides=list(layer.strides),
            padding=layer.padding, output_padding=layer.output_padding,
            dilation_rate=layer.dilation_rate, data_format=layer.data_format), np.float64)
    if layer.bias is not None:
        bias = np.abs(np.asarray(layer.bias, np.float64))
        channels_first = isinstance(layer, (BaseConv, BaseConvTranspose)) and \
            layer.data_format == "channels_first"
        sums = sums + (bias.reshape((-1,) + (1,) * (sums.ndim - 2)) if channels_first else bias)
    return sums


def layer_partial_sums(fn, *args, **kwargs):
    """The largest partial sum of every Dense, convolution and transposed-convolution layer
    that `fn(*args, **kwargs)` runs, eagerly: |h| @ |kernel| + |bias| (for a convolution,
    |h| convolved with |kernel|, plus |bias|) on the inputs h each layer actually gets. The
    magnitude to scale a rounding tolerance with for any model and any path through it (a
    hierarchical model's bottom-up and top-down blocks, an MLP's layers, a VQ-VAE's
    convolutional encoder and decoder), where `mlp_partial_sums` needs the network and its
    inputs. Imports Keras only when called."""
    import keras
    from keras.src.layers.convolutional.base_conv import BaseConv
    from keras.src.layers.convolutional.base_conv_transpose import BaseConvTranspose

    largest = [0.0]
    originals = {cls: cls.call for cls in (keras.layers.Dense, BaseConv, BaseConvTranspose)}

    def recording(original):
        def recording_call(layer, inputs, *call_args, **call_kwargs):
            largest[0] = max(largest[0], float(np.max(_linear_part(layer, inputs), initial=0.0)))
            return original(layer, inputs, *call_args, **call_kwargs)
        return recording_call

    for cls, original in originals.items():
        cls.call = recording(original)
    try:
        fn(*args, **kwargs)
    finally:
        for cls, original in originals.items():
            cls.call = original
    return largest[0]


#: The name of `layer_partial_sums` from when it recorded Dense layers only: for a model of
#: Dense layers it gives the same number.
dense_partial_sums = layer_partial_sums
