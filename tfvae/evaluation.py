"""Evaluation of trained models: importance-sampled log-likelihood and active units.

Burda et al. (2016), Section 5: test log-likelihood estimated with k = 5000 importance samples,
and the number of active units A_u = Cov_x(E_{u~q(u|x)}[u]) > 10⁻². For models whose posterior
has no density (AVB), annealed importance sampling (Neal 2001) with HMC transitions:
`ais_log_likelihood`.
"""
import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.models.base import log_likelihood_progbar

__all__ = ["log_likelihood", "ais_log_likelihood", "grid_log_likelihood", "ais_schedule", "AISResult", "codes", "unit_activity", "active_units", "active_units_per_layer", "bits_per_dim",
           "codebook_statistics",
           "parzen_log_likelihood", "ParzenResult", "PARZEN_BANDWIDTHS", "classification_error",
           "clustering_error", "prior_mismatch", "median_bandwidth", "mode_coverage"]


def _batches(data, batch_size):
    """Yield numpy/tensor batches of x from an array or a tf.data.Dataset of x or (x, ...)."""
    if isinstance(data, tf.data.Dataset):
        for batch in data:
            yield batch[0] if isinstance(batch, (tuple, list)) else batch
        return
    for start in range(0, len(data), batch_size):
        yield data[start:start + batch_size]


def log_likelihood(model, data, num_samples=5000, *, batch_size=100, chunk_size=None, seed=0,
                   verbose=0):
    """Per-example importance-sampled log p(x) in nats (Burda et al. 2016, Eq. 8 with k = num_samples).

    `data` is an array `[N, ...]` or a tf.data.Dataset of batches. The estimate is a stochastic
    lower bound that tightens with `num_samples`; the same `seed` gives the same numbers.
    Negate and average it for the "test NLL" of the papers. `verbose=1` shows one progress bar
    of the examples done over all of `data` (of unknown total for a Dataset), labelled with k.
    """
    progress = None
    if verbose:
        total = None if isinstance(data, tf.data.Dataset) else len(data)
        progress = log_likelihood_progbar(total, num_samples, verbose)
    values = []
    for index, batch in enumerate(_batches(data, batch_size)):
        values.append(np.asarray(model.log_likelihood(
            batch, num_samples, batch_size=batch_size, chunk_size=chunk_size,
            seed=(int(np.asarray(seed).ravel()[0]), index), progress=progress)))
    if progress is not None and progress.target is None:
        progress.update(sum(len(v) for v in values), finalize=True)
    return np.concatenate(values)


def codes(model, data, *, batch_size=500):
    """`model.encode` of every example of `data` (an array or a Dataset), as one numpy array; for
    a model whose `encode` gives one mean per stochastic layer (`tfvae.LadderVAE`,
    `tfvae.HierarchicalVAE`), the layers side by side, bottom first (`[N, D_1 + ... + D_L]`)."""
    return np.concatenate([_joined(model.encode(batch)) for batch in _batches(data, batch_size)])


def _joined(code):
    """A batch of codes as one array: a list of per-layer `[B, D_i]` means concatenated."""
    if isinstance(code, (list, tuple)):
        return np.concatenate([np.asarray(part).reshape(len(part), -1) for part in code], axis=-1)
    return np.asarray(code)


def unit_activity(model, data, *, batch_size=500):
    """Cov_x(E_q[u]) for each latent unit u: the variance over the data of the posterior mean."""
    values = codes(model, data, batch_size=batch_size)
    return values.reshape(len(values), -1).var(axis=0)


def active_units(model, data, threshold=1e-2, *, batch_size=500):
    """The number of latent units with Cov_x(E_q[u]) > `threshold` (Burda et al. 2016, Eq. 16);
    of every layer together for hierarchical models (see `active_units_per_layer`)."""
    return int(np.sum(unit_activity(model, data, batch_size=batch_size) > threshold))


def active_units_per_layer(model, data, threshold=1e-2, *, batch_size=500):
    """Active units of each stochastic layer, bottom first: a list of ints (the criterion of
    `active_units`, Cov_x(E_q[u]) > `threshold`, per layer), for models whose `encode` returns
    one mean per layer (`tfvae.LadderVAE`, `tfvae.HierarchicalVAE`); a one-item list otherwise."""
    layers = None
    for batch in _batches(data, batch_size):
        means = model.encode(batch)
        means = list(means) if isinstance(means, (list, tuple)) else [means]
        if layers is None:
            layers = [[] for _ in means]
        for store, mean in zip(layers, means):
            store.append(np.asarray(mean))
    if layers is None:
        raise ValueError("active_units_per_layer: `data` has no examples.")
    return [int(np.sum(np.concatenate(values).reshape(-1, np.prod(values[0].shape[1:])).var(axis=0)
                       > threshold)) for values in layers]


