"""Observation models p(x|z): decoder output → TFP distribution over an image.

Each likelihood says how many decoder outputs it needs (`param_shape`), builds the
distribution with the image as its event, and gives the expected image (`mean`) without
building a distribution, for reconstructions, samples and export.
"""
import contextlib
import math
import os

import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["Likelihood", "Bernoulli", "Gaussian", "FixedGaussian", "get", "fused_kernels"]

# Process-wide, not thread-local: tf.distribute traces each replica's step in its own thread.
_fused_setting = [None]  # None: follow the environment


@contextlib.contextmanager
def fused_kernels(enabled):
    """Turn the XLA-fused log-likelihood kernels on or off for code traced inside the block.

    They are on by default: TensorFlow's own element-wise CPU kernels are not built for the
    wide vector units (AVX-512) of current CPUs, while XLA compiles for the host, so fusing
    the per-pixel work of `Bernoulli.log_prob` into one XLA kernel (and its gradient into
    another) takes about 40 % less time for value and gradient on CPU (`benchmarks/kernels.py`). `Model.export` turns them off, so a
    SavedModel holds only standard TensorFlow ops. The environment variable
    `TFVAE_FUSED_KERNELS=0` turns them off everywhere (for a TensorFlow device without XLA).
    """
    previous = _fused_setting[0]
    _fused_setting[0] = bool(enabled)
    try:
        yield
    finally:
        _fused_setting[0] = previous


def fused_kernels_enabled():
    """Whether code traced now uses the fused kernels (see `fused_kernels`)."""
    default = os.environ.get("TFVAE_FUSED_KERNELS", "1").strip().lower() not in ("0", "false", "no", "off")
    return default if _fused_setting[0] is None else _fused_setting[0]


class Likelihood:
    """Base class. Subclasses implement `param_shape`, `distribution` and `mean`."""

    #: (low, high) the observed values must lie in, or None when any real value is allowed.
    support = None

    def param_shape(self, event_shape):
        """Shape of the decoder output for one example whose image has `event_shape`."""
        return tuple(event_shape)

    def distribution(self, params, event_ndims):
        """p(x|z) as a TFP distribution from the decoder's `params`, with the last `event_ndims` axes as one event."""
        raise NotImplementedError

    def mean(self, params):
        """E[x|z] from the decoder's `params`: images in the data's range."""
        raise NotImplementedError

    def log_prob(self, params, x, event_ndims):
        """log p(x | params), summed over the event; `distribution(...).log_prob(x)` unless a
        subclass has a faster exact formula."""
        return self.distribution(params, event_ndims).log_prob(x)

    def get_config(self):
        """The constructor's arguments, for `from_config` and `.keras` files."""
        return {}

    @classmethod
    def from_config(cls, config):
        """The likelihood that `get_config` describes."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="tfvae")
class Bernoulli(Likelihood):
    """p(x|z) = Π_i Bernoulli(x_i; sigmoid(logit_i)) (Kingma & Welling 2013, App. C.1).

    Observations must lie in [0, 1]; for values strictly inside, `log_prob` is the binary
    cross-entropy (not a normalized density), the usual choice for grey-level MNIST.
    """

    support = (0.0, 1.0)

    def distribution(self, params, event_ndims):
        """p(x|z) as a TFP distribution from the decoder's `params`, with the last `event_ndims` axes as one event."""
        params = tf.cast(params, tf.float32)
        return tfd.Independent(tfd.Bernoulli(logits=params, dtype=tf.float32),
                               reinterpreted_batch_ndims=event_ndims)

    def mean(self, params):
        """E[x|z] from the decoder's `params`: images in the data's range."""
        return tf.sigmoid(tf.cast(params, tf.float32))

    def log_prob(self, params, x, event_ndims):
        """Σ_i x_i·l_i - softplus(l_i): the value of the TFP distribution's `log_prob`, in a
        single fused pass over the logits (see `fused_kernels`); float32 whatever the params'
        dtype, so log-likelihoods stay float32 under mixed precision."""
        if fused_kernels_enabled():
            return _bernoulli_log_prob(_flatten_event(params, event_ndims), _flatten_event(x, event_ndims))
        params = tf.cast(params, tf.float32)
        return tf.reduce_sum(x * params - tf.nn.softplus(params), axis=list(range(-event_ndims, 0)))


def _flatten_event(t, event_ndims):
    """[..., e_1, ..., e_n] -> [..., e_1·...·e_n]."""
    if event_ndims == 1:
        return t
    return tf.reshape(t, tf.concat([tf.shape(t)[:tf.rank(t) - event_ndims], [-1]], axis=0))


@tf.function(jit_compile=True, autograph=False)
def _bernoulli_log_prob_kernel(logits, x):
    """Σ_d x_d·l_d - softplus(l_d), with softplus(l) = max(l, 0) + log1p(exp(-|l|))."""
    logits = tf.cast(logits, tf.float32)
    x = tf.cast(x, tf.float32)
    softplus = tf.nn.relu(logits) + tf.math.log1p(tf.exp(-tf.abs(logits)))
    return tf.reduce_sum(x * logits - softplus, axis=-1)


