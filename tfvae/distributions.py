"""Priors p(z) and posterior builders, as TensorFlow Probability distributions.

A prior is a Keras layer, so that learnable priors own Keras weights (trained and saved with
the model) and every prior serializes through the model's config. `prior.distribution()`
returns a TFP distribution whose event shape is the latent shape; priors that can only be
sampled (the swiss roll of the Adversarial Autoencoder paper) have `has_density = False` and
implement `sample` alone.
"""
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = [
    "Prior", "StandardNormal", "MixtureOfGaussians", "SwissRoll", "UniformCategorical",
    "LearnableGaussian", "LearnableMixture", "DistributionPrior", "SamplerPrior",
    "diagonal_gaussian", "sample_and_log_prob", "get", "stateless_seed", "PRIOR_NAMES",
]


class Prior(keras.layers.Layer):
    """Base class of priors over a latent vector of `latent_dim` units."""

    has_density = True
    #: Number of classes `sample_for_labels` knows (mixture components, arcs), or None.
    num_classes = None

    def __init__(self, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)
        self.built = True

    def distribution(self):
        """The prior as a TFP distribution with event shape `[latent_dim]`."""
        raise NotImplementedError(f"{type(self).__name__} has no density; it can only be sampled.")

    def sample(self, num_samples, seed=None):
        """`num_samples` draws, shape `[num_samples, latent_dim]`; `seed` is a stateless seed pair."""
        return self.distribution().sample(num_samples, seed=seed)

    def log_prob(self, z):
        """log p(z) of codes `z` `[..., latent_dim]`: shape `[...]`."""
        return self.distribution().log_prob(z)

    def sample_for_labels(self, labels, seed=None):
        """One draw per label, `[N, latent_dim]`: from the part of the prior that belongs to class
        `labels[i]` (a mixture component, an arc of the roll), from the whole prior where the
        label is -1. Priors with classes (`num_classes` set) implement it; the supervised and
        semi-supervised AAE push each class onto its part of the prior with it (Makhzani et al.
        2016, Sec. 2.3)."""
        raise NotImplementedError(f"{type(self).__name__} has no classes to sample for; use a prior "
                                  "with components (mixture_of_gaussians, swiss_roll).")

    def call(self, num_samples):  # pragma: no cover - priors are used through their methods
        """`sample(num_samples)`: priors are used through their methods."""
        return self.sample(num_samples)

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class StandardNormal(Prior):
    """p(z) = N(0, I), the prior of Kingma & Welling (2013) and Burda et al. (2016)."""

    def distribution(self):
        zeros = tf.zeros([self.latent_dim])
        return tfd.Independent(tfd.Normal(zeros, tf.ones_like(zeros)), reinterpreted_batch_ndims=1)


def _circle_means(num_components, latent_dim, radius):
    """Component means evenly spaced on a circle in the first two latent units."""
    angles = 2.0 * np.pi * np.arange(num_components) / num_components
    means = np.zeros([num_components, latent_dim], np.float32)
    means[:, 0] = radius * np.cos(angles)
    if latent_dim > 1:
        means[:, 1] = radius * np.sin(angles)
    return means