def codebook_statistics(model, data, *, batch_size=500):
    """How a VQ-VAE uses its codebook on all of `data` (an array or a Dataset), not one batch
    (whose perplexity depends on its size): {"counts": int64 `[K]` assignments per code,
    "perplexity": exp(H) of their distribution (K for uniform use, 1 for one code),
    "codes_used": the fraction of the K codes assigned at least once}."""
    counts = np.zeros(int(model.num_codes), np.int64)
    for batch in _batches(data, batch_size):
        counts += np.bincount(np.asarray(model.encode(batch)).ravel(), minlength=len(counts))
    if not counts.sum():
        raise ValueError("codebook_statistics: `data` has no examples.")
    p = counts[counts > 0] / counts.sum()
    return {"counts": counts, "perplexity": float(np.exp(-np.sum(p * np.log(p)))),
            "codes_used": float(np.mean(counts > 0))}


def bits_per_dim(nll, num_dims, levels=None):
    """A negative log-likelihood in nats per example as bits per dimension.

    Discrete data (`levels=None`): nll / (D ln 2). A continuous density evaluated on uniformly
    dequantized data with `levels` values per dimension (see `tfvae.datasets.dequantize`):
    (nll + D ln levels) / (D ln 2), an upper bound on the discrete data's code length
    (Theis et al. 2016, Sec. 3.1).
    """
    total = float(nll) + (num_dims * np.log(levels) if levels else 0.0)
    return total / (num_dims * np.log(2.0))


# --------------------------------------------------------------------------- sample-based evaluation
# For models without a density (the Adversarial Autoencoder and the other adversarial families),
# and for comparing any model's codes with its prior. Plain numpy (float64): the numbers do not
# depend on the device or the model's precision.

#: The bandwidths `parzen_log_likelihood` chooses from when none is given (σ for pixel values in
#: [0, 1]): 0.01 to 1, 21 steps evenly spaced in log.
PARZEN_BANDWIDTHS = tuple(float(v) for v in np.logspace(-2, 0, 21))


class ParzenResult(NamedTuple):
    """What `parzen_log_likelihood` returns."""

    #: log p̂(x) per evaluated example, nats, float64 `[M]`.
    log_likelihood: np.ndarray
    #: The kernel bandwidth σ used.
    bandwidth: float
    #: {σ: mean log p̂ on the validation set} for every candidate, when σ was chosen; else None.
    validation_scores: dict = None

    @property
    def mean(self):
        """The mean log-likelihood over the evaluated examples (the number the papers report)."""
        return float(np.mean(self.log_likelihood))

    @property
    def standard_error(self):
        """The standard error of `mean` (the ± of the papers' tables)."""
        values = self.log_likelihood
        return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def _flat(values, name):
    array = np.asarray(values, dtype=np.float64)
    if array.ndim < 2 or len(array) == 0:
        raise ValueError(f"expected {name} as an array [N, ...] with N >= 1; got shape {array.shape}.")
    return array.reshape(len(array), -1)


def _logsumexp(values, axis):
    peak = np.max(values, axis=axis, keepdims=True)
    return np.squeeze(peak, axis) + np.log(np.sum(np.exp(values - peak), axis=axis))


def _parzen_scores(samples, x, bandwidths, batch_size, chunk_size):
    """log p̂_σ(x) for every σ in `bandwidths`: `[G, M]`, blockwise (memory G·batch·chunk)."""
    num_samples, dim = samples.shape
    bandwidths = np.asarray(bandwidths, dtype=np.float64)
    scale = 1.0 / (2.0 * bandwidths**2)                                          # [G]
    constant = -np.log(num_samples) - 0.5 * dim * np.log(2.0 * np.pi * bandwidths**2)
    sample_norms = np.sum(samples**2, axis=1)
    result = np.empty((len(bandwidths), len(x)))
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        norms = np.sum(batch**2, axis=1)
        total = np.full((len(bandwidths), len(batch)), -np.inf)
        for first in range(0, num_samples, chunk_size):
            chunk = samples[first:first + chunk_size]
            squared = norms[:, None] + sample_norms[None, first:first + chunk_size] - 2.0 * batch @ chunk.T
            exponents = -np.maximum(squared, 0.0)[None] * scale[:, None, None]    # [G, b, c]
            total = np.logaddexp(total, _logsumexp(exponents, axis=-1))
        result[:, start:start + batch_size] = total + constant[:, None]
    return result