@tf.function(jit_compile=True, autograph=False)
def _bernoulli_logits_gradient_kernel(upstream, logits, x):
    """∂/∂l_d of upstream · Σ_d (x_d·l_d - softplus(l_d)) = upstream · (x_d - sigmoid(l_d))."""
    grad = upstream[..., None] * (tf.cast(x, tf.float32) - tf.sigmoid(tf.cast(logits, tf.float32)))
    return tf.cast(grad, logits.dtype)


@tf.custom_gradient
def _bernoulli_log_prob(logits, x):
    """The fused Bernoulli log-likelihood of flattened events ([..., D]; x broadcasts)."""
    def grad(upstream):
        d_logits = _bernoulli_logits_gradient_kernel(upstream, logits, x)
        d_logits = _sum_to_shape(d_logits, tf.shape(logits))
        # The observations are data, but a gradient with respect to them is still exact
        # (Grappler prunes it when nothing uses it).
        d_x = _sum_to_shape(upstream[..., None] * tf.cast(logits, tf.float32), tf.shape(x))
        return d_logits, tf.cast(d_x, x.dtype)

    return _bernoulli_log_prob_kernel(logits, x), grad


def _sum_to_shape(grad, shape):
    """Undo broadcasting: sum `grad` over the axes along which a tensor of `shape` was broadcast."""
    axes, _ = tf.raw_ops.BroadcastGradientArgs(s0=shape, s1=tf.shape(grad))
    return tf.reshape(tf.reduce_sum(grad, axis=axes), shape)


@keras.saving.register_keras_serializable(package="tfvae")
class Gaussian(Likelihood):
    """p(x|z) = N(x; μ(z), diag σ²(z)) with a learned per-pixel variance (Kingma & Welling, App. C.2).

    The decoder outputs twice the image channels: μ and ρ, with σ = min_scale + softplus(ρ).
    The floor `min_scale` matters: without it the likelihood is unbounded, because a pixel that
    is constant over the data (MNIST borders) lets σ → 0 and log p → +∞.
    """

    def __init__(self, min_scale=0.01):
        if min_scale <= 0:
            raise ValueError(f"min_scale must be > 0; got {min_scale}.")
        self.min_scale = float(min_scale)

    def param_shape(self, event_shape):
        return tuple(event_shape[:-1]) + (2 * event_shape[-1],)

    def _split(self, params):
        loc, raw_scale = tf.split(tf.cast(params, tf.float32), 2, axis=-1)
        return loc, self.min_scale + tf.nn.softplus(raw_scale)

    def distribution(self, params, event_ndims):
        """p(x|z) as a TFP distribution from the decoder's `params`, with the last `event_ndims` axes as one event."""
        loc, scale = self._split(params)
        return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=event_ndims)

    def mean(self, params):
        """E[x|z] from the decoder's `params`: images in the data's range."""
        return self._split(params)[0]

    def get_config(self):
        """The constructor's arguments, for `from_config` and `.keras` files."""
        return {"min_scale": self.min_scale}


@keras.saving.register_keras_serializable(package="tfvae")
class FixedGaussian(Likelihood):
    """p(x|z) = N(x; μ(z), s² I) with a fixed scale s (the "identity covariance" decoder).

    -log p(x|z) = ||x - μ||² / (2 s²) + (D/2) log(2π s²): a scaled squared error plus a constant.
    """

    def __init__(self, scale=1.0):
        if scale <= 0:
            raise ValueError(f"scale must be > 0; got {scale}.")
        self.scale = float(scale)

    def distribution(self, params, event_ndims):
        """p(x|z) as a TFP distribution from the decoder's `params`, with the last `event_ndims` axes as one event."""
        return tfd.Independent(tfd.Normal(tf.cast(params, tf.float32), self.scale),
                               reinterpreted_batch_ndims=event_ndims)

    def mean(self, params):
        """E[x|z] from the decoder's `params`: images in the data's range."""
        return tf.cast(params, tf.float32)

    def squared_error_constant(self, num_pixels):
        """The constant (D/2) log(2π s²) that separates -log p(x|z) from the scaled squared error."""
        return 0.5 * num_pixels * math.log(2.0 * math.pi * self.scale ** 2)

    def get_config(self):
        """The constructor's arguments, for `from_config` and `.keras` files."""
        return {"scale": self.scale}


_LIKELIHOODS = {"bernoulli": Bernoulli, "gaussian": Gaussian, "fixed_gaussian": FixedGaussian}


def get(identifier):
    """A Likelihood from a name ('bernoulli', 'gaussian', 'fixed_gaussian'), a config or an instance."""
    if isinstance(identifier, Likelihood):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str) and identifier in _LIKELIHOODS:
        return _LIKELIHOODS[identifier]()
    raise ValueError(f"unknown likelihood {identifier!r}; expected one of {sorted(_LIKELIHOODS)} "
                     "or a tfvae.likelihoods.Likelihood.")