@keras.saving.register_keras_serializable(package="tfvae")
class MixtureOfGaussians(Prior):
    """Equal-weight mixture of isotropic Gaussians on a circle (Makhzani et al. 2016, Fig. 4)."""

    def __init__(self, latent_dim=2, num_components=10, radius=4.0, scale=0.5, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = int(num_components)
        self.radius = float(radius)
        self.scale = float(scale)

    @property
    def num_classes(self):
        """The number of mixture components (one per class in the supervised AAE)."""
        return self.num_components

    def component(self, k):
        """The k-th component, for class-conditional sampling (supervised AAE)."""
        means = tf.gather(tf.constant(_circle_means(self.num_components, self.latent_dim, self.radius)), k)
        return tfd.Independent(tfd.Normal(means, self.scale), reinterpreted_batch_ndims=1)

    def distribution(self):
        means = tf.constant(_circle_means(self.num_components, self.latent_dim, self.radius))
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=tf.zeros([self.num_components])),
            tfd.Independent(tfd.Normal(means, self.scale), reinterpreted_batch_ndims=1))

    def sample_for_labels(self, labels, seed=None):
        """A draw from component `labels[i]` for each label, from a uniformly chosen component
        (the whole mixture) where the label is -1. labels: int `[N]`; returns `[N, latent_dim]`."""
        labels = tf.cast(labels, tf.int32)
        k_seed, n_seed = tf.unstack(tf.random.experimental.stateless_split(stateless_seed(seed), 2))
        random = tf.random.stateless_uniform(tf.shape(labels), k_seed, 0, self.num_components,
                                             dtype=tf.int32)
        components = tf.where(labels < 0, random, labels)
        means = tf.gather(tf.constant(_circle_means(self.num_components, self.latent_dim, self.radius)),
                          components)
        return means + self.scale * tf.random.stateless_normal(tf.shape(means), n_seed)

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, radius=self.radius, scale=self.scale)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class SwissRoll(Prior):
    """A 2-D swiss roll that can be sampled but has no density (Makhzani et al. 2016, Fig. 2).

    u ~ U(0, 1), angle = 3π·sqrt(u), radius = max_radius·sqrt(u), plus Gaussian noise; the roll
    is split into `num_classes` equal-length arcs for label-conditioned sampling.
    """

    has_density = False

    def __init__(self, latent_dim=2, max_radius=4.0, noise=0.05, num_classes=10, **kwargs):
        if latent_dim != 2:
            raise ValueError(f"SwissRoll is 2-dimensional; got latent_dim={latent_dim}.")
        super().__init__(latent_dim, **kwargs)
        self.max_radius = float(max_radius)
        self.noise = float(noise)
        self.num_classes = int(num_classes)

    def sample_with_labels(self, num_samples, seed=None):
        """Draws and the arc (class) each one lies on."""
        seed = stateless_seed(seed)
        u_seed, n_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        u = tf.random.stateless_uniform([num_samples], u_seed)
        points = self._points(u, n_seed)
        labels = tf.minimum(tf.cast(u * self.num_classes, tf.int32), self.num_classes - 1)
        return points, labels

    def sample_for_labels(self, labels, seed=None):
        """A draw on arc `labels[i]` for each label (the arc `sample_with_labels` reports for it),
        anywhere on the roll where the label is -1. labels: int `[N]`; returns `[N, 2]`."""
        labels = tf.cast(labels, tf.int32)
        u_seed, n_seed = tf.unstack(tf.random.experimental.stateless_split(stateless_seed(seed), 2))
        v = tf.random.stateless_uniform(tf.shape(labels), u_seed)
        u = tf.where(labels < 0, v, (tf.cast(labels, tf.float32) + v) / self.num_classes)
        return self._points(u, n_seed)

    def _points(self, u, noise_seed):
        """Points of the roll at positions u ∈ [0, 1] (`[N]`), with Gaussian noise: `[N, 2]`."""
        t = tf.sqrt(u)
        angle, radius = 3.0 * math.pi * t, self.max_radius * t
        points = tf.stack([radius * tf.cos(angle), radius * tf.sin(angle)], axis=-1)
        return points + self.noise * tf.random.stateless_normal(tf.shape(points), noise_seed)

    def sample(self, num_samples, seed=None):
        return self.sample_with_labels(num_samples, seed)[0]

    def get_config(self):
        config = super().get_config()
        config.update(max_radius=self.max_radius, noise=self.noise, num_classes=self.num_classes)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class UniformCategorical(Prior):
    """Uniform prior over `num_classes` one-hot codes (AAE clustering; VQ-VAE before its prior is fit)."""

    def __init__(self, latent_dim, **kwargs):
        super().__init__(latent_dim, **kwargs)

    def distribution(self):
        return tfd.OneHotCategorical(logits=tf.zeros([self.latent_dim]), dtype=tf.float32)


