"""Hierarchical VAEs with L stochastic layers: the Ladder VAE (Sønderby et al. 2016) and the
bottom-up hierarchical VAE it is measured against.

Both share one generative model (Sønderby et al., Eq. 1-3), layers numbered 1 (bottom) to L:

    p(z_L) = N(0, I),   p(z_i | z_{i+1}) = N(μ_p,i, σ²_p,i),   p(x | z_1) from `tfvae.likelihoods`,

where each (μ_p,i, σ²_p,i) comes from a deterministic block d (two dense layers, optional batch
norm, leaky ReLU) on z_{i+1}, a linear mean and a softplus variance (plus a small floor). They
differ in inference:

* `HierarchicalVAE` (the paper's "VAE" baseline, Eq. 4-5): bottom-up, q(z_1|x) q(z_2|z_1) ...
  q(z_L|z_{L-1}), each a Gaussian from a block on the layer below.
* `LadderVAE` (Eq. 15-19): a deterministic bottom-up pass d_n = block(d_{n-1}), d_0 = x, gives
  an approximate-likelihood estimate (μ̂_n, σ̂²_n) at every layer; then a stochastic top-down pass
  samples z_L ~ N(μ̂_L, σ̂²_L) and, for i = L-1 ... 1, merges the estimate with the generative
  model's own top-down prior p(z_i | z_{i+1}) by precision-weighted addition
  (`objectives.precision_weighted_merge`). The top-down parameters are those of the generative
  model: inference and generation share them.

The bound is log w = log p(x|z_1) + Σ_i β [log p(z_i|z_{i+1}) - log q(z_i|·)] at the sampled
path (each layer's KL term is its Monte-Carlo estimate, `kl_1 ... kl_L` while training);
`num_samples > 1` trains with the importance-weighted bound of Burda et al. (2016), as the paper
fine-tunes its best model. β is `kl_weight`, raised from 0 by `tfvae.callbacks.KLWarmup`.
"""
import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import distributions, likelihoods, objectives
from tfvae.models.base import GenerativeModel, check_count

tfd = tfp.distributions

__all__ = ["HierarchicalVAE", "LadderVAE"]

#: The paper's MNIST configuration (Sønderby et al. 2016, Sec. 3).
PAPER_LATENT_DIMS = (64, 32, 16, 8, 4)
PAPER_HIDDEN_UNITS = (512, 256, 128, 64, 32)


def _block(units, batch_norm, depth, name):
    """A deterministic block: `depth` × (Dense(units) → [BatchNorm] → LeakyReLU(0.1)).

    Batch norm is synchronized: under a tf.distribute strategy its batch statistics are those of
    the global batch (all-reduced), as on one device, so every replica makes the same update to
    the moving statistics (unsynchronized, each replica kept its own copy, from its share of the
    batch, and the mirrored copies drifted apart)."""
    layers = []
    for index in range(depth):
        layers.append(keras.layers.Dense(units, name=f"{name}_dense_{index + 1}"))
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(synchronized=True,
                                                          name=f"{name}_bn_{index + 1}"))
        layers.append(keras.layers.LeakyReLU(negative_slope=0.1, name=f"{name}_act_{index + 1}"))
    return keras.Sequential(layers, name=name)


