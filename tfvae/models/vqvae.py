"""The VQ-VAE (van den Oord et al. 2017): discrete codes by vector quantization, and a learned
autoregressive prior over them for sampling.

An encoder maps an image to a grid of vectors z_e(x) `[h, w, D]`; each is replaced by its nearest
code of a codebook e `[K, D]` (Eq. 1), and the decoder models p(x | z_q(x)). Gradients pass the
quantization straight through (Eq. 3's reconstruction term reaches the encoder as if
z_q = z_e). The loss per image is

    −log p(x | z_q(x)) + ‖sg[z_e(x)] − e‖² + β ‖z_e(x) − sg[e]‖²            (Eq. 3)

summed over the grid; with `ema_decay` the codebook term is replaced by exponential moving
averages of the assigned encoder outputs (Appendix A.1), reduced across replicas.

The prior over codes is trained afterwards (Sec. 3.3): `PixelCNNPrior`, a gated PixelCNN
(van den Oord et al. 2016) with a softmax over the K codes at each grid position (codes are
unordered, so no ordinal output). `VQVAE.fit_prior` encodes the data and trains one;
`VQVAE.sample` then draws codes from it and decodes them.
"""
import keras
import numpy as np
import tensorflow as tf

from tfvae import distributions, likelihoods, networks, objectives
from tfvae.models.base import GenerativeModel, check_count

__all__ = ["VectorQuantizer", "VQVAE", "PixelCNNPrior", "MaskedConv2D", "CodebookUsage"]

#: Steps without an assignment after which `dead_code_restart=True` re-initializes a code.
DEFAULT_DEAD_CODE_STEPS = 100