def parzen_log_likelihood(samples, x, bandwidth=None, validation=None, *, bandwidths=None,
                          batch_size=100, chunk_size=1000):
    """Log-likelihood of `x` under a Gaussian Parzen window fit to a model's `samples`.

    p̂(x) = (1/N) Σ_i N(x; s_i, σ² I), so log p̂(x) = log-mean-exp_i(-‖x - s_i‖² / 2σ²)
    - (d/2) log(2πσ²): the estimate of Goodfellow et al. (2014) and Makhzani et al. (2016,
    Sec. 3, Table 1) for models without a density, e.g. 10,000 samples of an AAE scored on
    the MNIST test set. It is a biased, high-variance estimate in high dimensions; report it
    beside the model's own numbers, not instead of them.

    Args:
        samples: `[N, ...]` model samples (e.g. `model.sample(10000, seed=0)`), same event
            shape as `x`.
        x: `[M, ...]` examples to evaluate.
        bandwidth: the kernel's σ. None (default): chosen from `bandwidths` as the one with the
            highest mean log-likelihood on `validation` (which is then required), as the papers
            do; never on `x` itself.
        validation: `[V, ...]` held-out examples for choosing σ (e.g. MNIST's validation split).
        bandwidths: candidate σ values (default `PARZEN_BANDWIDTHS`, 0.01 to 1, for pixel values
            in [0, 1]).
        batch_size, chunk_size: examples and samples handled at once; memory is about
            8 bytes × (number of candidates) × batch_size × chunk_size, independent of N and M.

    Returns:
        `ParzenResult(log_likelihood, bandwidth, validation_scores)`: per-example values
        (float64 `[M]`, nats), the σ used, and the validation mean for every candidate when σ
        was chosen; `.mean` and `.standard_error` give the table entry.
    """
    samples, x = _flat(samples, "samples"), _flat(x, "x")
    if samples.shape[1] != x.shape[1]:
        raise ValueError(f"samples and x must have the same number of values per example; got "
                         f"{samples.shape[1]} and {x.shape[1]}.")
    batch_size, chunk_size = int(batch_size), int(chunk_size)
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"batch_size and chunk_size must be >= 1; got {batch_size}, {chunk_size}.")
    scores = None
    if bandwidth is None:
        if validation is None:
            raise ValueError("parzen_log_likelihood needs a bandwidth, or validation examples to "
                             "choose it on (choosing it on x itself would overstate the result).")
        validation = _flat(validation, "validation")
        if validation.shape[1] != x.shape[1]:
            raise ValueError(f"validation must have {x.shape[1]} values per example; got "
                             f"{validation.shape[1]}.")
        grid = np.asarray(PARZEN_BANDWIDTHS if bandwidths is None else bandwidths, dtype=np.float64)
        if grid.ndim != 1 or len(grid) == 0 or np.any(grid <= 0):
            raise ValueError(f"bandwidths must be a non-empty list of positive values; got {bandwidths!r}.")
        means = _parzen_scores(samples, validation, grid, batch_size, chunk_size).mean(axis=1)
        scores = {float(s): float(m) for s, m in zip(grid, means)}
        bandwidth = float(grid[int(np.argmax(means))])
    bandwidth = float(bandwidth)
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0; got {bandwidth}.")
    values = _parzen_scores(samples, x, [bandwidth], batch_size, chunk_size)[0]
    return ParzenResult(values, bandwidth, scores)