class _HierarchicalBase(GenerativeModel):
    """What `HierarchicalVAE` and `LadderVAE` share: the generative model, the bound, the tensors."""

    nested_config_keys = ("likelihood",)

    has_density = True

    def __init__(self, input_shape, latent_dims=PAPER_LATENT_DIMS, hidden_units=PAPER_HIDDEN_UNITS, *,
                 likelihood="bernoulli", batch_norm=False, num_samples=1, beta=1.0, block_depth=2,
                 min_variance=1e-4, **kwargs):
        owner = type(self).__name__
        latent_dims = tuple(check_count(d, "latent_dims", owner) for d in _as_tuple(latent_dims, "latent_dims", owner))
        hidden_units = tuple(check_count(h, "hidden_units", owner) for h in _as_tuple(hidden_units, "hidden_units", owner))
        if len(hidden_units) != len(latent_dims):
            raise ValueError(f"{owner}: expected one hidden_units entry per stochastic layer "
                             f"({len(latent_dims)} latent_dims); got {len(hidden_units)}.")
        num_samples = check_count(num_samples, "num_samples", owner)
        # GenerativeModel's trackers read metric_names, which depend on these two.
        object.__setattr__(self, "_metric_layout", (len(latent_dims), num_samples > 1))
        super().__init__(input_shape, **kwargs)
        self.latent_dims, self.hidden_units = latent_dims, hidden_units
        self.num_samples = num_samples
        self.batch_norm = bool(batch_norm)
        self.block_depth = check_count(block_depth, "block_depth", owner)
        self.beta = float(beta)
        self.min_variance = float(min_variance)
        self.observation_model = likelihoods.get(likelihood)
        self.kl_weight = self.add_weight(name="kl_weight", shape=(), trainable=False,
                                         initializer=keras.initializers.Constant(self.beta))
        num_layers = len(latent_dims)
        # generative model: p(z_i | z_{i+1}) for i = 1..L-1 (index i-1), and p(x | z_1)
        self.top_down_blocks = [_block(hidden_units[i], self.batch_norm, self.block_depth, f"top_down_{i + 1}")
                                for i in range(num_layers - 1)]
        self.top_down_heads = [keras.layers.Dense(2 * latent_dims[i], name=f"top_down_head_{i + 1}")
                               for i in range(num_layers - 1)]
        self.param_shape = tuple(self.observation_model.param_shape(self.data_shape))
        self.decoder_block = _block(hidden_units[0], self.batch_norm, self.block_depth, "decoder")
        self.decoder_head = keras.layers.Dense(math.prod(self.param_shape), name="decoder_head")
        for i in range(num_layers - 1):
            self.top_down_blocks[i].build((None, latent_dims[i + 1]))
            self.top_down_heads[i].build((None, hidden_units[i]))
        self.decoder_block.build((None, latent_dims[0]))
        self.decoder_head.build((None, hidden_units[0]))
        self.build_inference()
        self.build()

    @property
    def metric_names(self):
        """loss, the bound, reconstruction, the total KL, then `kl_1 ... kl_L` (bottom first)."""
        num_layers, importance_weighted = self._metric_layout
        bound = ("iwae_bound",) if importance_weighted else ()
        return (("loss",) + bound + ("elbo", "reconstruction", "kl")
                + tuple(f"kl_{i + 1}" for i in range(num_layers)))

    @property
    def num_layers(self):
        """L, the number of stochastic layers."""
        return len(self.latent_dims)

    @property
    def latent_dim(self):
        """Size of the top layer z_L: what `sample` draws from N(0, I) and `decode` takes."""
        return self.latent_dims[-1]

    def build_inference(self):
        """The bottom-up layers: a deterministic block and a Gaussian head per stochastic layer,
        block n reading `bottom_up_input_sizes()[n]` values (what each inference path feeds it)."""
        inputs = self.bottom_up_input_sizes()
        self.bottom_up_blocks = [_block(h, self.batch_norm, self.block_depth, f"bottom_up_{i + 1}")
                                 for i, h in enumerate(self.hidden_units)]
        self.bottom_up_heads = [keras.layers.Dense(2 * d, name=f"bottom_up_head_{i + 1}")
                                for i, d in enumerate(self.latent_dims)]
        for i in range(self.num_layers):
            self.bottom_up_blocks[i].build((None, inputs[i]))
            self.bottom_up_heads[i].build((None, self.hidden_units[i]))

    def bottom_up_input_sizes(self):
        """The input width of each bottom-up block, bottom first (each subclass says)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- distributions
    def gaussian(self, params):
        """(mean, variance) from a head's output `[..., 2D]`: linear mean, softplus variance + floor."""
        params = tf.cast(params, tf.float32)
        mean, raw = tf.split(params, 2, axis=-1)
        return mean, tf.nn.softplus(raw) + self.min_variance

    def top_down(self, index, z_above, training=False):
        """(mean, variance) of p(z_index | z_{index+1}) (0-based `index` < L-1); `z_above` `[N, D]`."""
        h = self.top_down_blocks[index](z_above, training=training)
        return self.gaussian(self.top_down_heads[index](h))

    def prior(self):
        """p(z_L) = N(0, I) of the top layer."""
        return distributions.get("standard_normal", self.latent_dim).distribution()

    def decoder_params(self, z1, training=False):
        """The likelihood's parameters for bottom codes `[N, D_1]` → `[N, *param_shape]`."""
        h = self.decoder_block(z1, training=training)
        return tf.reshape(self.decoder_head(h), (-1,) + self.param_shape)

    def likelihood(self, z):
        """p(x | z_1) for bottom codes `[N, D_1]`."""
        return self.observation_model.distribution(self.decoder_params(z), len(self.data_shape))

    def observation_support(self):
        """The support of the observations (what `check_input` enforces)."""
        return self.observation_model.support

    def observation_name(self):
        """The observation model's class name, used in error messages."""
        return type(self.observation_model).__name__

    # ----------------------------------------------------------------- the path through the layers
    def inference_path(self, x, num_samples, seed, training=False, use_means=False):
        """Sample z_1 ... z_L ~ q for `num_samples` copies of the batch `x` `[B, ...]`.

        Returns (z, log_q, log_p): lists bottom layer first of `[S·B, D_i]` codes and `[S·B]`
        log-densities of q(z_i|·) and of p(z_i|z_{i+1}) (p(z_L) = N(0, I)) at the codes. With
        `use_means`, every layer takes its mean instead of a draw (log-densities then mean little).
        """
        raise NotImplementedError

    def path_log_prior(self, z, training=False):
        """[log p(z_i | z_{i+1}) for each layer] at codes `z` (bottom first), each `[N]`."""
        log_p = []
        for i in range(self.num_layers - 1):
            mean, variance = self.top_down(i, z[i + 1], training)
            log_p.append(_normal_log_prob(z[i], mean, variance))
        log_p.append(_normal_log_prob(z[-1], tf.zeros_like(z[-1]), tf.ones_like(z[-1])))
        return log_p

    # ----------------------------------------------------------------- the joint density (AIS)
    def latent_prior_sample(self, sample_shape, seed):
        """Ancestral draws of every layer, bottom first: a list of `[*sample_shape, D_i]`."""
        count = tf.reduce_prod(sample_shape)
        seeds = self._split_seeds(seed)
        z = [tf.random.stateless_normal(tf.stack([count, self.latent_dim]), seeds[-1])]
        for i in reversed(range(self.num_layers - 1)):
            mean, variance = self.top_down(i, z[0])
            z.insert(0, self._draw(mean, variance, seeds[i], use_means=False))
        return [tf.reshape(part, tf.concat([sample_shape, [dim]], 0))
                for part, dim in zip(z, self.latent_dims)]

    def latent_log_prior(self, z):
        """log p(z_L) + Σ_i log p(z_i | z_{i+1}) for a list of layers `[*S, D_i]`: `[*S]`."""
        lead = tf.shape(z[0])[:-1]
        flat = [tf.reshape(part, [-1, dim]) for part, dim in zip(z, self.latent_dims)]
        return tf.reshape(tf.add_n(self.path_log_prior(flat)), lead)

    def latent_log_likelihood(self, x, z):
        """log p(x | z_1) for x `[B, ...]` and bottom codes z[0] `[S, B, D_1]`: `[S, B]`."""
        lead = tf.shape(z[0])[:-1]
        params = self.decoder_params(tf.reshape(z[0], [-1, self.latent_dims[0]]))
        params = tf.reshape(params, tf.concat([lead, self.param_shape], 0))
        return self.observation_model.log_prob(params, x, len(self.data_shape))

    def _split_seeds(self, seed):
        seed = distributions.stateless_seed(seed)
        return [tf.random.experimental.stateless_fold_in(seed, i) for i in range(self.num_layers)]

    def _draw(self, mean, variance, seed, use_means):
        if use_means:
            return mean
        return mean + tf.sqrt(variance) * tf.random.stateless_normal(tf.shape(mean), seed)

    # ----------------------------------------------------------------- objective
    def path_log_weights(self, x, num_samples, seed, training=False, kl_weight=1.0):
        """(log w `[S, B]`, log p(x|z_1) `[S, B]`, per-layer log q - log p `[L][S, B]`)."""
        batch = tf.shape(x)[0]
        z, log_q, log_p = self.inference_path(x, num_samples, seed, training)
        repeated = tf.tile(x, tf.concat([[num_samples], tf.ones([tf.rank(x) - 1], tf.int32)], 0))
        params = self.decoder_params(z[0], training)
        log_px = self.observation_model.log_prob(params, repeated, len(self.data_shape))
        log_px = tf.reshape(log_px, [num_samples, batch])
        kls = [tf.reshape(q - p, [num_samples, batch]) for q, p in zip(log_q, log_p)]
        log_w = objectives.log_importance_weights(log_px, -tf.add_n(kls), 0.0, kl_weight)
        return log_w, log_px, kls

    def compute_losses(self, x, y=None, seed=None, training=False):
        """-bound per example: the ELBO averaged over `num_samples` paths, or with
        `num_samples > 1` the importance-weighted bound (Burda et al. 2016, Eq. 8); logs the
        reconstruction term, the total KL and each layer's (Monte-Carlo) KL."""
        kl_weight = tf.cast(self.kl_weight, tf.float32)
        log_w, log_px, kls = self.path_log_weights(x, self.num_samples, seed, training, kl_weight)
        reconstruction = -tf.reduce_mean(log_px, axis=0)
        layer_kl = [tf.reduce_mean(kl, axis=0) for kl in kls]
        kl = tf.add_n(layer_kl)
        logs = {"elbo": -reconstruction - kl, "reconstruction": reconstruction, "kl": kl}
        logs.update({f"kl_{i + 1}": value for i, value in enumerate(layer_kl)})
        if self.num_samples > 1:
            bound = objectives.iwae_bound(log_w)
            logs["iwae_bound"] = bound
        else:
            bound = tf.reduce_mean(log_w, axis=0)
        logs["loss"] = -bound
        return -bound, logs

    def log_importance_weights(self, x, num_samples, seed):
        """log p(x, z_1..z_L) - log q(z_1..z_L | x) for `num_samples` paths, `[num_samples, B]`
        (batch norm in inference mode)."""
        return self.path_log_weights(x, num_samples, seed, training=False)[0]

    # ----------------------------------------------------------------- tensors
    def encode(self, x):
        """The posterior means of every layer, bottom first: a list of `[B, D_i]`. Each layer's
        mean is taken with the layers it depends on at their means (no sampling)."""
        x = self.check_input(x)
        z, _, _ = self.inference_path(x, 1, (0, 0), training=False, use_means=True)
        return z

    def decode(self, z):
        """E[x | z_L] along the top-down means: codes `[N, D_L]` → images `[N, *input_shape]`."""
        z = self.check_codes(z, self.latent_dim)
        for i in reversed(range(self.num_layers - 1)):
            z, _ = self.top_down(i, z)
        return self.observation_model.mean(self.decoder_params(z))

    def reconstruct(self, x, seed=None):
        """E[x | z_1] for z_1 from q: its mean path without a seed, a draw with one."""
        x = self.check_input(x)
        if seed is None:
            z1 = self.inference_path(x, 1, (0, 0), use_means=True)[0][0]
        else:
            z1 = self.inference_path(x, 1, seed)[0][0]
        return self.observation_model.mean(self.decoder_params(z1))

    def sample(self, num_samples, seed=None):
        """Ancestral samples: z_L ~ N(0, I), z_i ~ p(z_i | z_{i+1}), then E[x | z_1]; `[N, ...]`."""
        num_samples = self.check_count(num_samples, "num_samples")
        seeds = self._split_seeds(seed)
        z = tf.random.stateless_normal([num_samples, self.latent_dim], seeds[-1])
        for i in reversed(range(self.num_layers - 1)):
            mean, variance = self.top_down(i, z)
            z = self._draw(mean, variance, seeds[i], use_means=False)
        return self.observation_model.mean(self.decoder_params(z))

    def serving_endpoints(self):
        """The default endpoints, with `encode` giving each layer's mean (`mean_1 ... mean_L`)."""
        from tfvae import export as export_lib  # the export layer sits above the models

        endpoints = export_lib.default_endpoints(self)
        x_spec = tf.TensorSpec((None,) + self.data_shape, tf.float32, name="x")

        def encode(x):
            return {f"mean_{i + 1}": mean for i, mean in enumerate(self.encode(x))}

        endpoints["encode"] = (encode, [x_spec])
        return endpoints

    def get_config(self):
        config = super().get_config()
        config.update(latent_dims=list(self.latent_dims), hidden_units=list(self.hidden_units),
                      likelihood=keras.saving.serialize_keras_object(self.observation_model),
                      batch_norm=self.batch_norm, num_samples=self.num_samples, beta=self.beta,
                      block_depth=self.block_depth, min_variance=self.min_variance)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class HierarchicalVAE(_HierarchicalBase):
    """A VAE with L stochastic layers and bottom-up inference: the Ladder VAE paper's baselines.

    q(z_1|x) q(z_2|z_1) ... q(z_L|z_{L-1}) (Sønderby et al. 2016, Eq. 4-5), each a diagonal
    Gaussian from a deterministic block on the layer below; the generative model is the Ladder
    VAE's (see the module docstring). `batch_norm=False` is the paper's "VAE"; `batch_norm=True`
    its "VAE+BN", and with a `tfvae.callbacks.KLWarmup` callback its "VAE+BN+WU".

    Args:
        input_shape: shape of one observation, e.g. `(28, 28, 1)`.
        latent_dims: units of each stochastic layer, bottom first (the paper's MNIST: 64-32-16-8-4).
        hidden_units: units of the deterministic block below each stochastic layer (512-256-128-64-32).
        likelihood: 'bernoulli', 'gaussian', 'fixed_gaussian' or a `tfvae.likelihoods.Likelihood`.
        batch_norm: batch normalization in every deterministic block.
        num_samples: 1 for the ELBO; k > 1 trains with the k-sample importance-weighted bound.
        beta: the KL weight β (`kl_weight` holds its current value, which `KLWarmup` raises).
        block_depth: dense layers per deterministic block (the paper: 2).
        min_variance: the floor added to every softplus variance.
        seed: seeds the training noise.

    Tensors: `encode(x)` → `[B, D_i]` means per layer (bottom first); `decode(z)` takes top codes
    `[N, D_L]`; `log_likelihood(x, k)` as for the VAE.
    """

    def bottom_up_input_sizes(self):
        """q(z_1|x) reads x; q(z_i|z_{i-1}) reads the code below."""
        return [math.prod(self.data_shape)] + list(self.latent_dims[:-1])

    def inference_path(self, x, num_samples, seed, training=False, use_means=False):
        """Bottom-up sampling z_1 ~ q(z_1|x), z_i ~ q(z_i|z_{i-1}); see `_HierarchicalBase`."""
        seeds = self._split_seeds(seed)
        h = tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])
        h = tf.tile(h, [num_samples, 1])
        z, log_q = [], []
        for i in range(self.num_layers):
            mean, variance = self.gaussian(self.bottom_up_heads[i](
                self.bottom_up_blocks[i](h, training=training)))
            z_i = self._draw(mean, variance, seeds[i], use_means)
            z.append(z_i)
            log_q.append(_normal_log_prob(z_i, mean, variance))
            h = z_i
        return z, log_q, self.path_log_prior(z, training)