@keras.saving.register_keras_serializable(package="tfvae")
class LearnableGaussian(Prior):
    """p(z) = N(μ, diag σ²) with μ and σ learned (σ = softplus(ρ) + 1e-4)."""

    def __init__(self, latent_dim, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.loc = self.add_weight(shape=(self.latent_dim,), initializer="zeros", name="loc")
        self.raw_scale = self.add_weight(
            shape=(self.latent_dim,), initializer=keras.initializers.Constant(math.log(math.e - 1.0)),
            name="raw_scale")

    def distribution(self):
        scale = tf.nn.softplus(self.raw_scale) + 1e-4
        return tfd.Independent(tfd.Normal(self.loc, scale), reinterpreted_batch_ndims=1)


@keras.saving.register_keras_serializable(package="tfvae")
class LearnableMixture(Prior):
    """A mixture of `num_components` diagonal Gaussians with learned weights, means and scales."""

    def __init__(self, latent_dim, num_components=10, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = int(num_components)
        self.logits = self.add_weight(shape=(self.num_components,), initializer="zeros", name="logits")
        self.locs = self.add_weight(shape=(self.num_components, self.latent_dim),
                                    initializer=keras.initializers.RandomNormal(stddev=1.0, seed=0),
                                    name="locs")
        self.raw_scales = self.add_weight(shape=(self.num_components, self.latent_dim),
                                          initializer="zeros", name="raw_scales")

    def distribution(self):
        scales = tf.nn.softplus(self.raw_scales) + 1e-4
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=self.logits),
            tfd.Independent(tfd.Normal(self.locs, scales), reinterpreted_batch_ndims=1))

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class DistributionPrior(Prior):
    """Any TFP distribution with event shape `[latent_dim]` as a prior.

    It is sampled with stateless seeds (`distribution.sample(n, seed=[s0, s1])`) and scored with
    its own `log_prob` (`has_density` is True unless `log_prob` is not implemented).

    Saving: the distribution is written into the config as its class name in
    `tfp.distributions` and its constructor parameters (`distribution.parameters`), recursively,
    so a `.keras` file loads with `safe_mode=True` when every parameter is a number, string,
    dtype, array/tensor, or another such distribution (Normal, Independent, MixtureSameFamily,
    Categorical, MultivariateNormalDiag, Uniform, ...). Parameters that are bijectors, callables,
    variables or other objects (TransformedDistribution, JointDistribution*, distributions
    with `tf.Variable` parameters) cannot be written: `get_config` raises a ValueError naming
    the parameter. Wrap such a prior as a `SamplerPrior` with a registered function, or subclass
    `Prior`.
    """

    def __init__(self, distribution, latent_dim=None, **kwargs):
        if isinstance(distribution, dict):
            distribution = _deserialize_distribution(distribution)
        if not isinstance(distribution, tfd.Distribution):
            raise TypeError(f"DistributionPrior wraps a tfp.distributions.Distribution; got "
                            f"{type(distribution).__name__}.")
        event_shape = tuple(distribution.event_shape)
        if len(event_shape) != 1 or event_shape[0] is None or tuple(distribution.batch_shape):
            raise ValueError(f"a prior distribution needs event shape [latent_dim] and no batch "
                             f"shape; got event shape {list(event_shape)}, batch shape "
                             f"{list(distribution.batch_shape)}.")
        if latent_dim is not None and int(latent_dim) != event_shape[0]:
            raise ValueError(f"the distribution has event shape [{event_shape[0]}], the model "
                             f"expects latent_dim={latent_dim}.")
        super().__init__(event_shape[0], **kwargs)
        self._distribution = distribution

    def distribution(self):
        return self._distribution

    def sample(self, num_samples, seed=None):
        return tf.cast(self._distribution.sample(num_samples, seed=stateless_seed(seed)), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(distribution=_serialize_distribution(self._distribution))
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class SamplerPrior(Prior):
    """A prior given only by a sampler: `sampler(num_samples, seed)` returns float
    `[num_samples, latent_dim]`, `seed` being a stateless int32 seed pair (use it with
    `tf.random.stateless_*` ops so that sampling is reproducible, exportable and XLA-friendly).
    It has no density (`has_density = False`).

    Saving: the sampler goes into the config through `keras.saving.serialize_keras_object`, so
    a `.keras` file loads with `safe_mode=True` when the sampler is a function registered with
    `@keras.saving.register_keras_serializable()` (or a serializable Keras object) and the
    registering module is imported before loading. A lambda or a nested function cannot be
    saved: `get_config` raises a ValueError that says so.
    """

    has_density = False

    def __init__(self, sampler, latent_dim, **kwargs):
        if isinstance(sampler, dict):
            sampler = keras.saving.deserialize_keras_object(sampler)
        if not callable(sampler):
            raise TypeError(f"SamplerPrior needs a callable sampler(num_samples, seed); got "
                            f"{type(sampler).__name__}.")
        super().__init__(latent_dim, **kwargs)
        self.sampler = sampler

    def sample(self, num_samples, seed=None):
        z = tf.convert_to_tensor(self.sampler(num_samples, stateless_seed(seed)))
        return tf.ensure_shape(tf.cast(z, tf.float32), [None, self.latent_dim])

    def get_config(self):
        name = getattr(self.sampler, "__qualname__", "")
        registered = keras.saving.get_registered_name(self.sampler)
        if ("<lambda>" in name or "<locals>" in name) and registered == getattr(
                self.sampler, "__name__", None):
            raise ValueError(f"SamplerPrior cannot save the sampler {name!r}: a lambda or nested "
                             "function cannot be loaded again (not with safe_mode=True either). "
                             "Define it at module level with @keras.saving.register_keras_serializable().")
        config = super().get_config()
        config.update(sampler=keras.saving.serialize_keras_object(self.sampler))
        return config


def _serialize_distribution(distribution, path=None):
    """A TFP distribution as plain JSON values: {"class_name": ..., "parameters": {...}}."""
    name = type(distribution).__name__
    path = name if path is None else f"{path}={name}"
    if getattr(tfd, name, None) is not type(distribution):
        raise ValueError(f"cannot save the prior {path}: {name} is not a tfp.distributions class.")
    return {"class_name": name,
            "parameters": {key: _serialize_value(value, f"{path}.{key}")
                           for key, value in distribution.parameters.items()}}


def _serialize_value(value, path):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tfd.Distribution):
        return {"__distribution__": _serialize_distribution(value, path)}
    if isinstance(value, tf.DType):
        return {"__dtype__": value.name}
    if isinstance(value, (list, tuple)):
        return {"__list__": [_serialize_value(v, f"{path}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, (np.ndarray, np.generic)) or (
            isinstance(value, tf.Tensor) and not isinstance(value, tf.Variable)):
        array = np.asarray(value)
        return {"__array__": array.tolist(), "dtype": array.dtype.name}
    raise ValueError(f"cannot save the prior {path}: a {type(value).__name__} is not a number, "
                     "string, dtype, array or tfp distribution. Use a SamplerPrior or a Prior "
                     "subclass instead.")


def _deserialize_distribution(config):
    cls = getattr(tfd, str(config.get("class_name")), None)
    if not (isinstance(cls, type) and issubclass(cls, tfd.Distribution)):
        raise ValueError(f"unknown tfp distribution {config.get('class_name')!r} in a saved prior.")
    return cls(**{key: _deserialize_value(value) for key, value in config["parameters"].items()})


def _deserialize_value(value):
    if isinstance(value, dict):
        if "__distribution__" in value:
            return _deserialize_distribution(value["__distribution__"])
        if "__dtype__" in value:
            return tf.as_dtype(value["__dtype__"])
        if "__list__" in value:
            return [_deserialize_value(v) for v in value["__list__"]]
        if "__array__" in value:
            return np.asarray(value["__array__"], dtype=value["dtype"])
    return value


def diagonal_gaussian(params, min_scale=1e-4):
    """q(z|x) = N(μ, diag σ²) from an encoder output `[..., 2·D]` = (μ, ρ), σ = softplus(ρ) + min_scale.

    Kingma & Welling (2013), Appendix C.2. The event shape is `[D]`.
    """
    loc, raw_scale = tf.split(params, 2, axis=-1)
    scale = tf.nn.softplus(raw_scale) + min_scale
    return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)


def sample_and_log_prob(distribution, num_samples, seed):
    """`num_samples` reparameterized draws z and their log-density log q(z), `[n, ...]` each.

    For a diagonal Gaussian, z = μ + σ·ε with ε ~ N(0, I) and log q(z) = Σ_i log N(ε_i; 0, 1) - log σ_i
    (Kingma & Welling 2013, Eq. 10 uses the same ε): the value and the gradient of
    `log_prob(z)`, since the paths through z and through μ, σ cancel, without dividing by σ or
    broadcasting μ and σ in the backward pass. Other distributions use TFP's
    `experimental_sample_and_log_prob`.
    """
    base = getattr(distribution, "distribution", None)
    if (isinstance(distribution, tfd.Independent) and isinstance(base, tfd.Normal)
            and tf.get_static_value(distribution.reinterpreted_batch_ndims) == 1):
        loc, scale = tf.convert_to_tensor(base.loc), tf.convert_to_tensor(base.scale)
        shape = tf.concat([[num_samples], tf.broadcast_dynamic_shape(tf.shape(loc), tf.shape(scale))], 0)
        eps = tf.random.stateless_normal(shape, stateless_seed(seed), dtype=loc.dtype)
        z = loc + scale * eps
        log_q = tf.reduce_sum(-0.5 * tf.square(eps) - 0.5 * math.log(2 * math.pi) - tf.math.log(scale), -1)
        return z, log_q
    return distribution.experimental_sample_and_log_prob(num_samples, seed=seed)


_PRIORS = {
    "standard_normal": StandardNormal,
    "normal": StandardNormal,
    "mixture_of_gaussians": MixtureOfGaussians,
    "swiss_roll": SwissRoll,
    "uniform_categorical": UniformCategorical,
    "learnable_gaussian": LearnableGaussian,
    "learnable_mixture": LearnableMixture,
}


#: The names `get` accepts.
PRIOR_NAMES = tuple(sorted(_PRIORS))


def get(identifier, latent_dim):
    """A Prior from a name (see `_PRIORS`), a config dict, a Prior instance, a TFP distribution
    with event shape `[latent_dim]` (→ `DistributionPrior`) or a callable
    `sampler(num_samples, seed)` (→ `SamplerPrior`)."""
    if isinstance(identifier, Prior):
        if identifier.latent_dim != latent_dim:
            raise ValueError(f"prior has latent_dim={identifier.latent_dim}, model expects {latent_dim}.")
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str) and identifier in _PRIORS:
        return _PRIORS[identifier](latent_dim=latent_dim)
    if isinstance(identifier, tfd.Distribution):
        return DistributionPrior(identifier, latent_dim=latent_dim)
    if callable(identifier) and not isinstance(identifier, (str, type)):
        return SamplerPrior(identifier, latent_dim=latent_dim)
    raise ValueError(f"unknown prior {identifier!r}; expected a tfvae.distributions.Prior, a TFP "
                     f"distribution, a sampler(num_samples, seed) or one of {sorted(_PRIORS)}.")


def stateless_seed(seed):
    """A stateless seed pair (int32 [2]) from None, an int or a pair."""
    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    seed = tf.convert_to_tensor(seed)
    if seed.dtype != tf.int32:
        seed = tf.cast(seed, tf.int32)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros_like(seed)])
    return seed