def classification_error(predictions, labels):
    """The fraction of examples whose predicted class is not their label, in [0, 1].

    predictions: int class ids `[N]`, or class probabilities / logits `[N, K]` (the argmax is
    the prediction, e.g. `SemiSupervisedAAE.classify(x)`); labels: int `[N]`.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.ndim == 2:
        predictions = np.argmax(predictions, axis=1)
    if predictions.ndim != 1 or labels.ndim != 1 or len(predictions) != len(labels):
        raise ValueError(f"expected predictions [N] or [N, K] and labels [N] for the same N; got "
                         f"shapes {np.shape(predictions)} and {labels.shape}.")
    if len(labels) == 0:
        raise ValueError("classification_error needs at least one example.")
    return float(np.mean(predictions != labels))


def clustering_error(cluster_ids, labels, train_cluster_ids=None, train_labels=None):
    """Clustering error: each cluster takes the majority label of its training members, and
    the error is the fraction of the evaluated examples whose cluster's label is not theirs
    (Makhzani et al. 2016, "Unsupervised Clustering with Adversarial Autoencoders", there
    with the label of each cluster's most confident member in place of the majority).

    cluster_ids, labels: int `[N]`, the evaluated examples (e.g. the test set). train_cluster_ids,
    train_labels: int `[T]`, the examples that label the clusters (e.g. the training set); when
    not given, the evaluated examples label their own clusters. A cluster with no training member
    has no label: its evaluated members count as errors. Ties go to the smallest label.
    """
    cluster_ids, labels = np.asarray(cluster_ids), np.asarray(labels)
    if (train_cluster_ids is None) != (train_labels is None):
        raise ValueError("give both train_cluster_ids and train_labels, or neither.")
    if train_cluster_ids is None:
        train_cluster_ids, train_labels = cluster_ids, labels
    train_cluster_ids, train_labels = np.asarray(train_cluster_ids), np.asarray(train_labels)
    for ids, lab, what in ((cluster_ids, labels, ""), (train_cluster_ids, train_labels, "train_")):
        if ids.ndim != 1 or lab.ndim != 1 or len(ids) != len(lab) or len(ids) == 0:
            raise ValueError(f"expected {what}cluster_ids and {what}labels as non-empty int arrays "
                             f"[N] of the same length; got shapes {ids.shape} and {lab.shape}.")
        for array, name in ((ids, f"{what}cluster_ids"), (lab, f"{what}labels")):
            if not np.issubdtype(array.dtype, np.integer) or array.min() < 0:
                raise ValueError(f"expected {name} as non-negative integers; got dtype "
                                 f"{array.dtype}, min {array.min()}.")
    majority = {}
    for cluster in np.unique(train_cluster_ids):
        majority[int(cluster)] = int(np.argmax(np.bincount(train_labels[train_cluster_ids == cluster])))
    assigned = np.array([majority.get(int(c), -1) for c in cluster_ids])
    return float(np.mean(assigned != labels))


def median_bandwidth(samples, max_points=1000):
    """The median heuristic: the median Euclidean distance between distinct points of
    `samples` `[N, ...]` (at most `max_points` of them, a fixed random subset, seed 0)."""
    samples = _flat(samples, "samples")
    if len(samples) < 2:
        raise ValueError("the median heuristic needs at least 2 samples.")
    if len(samples) > max_points:
        samples = samples[np.random.RandomState(0).choice(len(samples), max_points, replace=False)]
    norms = np.sum(samples**2, axis=1)
    squared = np.maximum(norms[:, None] + norms[None, :] - 2.0 * samples @ samples.T, 0.0)
    distances = np.sqrt(squared[np.triu_indices(len(samples), k=1)])
    median = float(np.median(distances))
    if not median > 0:
        raise ValueError("the median heuristic found a median distance of 0 (repeated points); "
                         "pass a bandwidth.")
    return median


def _kernel_sum(a, b, scale, block):
    """Σ_ij exp(-‖a_i - b_j‖² · scale), blockwise."""
    total = 0.0
    b_norms = np.sum(b**2, axis=1)
    for start in range(0, len(a), block):
        rows = a[start:start + block]
        rows_norms = np.sum(rows**2, axis=1)
        for first in range(0, len(b), block):
            squared = (rows_norms[:, None] + b_norms[None, first:first + block]
                       - 2.0 * rows @ b[first:first + block].T)
            total += float(np.sum(np.exp(-np.maximum(squared, 0.0) * scale)))
    return total


def prior_mismatch(codes, prior_samples, bandwidth=None, *, block_size=1000):
    """How far codes are from the prior: the unbiased squared MMD (Gretton et al. 2012, Eq. 3)
    with the Gaussian kernel k(a, b) = exp(-‖a - b‖² / (2σ²)).

    MMD²_u = 1/(m(m-1)) Σ_{i≠j} k(z_i, z_j) + 1/(n(n-1)) Σ_{i≠j} k(p_i, p_j)
    - 2/(mn) Σ_ij k(z_i, p_j), for codes z `[m, D]` and prior samples p `[n, D]`. Its expectation
    is 0 exactly when the two distributions are equal (it can come out slightly negative), and
    positive otherwise: the number behind "the AAE's q(z) matches the prior, the VAE's does not".

    bandwidth: σ. None (default): the median heuristic on the *prior samples* alone
    (`median_bandwidth(prior_samples)`), not on the pooled set, so that every model compared
    against the same prior samples is measured with the same kernel. Memory is bounded by
    `block_size`² values per block. Returns a float.
    """
    codes, prior_samples = _flat(codes, "codes"), _flat(prior_samples, "prior_samples")
    if codes.shape[1] != prior_samples.shape[1]:
        raise ValueError(f"codes and prior_samples must have the same dimension; got "
                         f"{codes.shape[1]} and {prior_samples.shape[1]}.")
    m, n = len(codes), len(prior_samples)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 codes and 2 prior samples; got {m}, {n}.")
    sigma = median_bandwidth(prior_samples) if bandwidth is None else float(bandwidth)
    if not sigma > 0:
        raise ValueError(f"bandwidth must be > 0; got {bandwidth}.")
    scale = 1.0 / (2.0 * sigma**2)
    block = int(block_size)
    within_codes = (_kernel_sum(codes, codes, scale, block) - m) / (m * (m - 1))  # k(z, z) = 1
    within_prior = (_kernel_sum(prior_samples, prior_samples, scale, block) - n) / (n * (n - 1))
    between = _kernel_sum(codes, prior_samples, scale, block) / (m * n)
    return float(within_codes + within_prior - 2.0 * between)


# ----------------------------------------------------------------------------- AIS
AIS_SCHEDULES = ("sigmoid", "geometric", "linear")


def ais_schedule(num_steps, kind="sigmoid", *, sharpness=4.0, start=1e-4):
    """Inverse temperatures 0 = β_0 < β_1 < ... < β_T = 1, float32 `[T + 1]`.

    "sigmoid" (Grosse et al. 2015; Wu et al. 2017): β_t ∝ σ(δ (2t/T − 1)), rescaled to [0, 1]
    (δ = `sharpness`), dense at both ends; "geometric": β_0 = 0 then `start` ... 1 spaced
    evenly in log β; "linear": t/T.
    """
    if kind not in AIS_SCHEDULES:
        raise ValueError(f"ais_schedule: expected kind in {AIS_SCHEDULES}; got {kind!r}.")
    num_steps = int(num_steps)
    if num_steps < 1:
        raise ValueError(f"ais_schedule: expected num_steps >= 1; got {num_steps}.")
    t = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    if kind == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-sharpness * (2.0 * t - 1.0)))
        betas = (s - s[0]) / (s[-1] - s[0])
    elif kind == "geometric":
        betas = np.concatenate([[0.0], np.geomspace(start, 1.0, num_steps)]) if num_steps > 1 else t
    else:
        betas = t
    betas[0], betas[-1] = 0.0, 1.0
    return betas.astype(np.float32)


class AISResult(NamedTuple):
    """`ais_log_likelihood(..., return_diagnostics=True)`: per-example log p(x) `[N]`, the log
    weights of every chain `[C, N]`, the mean HMC acceptance probability of each example `[N]`,
    and the seconds the estimate took."""
    log_likelihood: np.ndarray
    log_weights: np.ndarray
    acceptance_rate: np.ndarray
    seconds: float


def _ais_scale(model, x, seed):
    """Per-dimension HMC step scale `[B, D]`: the posterior's standard deviation where the model
    can tell it (a VAE's `posterior(x)`, AVB's sample `posterior_moments`), else None (1)."""
    if hasattr(model, "posterior_moments"):
        return tf.stop_gradient(model.posterior_moments(x, seed=seed)[1])
    try:
        return tf.stop_gradient(model.posterior(x).stddev())
    except (NotImplementedError, AttributeError):
        return None


@tf.function(reduce_retracing=True)
def _ais_batch(model, x, scale, betas, num_chains, step_size, num_leapfrog_steps, target_accept,
               adapt, step_schedule, seed):
    """AIS for one batch x `[B, ...]`: log weights `[C, B]`, mean acceptance `[B]`, and the step
    multipliers used at each transition `[T, B]` (the geometric mean over the chains).

    `adapt`: each chain's multiplier follows its own acceptances (a pilot run: such a kernel
    depends on the chain's state, so its weights are biased upward); else `step_schedule`
    `[T, B]` (a pilot's multipliers) or the constant `step_size`, fixed in advance.

    The latent state is the model's (`latent_prior_sample`: one code `[C, B, D]`, or a list of
    layers). Each transition is a fresh HMC kernel of TFP for the target at β_t, bootstrapped at
    the current state: TFP's `sample_annealed_importance_chain` carries the kernel results
    (target log-prob and gradients) from β_{t-1} into β_t's accept test, which breaks detailed
    balance.
    """
    batch = tf.shape(x)[0]
    z = model.latent_prior_sample(tf.stack([num_chains, batch]),
                                  tf.random.experimental.stateless_fold_in(seed, -1))
    is_list = isinstance(z, (list, tuple))
    parts = list(z) if is_list else [z]
    scales = [tf.ones_like(part[0]) for part in parts] if scale is None else [tf.cast(scale, parts[0].dtype)]
    log_likelihood = model.latent_log_likelihood(x, z)                    # [C, B]
    multiplier = tf.fill(tf.shape(log_likelihood), tf.cast(step_size, log_likelihood.dtype))[..., None]
    log_weights = tf.zeros_like(log_likelihood)
    acceptance = tf.zeros_like(log_likelihood)
    num_transitions = tf.shape(betas)[0] - 1
    used = tf.TensorArray(log_likelihood.dtype, size=num_transitions)

    def state(parts):
        return list(parts) if is_list else parts[0]

    def body(t, parts, log_likelihood, log_weights, multiplier, acceptance, used):
        beta_previous, beta = betas[t - 1], betas[t]
        log_weights += (beta - beta_previous) * log_likelihood
        if step_schedule is not None:
            multiplier = tf.broadcast_to(step_schedule[t - 1][None, :, None], tf.shape(multiplier))
        used = used.write(t - 1, tf.exp(tf.reduce_mean(tf.math.log(multiplier[..., 0]), 0)))

        def target(*current):
            current = state(current)
            return model.latent_log_prior(current) + beta * model.latent_log_likelihood(x, current)

        # steps sized like the tempered posterior: prior scale (1) at β = 0, q's at β = 1
        kernel = tfp.mcmc.HamiltonianMonteCarlo(
            target, step_size=[multiplier * s ** beta for s in scales],
            num_leapfrog_steps=num_leapfrog_steps)
        parts, results = kernel.one_step(list(parts), kernel.bootstrap_results(list(parts)),
                                         seed=tf.random.experimental.stateless_fold_in(seed, t))
        accept = tf.exp(tf.minimum(tf.cast(results.log_accept_ratio, log_likelihood.dtype), 0.0))
        accept = tf.where(tf.math.is_finite(accept), accept, 0.0)
        if adapt:  # Wu et al. (2017): grow the step when accepting more often than the target
            multiplier *= tf.where(accept > target_accept, 1.02, 0.98)[..., None]
        log_likelihood = model.latent_log_likelihood(x, state(parts))
        return t + 1, parts, log_likelihood, log_weights, multiplier, acceptance + accept, used

    _, _, _, log_weights, _, acceptance, used = tf.while_loop(
        lambda t, *_: t <= num_transitions, body,
        (tf.constant(1), parts, log_likelihood, log_weights, multiplier, acceptance, used))
    return (log_weights, tf.reduce_mean(acceptance, 0) / tf.cast(num_transitions, acceptance.dtype),
            used.stack())


def ais_log_likelihood(model, x, *, num_steps=1000, num_chains=16, step_size=0.1,
                       num_leapfrog_steps=10, schedule="sigmoid", adapt_step_size=True,
                       target_acceptance=0.65, pilot_chains=2, batch_size=100, seed=0, verbose=0,
                       return_diagnostics=False):
    """Per-example log p(x) in nats by annealed importance sampling (Neal 2001), as Wu et al.
    (2017) evaluate decoder-based models and Mescheder et al. (2017) evaluate AVB.

    From the prior p(z) to the posterior p(z|x) through p_t(z) ∝ p(z) p(x|z)^β_t, β_t from
    `ais_schedule(num_steps, schedule)`; each of `num_chains` chains per example accumulates
    log w = Σ_t (β_t − β_{t−1}) log p(x|z_{t−1}) and moves by one HMC transition of TFP's
    `HamiltonianMonteCarlo` (`num_leapfrog_steps` leapfrog steps) that leaves p_t invariant; the
    estimate is log mean_c exp(log w_c), an unbiased estimate of p(x) inside the log (a stochastic
    lower bound of log p(x) in expectation), exact as `num_steps` grows.

    It needs only the generative model's joint density, through `latent_prior_sample`,
    `latent_log_prior` and `latent_log_likelihood` (`GenerativeModel`: the prior and the
    decoder's density over one code, as for VAE, IWAE and AVB; the Ladder VAE's over all its
    layers). Step sizes are per dimension: `step_size` × σ^β_t, σ the posterior's standard
    deviation (a VAE's q(z|x), AVB's sample moments; 1 for other models), so the steps shrink
    with the tempered posterior. With `adapt_step_size`, a pilot run of `pilot_chains` chains
    per example adapts its multiplier (up 2 % after a transition accepted with probability above
    `target_acceptance`, down 2 % otherwise, as Wu et al. 2017), and the estimate then runs with
    the pilot's multiplier at each temperature, fixed in advance: a step size adapted within the
    estimating chains depends on their states, so the transitions no longer leave p_t invariant,
    and the estimate drifts above log p(x) (+0.08 nats on a linear-Gaussian model). The pilot
    costs `pilot_chains / num_chains` of the estimate.

    `x`: an array `[N, ...]`, evaluated in batches of `batch_size` (memory: chains × batch
    decoder outputs). The same `seed` gives the same numbers. `verbose=1` shows a progress bar.
    Returns float32 numpy `[N]`; with `return_diagnostics`, an `AISResult` (log weights per
    chain and acceptance rates too).
    """
    import time

    from tfvae import distributions

    name = f"ais_log_likelihood({type(model).__name__})"
    if not all(hasattr(model, method) for method in
               ("latent_prior_sample", "latent_log_prior", "latent_log_likelihood")):
        raise TypeError(f"{name}: expected a tfvae model with a prior and a decoder density.")
    for value, what in ((num_steps, "num_steps"), (num_chains, "num_chains"), (pilot_chains, "pilot_chains"),
                        (num_leapfrog_steps, "num_leapfrog_steps"), (batch_size, "batch_size")):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name}: expected {what} as an integer >= 1; got {value!r}.")
    if not step_size > 0 or not 0 < target_acceptance < 1:
        raise ValueError(f"{name}: expected step_size > 0 and 0 < target_acceptance < 1; got "
                         f"{step_size!r}, {target_acceptance!r}.")
    x = model.check_input(x)
    try:  # the joint density on one example, eagerly: a model without one says so here
        probe = model.latent_prior_sample(tf.constant([1, 1]), tf.constant([0, 0]))
        model.latent_log_prior(probe), model.latent_log_likelihood(x[:1], probe)
    except (NotImplementedError, AttributeError, TypeError, ValueError) as error:
        raise TypeError(f"{name}: AIS needs the joint density p(z) p(x|z) of the generative "
                        f"model (a VAE, IWAE, AVB or Ladder VAE); this model has none "
                        f"({type(error).__name__}: {error}).") from None
    betas = tf.constant(ais_schedule(num_steps, schedule))
    seed = distributions.stateless_seed(seed)
    num_examples = int(x.shape[0])
    batch_size = min(int(batch_size), num_examples)
    progress = (_progbar(num_examples, f"example, AIS {num_steps} steps × {num_chains} chains",
                              verbose) if verbose else None)
    start_time = time.perf_counter()
    weights, rates = [], []
    for start in range(0, num_examples, batch_size):
        batch = x[start:start + batch_size]
        size = int(batch.shape[0])
        if size < batch_size:  # pad so that every batch reuses one traced function
            batch = tf.concat([batch, tf.repeat(batch[-1:], batch_size - size, axis=0)], axis=0)
        batch_seed = tf.random.experimental.stateless_fold_in(seed, start)
        scale = _ais_scale(model, batch, batch_seed)
        arguments = (tf.constant(float(step_size)), int(num_leapfrog_steps),
                     tf.constant(float(target_acceptance)))
        schedule_of_steps = None
        if adapt_step_size:  # a pilot run adapts; the estimate then uses its steps, fixed
            _, _, schedule_of_steps = _ais_batch(
                model, batch, scale, betas, tf.constant(int(pilot_chains)), *arguments, True, None,
                tf.random.experimental.stateless_fold_in(batch_seed, -2))
        log_w, rate, _ = _ais_batch(model, batch, scale, betas, tf.constant(int(num_chains)),
                                    *arguments, False, schedule_of_steps, batch_seed)
        weights.append(log_w.numpy()[:, :size])
        rates.append(rate.numpy()[:size])
        if progress is not None:
            progress.add(size)
    log_weights = np.concatenate(weights, axis=1)
    values = (tf.reduce_logsumexp(log_weights, axis=0) - math.log(num_chains)).numpy()
    if not return_diagnostics:
        return values
    return AISResult(values, log_weights, np.concatenate(rates), time.perf_counter() - start_time)


def _progbar(total, unit_name, verbose=1):
    """A `keras.utils.Progbar` of `total` items called `unit_name`."""
    import keras

    return keras.utils.Progbar(total, verbose=verbose, unit_name=unit_name)


def grid_log_likelihood(model, x, *, limit=6.0, points_per_axis=301, batch_size=20000):
    """log p(x) = log ∫ p(x|z) p(z) dz by the midpoint rule on a grid over [−limit, limit]^D, for
    models with a code of D ≤ 2 units (the AVB paper's toy problem): exact up to the prior mass
    outside the box (6σ: ~1e-8) and the grid's resolution. Per-example float64 numpy `[N]`, nats.

    The reference that AIS and every bound are checked against on 2-D latent models; it needs
    the model's `prior()` and `conditional_log_prob(x, z)`.
    """
    dim = getattr(model, "latent_dim", None)
    if dim not in (1, 2):
        raise ValueError(f"grid_log_likelihood: expected a model with a code of 1 or 2 units; "
                         f"{type(model).__name__} has latent_dim={dim!r}.")
    axis = np.linspace(-limit, limit, int(points_per_axis))
    cell = (axis[1] - axis[0]) ** dim
    grid = np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), -1).reshape(-1, dim).astype("float32")
    x = model.check_input(x)
    totals = np.full(int(x.shape[0]), -np.inf)
    prior = model.prior()
    for start in range(0, len(grid), batch_size):
        z = tf.constant(grid[start:start + batch_size])[:, None, :]                  # [G, 1, D]
        joint = (model.conditional_log_prob(x, z) + prior.log_prob(z)).numpy().astype(np.float64)
        totals = np.logaddexp(totals, _logsumexp(joint, axis=0))
    return totals + math.log(cell)


def mode_coverage(samples, centres, std, *, min_fraction=0.01, num_std=3.0):
    """Mode coverage of samples from a mixture of isotropic Gaussians of equal `std`, as in the
    GAN mode-collapse benchmarks and the implicit autoencoder's mixture experiment (Makhzani 2018).

    A sample is *high quality* when it lies within `num_std`·std (Euclidean distance, inclusive)
    of some centre; a mode is *covered* when at least `min_fraction` of all the samples lie
    within `num_std`·std of its centre.

    Args:
        samples: `[N, D]` (or `[N, ...]`, flattened) generated points.
        centres: `[K, D]` the components' means.
        std: the components' standard deviation.

    Returns a dict: `modes_covered` (int), `num_modes` (K), `high_quality_fraction` (float), and
    `per_mode_fraction` (K floats: the fraction of all the samples within reach of each centre).
    numpy only.
    """
    samples = _flat(samples, "samples").astype(np.float64)
    centres = np.asarray(centres, np.float64).reshape(-1, samples.shape[1])
    std, num_std, min_fraction = float(std), float(num_std), float(min_fraction)
    if not (std > 0 and num_std > 0):
        raise ValueError(f"mode_coverage: expected std > 0 and num_std > 0; got {std!r}, {num_std!r}.")
    if len(samples) == 0 or len(centres) == 0:
        raise ValueError("mode_coverage: expected at least one sample and one centre.")
    distances = np.sqrt(np.sum((samples[:, None, :] - centres[None, :, :]) ** 2, axis=-1))  # [N, K]
    near = distances <= num_std * std
    per_mode = np.count_nonzero(near, axis=0) / len(samples)  # exact ratios: a count/N boundary holds
    return {"modes_covered": int(np.sum(per_mode >= min_fraction)), "num_modes": int(len(centres)),
            "high_quality_fraction": float(np.mean(near.any(axis=1))),
            "per_mode_fraction": [float(f) for f in per_mode]}