@keras.saving.register_keras_serializable(package="tfvae")
class LadderVAE(_HierarchicalBase):
    """The Ladder VAE (Sønderby et al. 2016): inference that merges a bottom-up estimate with the
    generative model's top-down prior at every stochastic layer.

    Bottom-up (Eq. 15-16): d_0 = x, d_n = block_n(d_{n-1}), μ̂_n = Linear(d_n),
    σ̂²_n = Softplus(Linear(d_n)). Top-down (Eq. 17-19): q(z_L|x) = N(μ̂_L, σ̂²_L); for
    i = L-1 ... 1, q(z_i|·) = N(μ_q,i, σ²_q,i) with σ²_q,i = 1 / (σ̂_i⁻² + σ_p,i⁻²) and
    μ_q,i = (μ̂_i σ̂_i⁻² + μ_p,i σ_p,i⁻²) σ²_q,i, where (μ_p,i, σ²_p,i) is p(z_i | z_{i+1}) of the
    generative model at the sampled z_{i+1} (the same layers: inference and generation share the
    top-down parameters). Each layer's KL is between the merged q(z_i|·) and p(z_i|z_{i+1}).

    Args: as `HierarchicalVAE`; the defaults (`batch_norm=True`, the paper's 64-32-16-8-4 latent
    and 512-256-128-64-32 hidden units) are the paper's MNIST model. Train it with
    `tfvae.callbacks.KLWarmup(epochs)` for the paper's LVAE+BN+WU, and with `num_samples > 1`
    for the importance-weighted fine-tuning.

    Tensors: `encode(x)` → the merged posterior means of every layer, a list of `[B, D_i]`
    (bottom first); `decode(z)` takes top codes `[N, D_L]`; `log_likelihood(x, k)` as for the VAE.
    """

    def __init__(self, input_shape, latent_dims=PAPER_LATENT_DIMS, hidden_units=PAPER_HIDDEN_UNITS, *,
                 batch_norm=True, **kwargs):
        super().__init__(input_shape, latent_dims, hidden_units, batch_norm=batch_norm, **kwargs)

    def bottom_up_input_sizes(self):
        """d_1 reads x; d_n reads the deterministic block below (not a code)."""
        return [math.prod(self.data_shape)] + list(self.hidden_units[:-1])

    def inference_path(self, x, num_samples, seed, training=False, use_means=False):
        """The bottom-up pass, then top-down sampling with precision-weighted merges."""
        seeds = self._split_seeds(seed)
        h = tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])
        estimates = []
        for i in range(self.num_layers):  # deterministic: once per example, not per sample
            h = self.bottom_up_blocks[i](h, training=training)
            estimates.append(self.gaussian(self.bottom_up_heads[i](h)))
        estimates = [(tf.tile(m, [num_samples, 1]), tf.tile(v, [num_samples, 1])) for m, v in estimates]
        z = [None] * self.num_layers
        log_q = [None] * self.num_layers
        log_p = [None] * self.num_layers
        mean, variance = estimates[-1]
        z[-1] = self._draw(mean, variance, seeds[-1], use_means)
        log_q[-1] = _normal_log_prob(z[-1], mean, variance)
        log_p[-1] = _normal_log_prob(z[-1], tf.zeros_like(z[-1]), tf.ones_like(z[-1]))
        for i in reversed(range(self.num_layers - 1)):
            prior_mean, prior_variance = self.top_down(i, z[i + 1], training)
            mean, variance = objectives.precision_weighted_merge(*estimates[i], prior_mean, prior_variance)
            z[i] = self._draw(mean, variance, seeds[i], use_means)
            log_q[i] = _normal_log_prob(z[i], mean, variance)
            log_p[i] = _normal_log_prob(z[i], prior_mean, prior_variance)
        return z, log_q, log_p


def _normal_log_prob(z, mean, variance):
    """log N(z; mean, diag variance) summed over the last axis: `[N, D]` → `[N]`."""
    return tf.reduce_sum(tfd.Normal(mean, tf.sqrt(variance)).log_prob(z), axis=-1)


def _as_tuple(value, name, owner):
    """`value`, one int or a non-empty sequence of ints >= 1 (one per stochastic layer), as a
    tuple of ints; a clear ValueError otherwise (an empty sequence, a string, a bad entry)."""
    expected = f"{owner}: expected {name} as a sequence of positive ints, one per stochastic layer"
    if isinstance(value, int):
        value = (value,)
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{expected}; got the string {value!r}.")
    try:
        values = tuple(value)
    except TypeError:
        raise ValueError(f"{expected}; got {value!r}.") from None
    if not values:
        raise ValueError(f"{expected}; got none.")
    try:
        return tuple(check_count(v, name, owner) for v in values)
    except ValueError:
        raise ValueError(f"{expected}; got {values!r}.") from None