def _all_reduce_sum(*values):
    """Each value summed over the replicas of a tf.distribute strategy (unchanged on one)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return tuple(context.all_reduce(tf.distribute.ReduceOp.SUM, v) for v in values)


def _replica_id():
    context = tf.distribute.get_replica_context()
    return 0 if context is None else context.replica_id_in_sync_group


@keras.saving.register_keras_serializable(package="tfvae")
class VectorQuantizer(keras.layers.Layer):
    """Nearest-code vector quantization with a straight-through gradient (van den Oord et al.
    2017, Eqs. 1-3).

    Args:
        num_codes: K, the codebook's size.
        code_dim: D, the size of each code vector (the encoder's output channels).
        commitment_cost: β, the weight of the commitment loss ‖z_e − sg[e]‖².
        ema_decay: None: the codebook is a trainable weight learned by the codebook loss
            ‖sg[z_e] − e‖². A float γ (the paper: 0.99): the codebook is not trainable and is set
            by exponential moving averages (`objectives.ema_codebook_update`) after each training
            step's quantization, from assignment counts and sums summed over all replicas, so a
            step on several replicas equals one step on one device with the same global batch.
        epsilon: ε of the Laplace smoothing of the EMA cluster sizes.

    `call(z_e)` returns z_e + sg[z_q − z_e] (the value of z_q, the gradient of z_e);
    `nearest_codes(z_e)` returns the indices `[...]` and z_q `[..., D]` of vectors `[..., D]`.
    """

    def __init__(self, num_codes, code_dim, commitment_cost=0.25, ema_decay=None, epsilon=1e-5,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_codes = check_count(num_codes, "num_codes", "VectorQuantizer")
        self.code_dim = check_count(code_dim, "code_dim", "VectorQuantizer")
        self.commitment_cost = float(commitment_cost)
        if ema_decay is not None and not 0.0 < float(ema_decay) < 1.0:
            raise ValueError(f"VectorQuantizer: expected ema_decay in (0, 1) or None; got {ema_decay!r}.")
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.epsilon = float(epsilon)
        state = {"trainable": False, "aggregation": "only_first_replica", "autocast": False}
        self.codebook = self.add_weight(
            shape=(self.num_codes, self.code_dim), name="codebook", autocast=False,
            initializer=keras.initializers.VarianceScaling(1.0, "fan_out", "uniform"),
            trainable=self.ema_decay is None,
            aggregation="none" if self.ema_decay is None else "only_first_replica")
        if self.ema_decay is not None:
            self.cluster_size = self.add_weight(shape=(self.num_codes,), name="ema_cluster_size",
                                                initializer="zeros", **state)
            self.cluster_sum = self.add_weight(shape=(self.num_codes, self.code_dim),
                                               name="ema_cluster_sum", initializer="zeros", **state)
        self.steps_unused = self.add_weight(shape=(self.num_codes,), name="steps_unused",
                                            initializer="zeros", **state)
        self.built = True

    @property
    def uses_ema(self):
        """Whether the codebook follows moving averages (`ema_decay` set) rather than gradients."""
        return self.ema_decay is not None

    def nearest_codes(self, z_e):
        """(indices int32 `[...]`, nearest codes z_q `[..., D]`) for vectors z_e `[..., D]`."""
        z_e = tf.convert_to_tensor(z_e, tf.float32)
        flat = tf.reshape(z_e, [-1, self.code_dim])
        codebook = tf.convert_to_tensor(self.codebook)
        indices = tf.argmin(objectives.squared_distances(flat, codebook), axis=-1, output_type=tf.int32)
        indices = tf.reshape(indices, tf.shape(z_e)[:-1])
        return indices, tf.gather(codebook, indices)

    def lookup(self, indices):
        """The code vectors `[..., D]` of int indices `[...]` (assumed in [0, K))."""
        return tf.gather(tf.convert_to_tensor(self.codebook), indices)

    def call(self, z_e):
        """z_e + sg[z_q − z_e]: the nearest codes forward, the identity backward (Eq. 3)."""
        _, z_q = self.nearest_codes(z_e)
        return z_e + tf.stop_gradient(z_q - z_e)

    def assignment_statistics(self, z_e, indices):
        """(counts `[K]`, sums `[K, D]`) of the encoder outputs assigned to each code, summed
        over this step's global batch (all replicas)."""
        flat = tf.reshape(tf.cast(z_e, tf.float32), [-1, self.code_dim])
        flat_indices = tf.reshape(indices, [-1])
        counts = tf.math.unsorted_segment_sum(tf.ones_like(flat_indices, tf.float32), flat_indices,
                                              self.num_codes)
        sums = tf.math.unsorted_segment_sum(flat, flat_indices, self.num_codes)
        return _all_reduce_sum(counts, sums)

    def update(self, z_e, indices, *, restart_after=None, seed=None):
        """The codebook's own training step, after `nearest_codes` (whose z_q the loss used): the EMA
        update when `ema_decay` is set, then, with `restart_after`, codes unassigned for that
        many steps re-initialized from encoder outputs of this batch (drawn with `seed` on the
        first replica and shared, so that every replica makes the same change)."""
        z_e = tf.stop_gradient(tf.cast(z_e, tf.float32))
        counts, sums = self.assignment_statistics(z_e, indices)
        if self.uses_ema:
            size, total, codebook, seen = objectives.ema_codebook_update(
                self.cluster_size, self.cluster_sum, counts, sums, self.ema_decay, self.epsilon)
            self.cluster_size.assign(size)
            self.cluster_sum.assign(total)
            self.codebook.assign(tf.where(seen[:, None], codebook, self.codebook))
        unused = tf.where(counts > 0, 0.0, self.steps_unused + 1.0)
        if restart_after is None:
            self.steps_unused.assign(unused)
            return
        dead = unused >= float(restart_after)
        flat = tf.reshape(z_e, [-1, self.code_dim])
        picks = tf.random.stateless_uniform([self.num_codes], seed, 0, tf.shape(flat)[0], tf.int32)
        first = tf.cast(tf.equal(_replica_id(), 0), tf.float32)
        (candidates,) = _all_reduce_sum(tf.gather(flat, picks) * first)
        self.codebook.assign(tf.where(dead[:, None], candidates, self.codebook))
        if self.uses_ema:  # the restarted code as one fresh assignment
            self.cluster_size.assign(tf.where(dead, 1.0, self.cluster_size))
            self.cluster_sum.assign(tf.where(dead[:, None], candidates, self.cluster_sum))
        self.steps_unused.assign(tf.where(dead, 0.0, unused))

    def get_config(self):
        config = super().get_config()
        config.update(num_codes=self.num_codes, code_dim=self.code_dim,
                      commitment_cost=self.commitment_cost, ema_decay=self.ema_decay,
                      epsilon=self.epsilon)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class CodebookUsage(keras.metrics.Metric):
    """Codebook health over an epoch (not one batch, whose perplexity depends on its size): the
    perplexity exp(H) of the code assignments counted since the last reset, and `codes_used`,
    the fraction of the K codes assigned at least once. `result()` is a dict of both."""

    def __init__(self, num_codes, name="codebook_usage", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_codes = int(num_codes)
        self.counts = self.add_variable(shape=(self.num_codes,), initializer="zeros",
                                        dtype="float32", aggregation="sum", name="counts")

    def update_state(self, indices):
        flat = tf.reshape(indices, [-1])
        self.counts.assign_add(tf.math.unsorted_segment_sum(
            tf.ones_like(flat, tf.float32), flat, self.num_codes))

    def result(self):
        counts = tf.convert_to_tensor(self.counts)
        return {"perplexity": objectives.perplexity(counts),
                "codes_used": tf.reduce_mean(tf.cast(counts > 0, tf.float32))}

    def reset_state(self):
        self.counts.assign(tf.zeros_like(self.counts))

    def get_config(self):
        return {"num_codes": self.num_codes, "name": self.name}


@keras.saving.register_keras_serializable(package="tfvae")
class VQVAE(GenerativeModel):
    """Vector-quantized variational autoencoder (van den Oord et al. 2017).

    Args:
        input_shape: shape of one image, e.g. `(28, 28, 1)`.
        num_codes: K, the codebook's size.
        code_dim: D, the size of each code vector.
        encoder: any Keras layer or model mapping images `[B, *input_shape]` to a grid
            `[B, h, w, code_dim]` (default: the paper's, `networks.vq_encoder()`, h = H/4).
        decoder: any Keras layer or model mapping a grid `[B, h, w, code_dim]` to the
            likelihood's parameters `[B, *input_shape]` (Bernoulli logits; default
            `networks.vq_decoder()`, the encoder mirrored).
        likelihood: 'bernoulli', 'gaussian', 'fixed_gaussian' or a `tfvae.likelihoods.Likelihood`.
        commitment_cost: β of Eq. 3.
        ema_decay: None (a codebook learned by the codebook loss) or γ for the EMA codebook.
        dead_code_restart: False; True or a number of steps N: a code assigned to no encoder
            output for N steps (True: 100) is re-initialized from one of the batch's outputs.
        code_prior: a `PixelCNNPrior` over this model's code grids (usually attached later by
            `fit_prior`); `sample` draws codes from it.

    Metrics: `loss`, `reconstruction` (−log p(x|z_q), nats), `codebook` and `commitment` (the
    two squared distances of Eq. 3, summed over the grid; with an EMA codebook the first is
    reported but not trained on), `perplexity` and `codes_used` over the epoch.
    """

    metric_names = ("loss", "reconstruction", "codebook", "commitment")
    nested_config_keys = ("encoder", "decoder", "likelihood", "code_prior")
    #: log p(x) has no tractable estimate through the quantizer: see `approximate_log_likelihood`.
    has_density = False

    def __init__(self, input_shape, *, num_codes=512, code_dim=64, encoder=None, decoder=None,
                 likelihood="bernoulli", commitment_cost=0.25, ema_decay=None,
                 dead_code_restart=False, code_prior=None, **kwargs):
        super().__init__(input_shape, **kwargs)
        self.observation_model = likelihoods.get(likelihood)
        self.quantizer = VectorQuantizer(num_codes, code_dim, commitment_cost, ema_decay)
        self.num_codes = self.quantizer.num_codes
        self.code_dim = self.quantizer.code_dim
        if dead_code_restart is True:
            dead_code_restart = DEFAULT_DEAD_CODE_STEPS
        self.dead_code_restart = (False if dead_code_restart in (False, None)
                                  else self.check_count(dead_code_restart, "dead_code_restart"))
        param_shape = tuple(self.observation_model.param_shape(self.data_shape))
        self.encoder = networks.resolve(encoder, (self.code_dim,), networks.vq_encoder)
        self.decoder = networks.resolve(decoder, param_shape, networks.vq_decoder)
        model = type(self).__name__
        grid = self.encoder(np.zeros((1,) + self.data_shape, "float32"))
        if len(grid.shape) != 4 or grid.shape[-1] != self.code_dim:
            raise ValueError(f"{model}: the encoder must map images {self.data_shape} to a grid "
                             f"(batch, height, width, code_dim={self.code_dim}); it gives "
                             f"{tuple(grid.shape)}.")
        self.grid_shape = (int(grid.shape[1]), int(grid.shape[2]))
        out = self.decoder(np.zeros((1,) + self.grid_shape + (self.code_dim,), "float32"))
        if tuple(out.shape[1:]) != param_shape:
            raise ValueError(f"{model}: the decoder must map a code grid {self.grid_shape + (self.code_dim,)} "
                             f"to the {type(self.observation_model).__name__} likelihood's "
                             f"parameters {param_shape}; it gives {tuple(out.shape[1:])}.")
        self.codebook_usage = CodebookUsage(self.num_codes)
        self.code_prior = None
        if code_prior is not None:
            self.attach_prior(code_prior)
        self.build()

    # ----------------------------------------------------------------- Keras plumbing
    def logged_metrics(self):
        return [self.codebook_usage]

    def training_phases(self):
        """One phase over the encoder, decoder and (unless EMA) the codebook; the code prior,
        trained by `fit_prior`, is not part of it."""
        from tfvae.models.base import TrainingPhase

        variables = (self.encoder.trainable_variables + self.decoder.trainable_variables
                     + self.quantizer.trainable_variables)
        return [TrainingPhase("optimizer", variables, self.compute_losses)]

    def observation_support(self):
        return self.observation_model.support

    def observation_name(self):
        return type(self.observation_model).__name__

    # ----------------------------------------------------------------- objective
    def compute_losses(self, x, y=None, seed=None, training=False):
        """Eq. 3 per example: −log p(x|z_q(x)) + [‖sg[z_e] − e‖²] + β ‖z_e − sg[e]‖², the
        bracket only for a codebook learned by gradient. In training, the quantizer then makes
        its own update (EMA, dead-code restarts) from this batch's assignments."""
        z_e = tf.cast(self.encoder(x, training=training), tf.float32)
        indices, z_q = self.quantizer.nearest_codes(z_e)
        codebook_loss, commitment = objectives.vector_quantization_losses(z_e, z_q)
        params = self.decoder(z_e + tf.stop_gradient(z_q - z_e), training=training)
        reconstruction = -self.observation_model.log_prob(tf.cast(params, tf.float32), x,
                                                         len(self.data_shape))
        loss = reconstruction + self.quantizer.commitment_cost * commitment
        if not self.quantizer.uses_ema:
            loss += codebook_loss
        if training:
            self.quantizer.update(z_e, indices, seed=seed,
                                  restart_after=self.dead_code_restart or None)
        self.codebook_usage.update_state(indices)
        return loss, {"loss": loss, "reconstruction": reconstruction, "codebook": codebook_loss,
                      "commitment": commitment}

    # ----------------------------------------------------------------- tensors
    def encode(self, x):
        """The code indices of `x`: int32 `[B, h, w]` (nearest codes of the encoder's grid)."""
        x = self.check_input(x)
        return self.quantizer.nearest_codes(tf.cast(self.encoder(x), tf.float32))[0]

    def check_code_indices(self, codes, name="codes"):
        """`codes` as int32 `[N, h, w]` after checking dtype, shape and (when checks are on)
        that every index is in [0, num_codes)."""
        model = type(self).__name__
        expected = (f"integer code indices of shape (batch, {self.grid_shape[0]}, "
                    f"{self.grid_shape[1]}) with values in [0, {self.num_codes})")
        dtype = getattr(codes, "dtype", None)
        if dtype is None:
            codes = np.asarray(codes)
            dtype = codes.dtype
        if not tf.as_dtype(dtype).is_integer:
            raise TypeError(f"{model}: expected {name} as {expected}; got dtype {tf.as_dtype(dtype).name}.")
        codes = tf.convert_to_tensor(codes)
        if codes.shape.rank != 3 or tuple(codes.shape[1:]) != self.grid_shape:
            raise ValueError(f"{model}: expected {name} as {expected}; got shape {tuple(codes.shape)}.")
        codes = tf.cast(codes, tf.int32)
        if not self.validate_inputs:
            return codes
        low, high = tf.reduce_min(codes), tf.reduce_max(codes)
        if tf.executing_eagerly():
            if tf.size(codes) > 0 and (int(low) < 0 or int(high) >= self.num_codes):
                raise ValueError(f"{model}: expected {name} as {expected}; got values in "
                                 f"[{int(low)}, {int(high)}].")
            return codes
        ok = tf.logical_or(tf.equal(tf.size(codes), 0),
                           tf.logical_and(low >= 0, high < self.num_codes))
        with tf.control_dependencies([tf.debugging.Assert(
                ok, [f"{model}: expected {name} as {expected}; got values in", low, high])]):
            return tf.identity(codes)

    def decode(self, codes):
        """E[x | z_q] for code indices `[N, h, w]`: pixel probabilities (Bernoulli) or means."""
        codes = self.check_code_indices(codes)
        params = self.decoder(self.quantizer.lookup(codes))
        return self.observation_model.mean(tf.cast(params, tf.float32))

    def reconstruct(self, x, seed=None):
        """decode(encode(x)). Quantization is deterministic: `seed` (kept for the common
        signature) changes nothing."""
        return self.decode(self.encode(x))

    def sample(self, num_samples, seed=None):
        """`num_samples` images: code grids drawn from `code_prior` (after `fit_prior`), or,
        without one, every code uniformly and independently (which gives no realistic images:
        the VQ-VAE's own prior is only a placeholder until one is learned), then decoded."""
        num_samples = self.check_count(num_samples, "num_samples")
        seed = distributions.stateless_seed(seed)
        if self.code_prior is not None:
            codes = self.code_prior.sample(num_samples, seed=seed)
        else:
            codes = tf.random.stateless_uniform(tf.stack([num_samples, *self.grid_shape]), seed,
                                                0, self.num_codes, tf.int32)
        return self.decode(codes)

    def decoder_log_prob(self, x):
        """log p(x | z_q(x)) per example `[B]`, nats (the decoder's term of Eq. 3)."""
        x = self.check_input(x)
        params = self.decoder(self.quantizer.lookup(self.encode(x)))
        return self.observation_model.log_prob(tf.cast(params, tf.float32), x, len(self.data_shape))

    def approximate_log_likelihood(self, x):
        """log p(x|z_q(x)) + log p(z_q(x)) per example `[B]`, nats: the paper's estimate of
        log p(x) (Sec. 3.2: a decoder trained on MAP codes puts no mass elsewhere), with the
        learned prior over codes. Needs `code_prior`; see `evaluation.bits_per_dim`."""
        if self.code_prior is None:
            raise ValueError(f"{type(self).__name__}.approximate_log_likelihood needs a prior over "
                             "codes: train one with fit_prior(images) first.")
        x = self.check_input(x)
        return self.decoder_log_prob(x) + self.code_prior.log_prob(self.encode(x))

    def log_likelihood(self, x, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} has no importance-sampled log-likelihood (its posterior is a "
            "point mass on the nearest codes); use approximate_log_likelihood(x) after fit_prior, "
            "and evaluation.bits_per_dim.")

    # ----------------------------------------------------------------- the prior over codes
    def attach_prior(self, prior):
        """Use `prior` (a `PixelCNNPrior` over this model's grid and codes) for `sample`."""
        if isinstance(prior, dict):
            prior = keras.saving.deserialize_keras_object(prior)
        grid = tuple(getattr(prior, "grid_shape", ()))
        if grid != self.grid_shape or getattr(prior, "num_codes", None) != self.num_codes:
            raise ValueError(f"{type(self).__name__}: the code prior must model grids "
                             f"{self.grid_shape} of {self.num_codes} codes; got grids {grid} of "
                             f"{getattr(prior, 'num_codes', None)} codes.")
        # A built Keras layer locks its state; Keras' own layers reopen it the same way to add
        # state after building (Dense.quantize). A replaced prior is dropped from the weights.
        tracker, locked = self._tracker, self._tracker.locked
        tracker.unlock()
        try:
            if self.code_prior is not None and self.code_prior is not prior:
                tracker.untrack(self.code_prior)
            self.code_prior = prior
        finally:
            if locked:
                tracker.lock()
        return prior

    def encode_data(self, data, batch_size=256):
        """The code grids of `data` (an array `[N, *input_shape]`, or a tf.data.Dataset of x
        or (x, y, ...) batches) as int32 numpy `[N, h, w]`."""
        encode = self._encode_graph
        if isinstance(data, tf.data.Dataset):
            batches = (keras.utils.unpack_x_y_sample_weight(b)[0] if isinstance(b, tuple) else b
                       for b in data)
        else:
            data = self.check_array(np.asarray(data))
            batches = (data[i:i + batch_size] for i in range(0, len(data), batch_size))
        codes = [np.asarray(encode(tf.convert_to_tensor(b, tf.float32))) for b in batches]
        if not codes:
            raise ValueError(f"{type(self).__name__}.encode_data: the data gave no images.")
        return np.concatenate(codes)

    @tf.function(reduce_retracing=True)
    def _encode_graph(self, x):
        return self.encode(x)

    def fit_prior(self, images, epochs=10, *, prior=None, optimizer=None, **fit_kwargs):
        """Train a prior over this model's codes and attach it as `code_prior` (Sec. 3.3).

        `images`: what `fit` takes (an array, or a dataset of x or (x, y) batches); they are
        encoded once. `prior`: the `PixelCNNPrior` to train (default: a new one with its default
        size); compiled with `optimizer` (default Adam(1e-3)) unless it already is. The rest
        goes to the prior's `fit` (`batch_size`, `validation_split`, callbacks, verbose...).
        Returns the History.
        """
        codes = self.encode_data(images)
        prior = prior if prior is not None else PixelCNNPrior(self.grid_shape, self.num_codes)
        self.attach_prior(prior)
        if not getattr(prior, "compiled", False) or optimizer is not None:
            prior.compile(optimizer=optimizer if optimizer is not None else keras.optimizers.Adam(1e-3))
        return prior.fit(codes, epochs=epochs, **fit_kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_codes=self.num_codes, code_dim=self.code_dim,
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            likelihood=keras.saving.serialize_keras_object(self.observation_model),
            commitment_cost=self.quantizer.commitment_cost, ema_decay=self.quantizer.ema_decay,
            dead_code_restart=self.dead_code_restart,
            code_prior=None if self.code_prior is None else keras.saving.serialize_keras_object(self.code_prior))
        return config


# --------------------------------------------------------------------------- the prior over codes
@keras.saving.register_keras_serializable(package="tfvae")
class MaskedConv2D(keras.layers.Conv2D):
    """A Conv2D whose kernel is masked so that an output sees only the causal past in raster
    order (van den Oord et al. 2016, gated PixelCNN's two stacks):

    * "vertical": the rows above and the current row (the stack's output is shifted down one
      row before the horizontal stack reads it, so that it sees only the rows above);
    * "horizontal_a": the pixels to the left in the current row, not the pixel itself (the
      first layer);
    * "horizontal_b": the pixels to the left and the pixel itself (every later layer).
    """

    MASK_TYPES = ("vertical", "horizontal_a", "horizontal_b")

    def __init__(self, filters, kernel_size, mask_type, **kwargs):
        if mask_type not in self.MASK_TYPES:
            raise ValueError(f"MaskedConv2D: mask_type must be one of {self.MASK_TYPES}; got {mask_type!r}.")
        kwargs.setdefault("padding", "same")
        super().__init__(filters, kernel_size, **kwargs)
        self.mask_type = mask_type

    def build(self, input_shape):
        super().build(input_shape)
        rows, cols = self.kernel_size
        mask = np.zeros((rows, cols, 1, 1), "float32")
        if self.mask_type == "vertical":
            mask[:rows // 2 + 1] = 1.0
        else:
            mask[rows // 2, :cols // 2 + (self.mask_type == "horizontal_b")] = 1.0
        self.mask = mask

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * self.mask)

    def get_config(self):
        return {**super().get_config(), "mask_type": self.mask_type}


def _gate(h):
    """tanh(a) ⊙ σ(b) for the two halves [a, b] of the channels."""
    a, b = tf.split(h, 2, axis=-1)
    return tf.tanh(a) * tf.sigmoid(b)


def _shift_down(h):
    """Each row moved down by one, the first row zeros: position (i, j) sees row i − 1."""
    return tf.pad(h, [[0, 0], [1, 0], [0, 0], [0, 0]])[:, :-1]


@keras.saving.register_keras_serializable(package="tfvae")
class PixelCNNPrior(keras.Model):
    """A gated PixelCNN over grids of discrete codes (van den Oord et al. 2016, 2017 Sec. 3.3):
    p(c) = Π_{i,j} p(c_{ij} | codes before (i, j) in raster order), a softmax over the K codes
    at each position.

    Args:
        grid_shape: (h, w), the VQ-VAE's code grid (its `grid_shape`).
        num_codes: K.
        num_layers: gated layers (each a vertical and a horizontal stack, no blind spot).
        filters: channels of each stack.
        kernel_size: of the vertical stack's k×k and the horizontal stack's 1×k convolutions.

    `call(codes)` takes code indices `[B, h, w]` (or one-hot rows `[B, h, w, K]`) and returns
    logits `[B, h, w, K]`. Train it with `fit(codes)`: the loss is the mean cross-entropy per
    code in nats (log K for a uniform guess), compiled by default. `log_prob(codes)` gives
    log p(c) per grid `[B]` in nats; `sample(n, seed)` draws grids `[n, h, w]` position by position.
    """

    def __init__(self, grid_shape, num_codes, *, num_layers=6, filters=64, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        self.grid_shape = tuple(int(d) for d in grid_shape)
        if len(self.grid_shape) != 2 or min(self.grid_shape) < 1:
            raise ValueError(f"PixelCNNPrior: expected grid_shape (height, width); got {grid_shape!r}.")
        self.num_codes = check_count(num_codes, "num_codes", "PixelCNNPrior")
        self.num_layers = check_count(num_layers, "num_layers", "PixelCNNPrior")
        self.filters = check_count(filters, "filters", "PixelCNNPrior")
        self.kernel_size = check_count(kernel_size, "kernel_size", "PixelCNNPrior")
        k, f = self.kernel_size, self.filters
        self.embedding = self.add_weight(shape=(self.num_codes, f), name="embedding",
                                         initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.vertical = [MaskedConv2D(2 * f, (k, k), "vertical") for _ in range(self.num_layers)]
        self.horizontal = [MaskedConv2D(2 * f, (1, k), "horizontal_a" if i == 0 else "horizontal_b")
                           for i in range(self.num_layers)]
        self.links = [keras.layers.Conv2D(2 * f, 1) for _ in range(self.num_layers)]
        self.residuals = [keras.layers.Conv2D(f, 1) for _ in range(self.num_layers)]
        self.head = [keras.layers.Conv2D(f, 1, activation="relu"), keras.layers.Conv2D(self.num_codes, 1)]
        self(np.zeros((1,) + self.grid_shape, "int32"))

    def compile(self, optimizer="adam", loss=None, **kwargs):
        """Keras `compile`; the loss defaults to the codes' cross-entropy from the logits."""
        loss = loss if loss is not None else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        self.optimizer.build(self.trainable_variables)  # so that a .keras file's slots load

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The codes are their own targets: `fit(codes)` needs no y."""
        return super().compute_loss(x, x if y is None else y, y_pred, sample_weight, training)

    def call(self, codes, training=False):
        """Logits `[B, h, w, K]` of each code given the codes before it in raster order."""
        if codes.shape.rank == 3:  # indices (of any dtype: Keras traces with floats)
            h = tf.gather(self.embedding, tf.cast(codes, tf.int32))
        else:  # one-hot rows: the same embedding, differentiable in the input
            h = tf.einsum("bhwk,kf->bhwf", tf.cast(codes, self.embedding.dtype), self.embedding)
        v = h
        for i in range(self.num_layers):
            v_pre = self.vertical[i](v)
            h_pre = self.horizontal[i](h) + self.links[i](_shift_down(v_pre))
            v = _gate(v_pre)
            out = self.residuals[i](_gate(h_pre))
            h = out if i == 0 else h + out  # no skip in layer 0: it would show the code itself
        return self.head[1](self.head[0](tf.nn.relu(h)))

    def log_prob(self, codes):
        """log p(codes) per grid `[B]`, nats, for int codes `[B, h, w]`."""
        codes = tf.cast(codes, tf.int32)
        logits = self(codes)
        return -tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(codes, logits), [1, 2])

    def sample(self, num_samples, seed=None):
        """`num_samples` code grids, int32 `[n, h, w]`, drawn position by position in raster
        order (one pass of the network each, in one compiled loop); the same `seed` gives the
        same grids."""
        num_samples = tf.cast(check_count(num_samples, "num_samples", type(self).__name__), tf.int32)
        seed = distributions.stateless_seed(seed)
        if tf.executing_eagerly():
            return self._sample_graph(num_samples, seed)
        return self._sample_codes(num_samples, seed)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([2], tf.int32)])
    def _sample_graph(self, num_samples, seed):
        return self._sample_codes(num_samples, seed)

    def _sample_codes(self, num_samples, seed):
        height, width = self.grid_shape
        positions = height * width

        def body(p, codes):
            logits = self(codes)[:, p // width, p % width, :]
            draw = tf.random.stateless_categorical(logits, 1, tf.random.experimental.stateless_fold_in(seed, p),
                                                   dtype=tf.int32)[:, 0]
            here = tf.reshape(tf.one_hot(p, positions, dtype=tf.int32), [1, height, width])
            return p + 1, codes + here * draw[:, None, None]

        codes = tf.zeros(tf.stack([num_samples, height, width]), tf.int32)
        _, codes = tf.while_loop(lambda p, _: p < positions, body, (tf.constant(0), codes))
        return tf.ensure_shape(codes, [None, height, width])

    def get_config(self):
        return {"grid_shape": self.grid_shape, "num_codes": self.num_codes, "num_layers": self.num_layers,
                "filters": self.filters, "kernel_size": self.kernel_size, "name": self.name}
