"""LadderVAE and HierarchicalVAE (Sønderby et al. 2016) against numbers computed independently.

The precision-weighted merge against the product of two Gaussian densities normalized on a grid;
every layer's log-densities, the ELBO and the importance-weighted bound against a numpy forward
pass in float64 over the models' own weights (read with `get_weights`) and the same noise; the
top layer's posterior; the top-down layers shared by inference and generation; batch norm's
moving statistics (inference mode, `.keras`, SavedModel, and what they converge to); active units
per layer; the per-layer KL metrics; the constructor's errors.
"""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import distributions, evaluation, objectives
from tolerances import dense_partial_sums, float32_tolerance, float64_tolerance

SHAPE = (3, 3, 1)          # 9 Bernoulli pixels: every number below is cheap to recompute
LATENT_DIMS = (3, 2)       # distinct sizes, so a layer mixed up with another fails on its shape
HIDDEN_UNITS = (6, 5)
FAMILIES = (tfvae.LadderVAE, tfvae.HierarchicalVAE)
#: Roundings along one path (bottom-up blocks, merges, top-down blocks, decoder, the densities'
#: sums) in float32 against float64; the tolerances scale them with the largest partial sum of
#: any Dense layer on the path and the largest log-density term, not with the (smaller) results.
PATH_OPS = 32


def make(cls, *, batch_norm, num_samples=1, latent_dims=LATENT_DIMS, hidden_units=HIDDEN_UNITS,
         **kwargs):
    keras.utils.set_random_seed(0)  # the same initial weights every time
    return cls(SHAPE, latent_dims, hidden_units, batch_norm=batch_norm, num_samples=num_samples,
               seed=0, **kwargs)


def binary(n, seed):
    return (np.random.RandomState(seed).rand(n, *SHAPE) > 0.5).astype("float32")


@pytest.fixture(scope="module")
def x():
    return binary(7, 0)


def trained(cls, x, *, batch_norm, num_samples=1, steps=12):
    """A tiny model after a few Adam steps: weights off their initial values, and (with batch
    norm) moving statistics off their initial 0 and 1."""
    model = make(cls, batch_norm=batch_norm, num_samples=num_samples)
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    model.fit(np.concatenate([x] * steps), batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return model


@pytest.fixture(scope="module")
def models(x):
    """{(class name, batch_norm): trained model} for both families, with and without batch norm."""
    return {(cls.__name__, bn): trained(cls, x, batch_norm=bn) for cls in FAMILIES
            for bn in (False, True)}


CASES = [(cls.__name__, bn) for cls in FAMILIES for bn in (False, True)]


# --------------------------------------------------------------------------- numpy reference
def np_dense(layer, h):
    kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    return h @ kernel + bias


def np_block(block, h, batch_statistics=None):
    """A deterministic block, Dense → [BatchNorm] → LeakyReLU(0.1) (× 2), in float64. Batch norm
    uses its moving statistics (inference mode), or, when `batch_statistics` is a list, the
    batch's own mean and (biased) variance, which it appends to that list (training mode)."""
    for layer in block.layers:
        if isinstance(layer, keras.layers.Dense):
            h = np_dense(layer, h)
        elif isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, moving_mean, moving_variance = (np.asarray(w, np.float64)
                                                         for w in layer.get_weights())
            if batch_statistics is None:
                mean, variance = moving_mean, moving_variance
            else:
                mean, variance = h.mean(axis=0), h.var(axis=0)
                batch_statistics.append((mean, variance))
            h = gamma * (h - mean) / np.sqrt(variance + layer.epsilon) + beta
        elif isinstance(layer, keras.layers.LeakyReLU):
            h = np.where(h >= 0, h, 0.1 * h)
        else:
            raise AssertionError(f"unexpected layer {layer.name} in {block.name}")
    return h


def np_gaussian(model, head, h):
    """(mean, variance) of a head: linear mean, softplus variance plus the floor."""
    out = np_dense(head, h)
    size = out.shape[-1] // 2
    return out[:, :size], np.logaddexp(0.0, out[:, size:]) + model.min_variance


def np_normal_log_prob(z, mean, variance):
    return np.sum(-0.5 * (np.log(2 * np.pi * variance) + (z - mean) ** 2 / variance), axis=-1)


def np_merge(mean_hat, variance_hat, mean_prior, variance_prior):
    """The product of N(μ̂, σ̂²) and N(μ_p, σ_p²), renormalized: a Gaussian whose precision is the
    sum of the two and whose mean is the precision-weighted average of the means."""
    precision = 1.0 / variance_hat + 1.0 / variance_prior
    return (mean_hat / variance_hat + mean_prior / variance_prior) / precision, 1.0 / precision


def np_top_down(model, i, z_above):
    return np_gaussian(model, model.top_down_heads[i], np_block(model.top_down_blocks[i], z_above))


def np_path(model, x, noise):
    """(z, log q, log p) of every layer, bottom first, of a path through `model`: each layer's
    draw is mean + σ·noise[i] (`noise[i]` `[N, D_i]`, N a multiple of the batch: the batch
    repeated, sample-major), or the mean where `noise[i]` is None."""
    num_layers = len(model.latent_dims)
    copies = 1 if noise[0] is None else len(noise[0]) // len(x)
    h = np.tile(x.reshape(len(x), -1).astype(np.float64), (copies, 1))
    z, log_q, log_p = [None] * num_layers, [None] * num_layers, [None] * num_layers

    def draw(i, mean, variance):
        z[i] = mean if noise[i] is None else mean + np.sqrt(variance) * noise[i]
        log_q[i] = np_normal_log_prob(z[i], mean, variance)

    if isinstance(model, tfvae.LadderVAE):
        estimates = []
        for i in range(num_layers):  # the deterministic bottom-up pass d_n
            h = np_block(model.bottom_up_blocks[i], h)
            estimates.append(np_gaussian(model, model.bottom_up_heads[i], h))
        draw(num_layers - 1, *estimates[-1])  # the top: the bottom-up estimate alone
        for i in reversed(range(num_layers - 1)):
            prior_mean, prior_variance = np_top_down(model, i, z[i + 1])
            draw(i, *np_merge(*estimates[i], prior_mean, prior_variance))
            log_p[i] = np_normal_log_prob(z[i], prior_mean, prior_variance)
    else:  # bottom-up inference q(z_1|x) q(z_2|z_1) ...
        for i in range(num_layers):
            draw(i, *np_gaussian(model, model.bottom_up_heads[i],
                                 np_block(model.bottom_up_blocks[i], h)))
            h = z[i]
        for i in range(num_layers - 1):
            log_p[i] = np_normal_log_prob(z[i], *np_top_down(model, i, z[i + 1]))
    log_p[-1] = np_normal_log_prob(z[-1], 0.0, 1.0)
    return z, log_q, log_p


def np_logits(model, z1):
    return np_dense(model.decoder_head, np_block(model.decoder_block, z1))


def np_bernoulli_log_prob(x, logits):
    x = np.tile(x.reshape(len(x), -1).astype(np.float64), (len(logits) // len(x), 1))
    return np.sum(x * logits - np.logaddexp(0.0, logits), axis=-1)


def noise_for(model, num_rows, seed):
    """The standard normal draws of each layer for `seed`: the model's per-layer seeds, drawn
    here (the draws, merges, densities and bound are then all recomputed in numpy)."""
    seeds = model._split_seeds(seed)
    return [tf.random.stateless_normal([num_rows, d], seeds[i]).numpy().astype(np.float64)
            for i, d in enumerate(model.latent_dims)]


def np_log_weights(model, x, num_samples, seed):
    """log w = log p(x|z_1) + Σ_i [log p(z_i|z_{i+1}) - log q(z_i|·)], `[S, B]`, with the terms:
    (log w, log p(x|z_1) [S, B], [log q_i - log p_i] [L][S, B])."""
    z, log_q, log_p = np_path(model, x, noise_for(model, num_samples * len(x), seed))
    log_px = np_bernoulli_log_prob(x, np_logits(model, z[0]))
    kls = [q - p for q, p in zip(log_q, log_p)]
    log_w = log_px - sum(kls)
    shape = (num_samples, len(x))
    return log_w.reshape(shape), log_px.reshape(shape), [kl.reshape(shape) for kl in kls]


def np_log_mean_exp(values, axis=0):
    top = values.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.mean(np.exp(values - top), axis=axis))


def path_tolerance(model, x, num_samples, seed, *terms):
    """float32 against float64 along the whole path: PATH_OPS roundings at the size of the
    largest Dense partial sum on it and of the largest log-density term."""
    partial = dense_partial_sums(model.path_log_weights, tf.constant(x), num_samples, seed)
    return float32_tolerance(partial, *terms, ops=PATH_OPS)


# --------------------------------------------------------------------------- the merge
MERGE_CASES = [  # (μ̂, σ̂², μ_p, σ_p²)
    (0.0, 1.0, 0.0, 1.0),
    (1.5, 0.3, -2.0, 4.0),
    (-0.7, 2.5, 0.4, 0.05),
    (3.0, 1e-3, -1.0, 10.0),
]


@pytest.mark.parametrize("mean_hat, variance_hat, mean_prior, variance_prior", MERGE_CASES)
def test_precision_weighted_merge_is_the_normalized_product_of_the_densities(
        mean_hat, variance_hat, mean_prior, variance_prior):
    """N(μ̂, σ̂²)·N(μ_p, σ_p²), normalized numerically on a fine grid, is the Gaussian the merge
    returns: same mean and variance (by quadrature), same density at every grid point."""
    mean, variance = (float(v) for v in objectives.precision_weighted_merge(
        *(tf.constant(v, tf.float64) for v in (mean_hat, variance_hat, mean_prior, variance_prior))))
    # the product concentrates within a few σ of the narrower factor
    center, width = (mean_hat, math.sqrt(variance_hat)) if variance_hat < variance_prior else (
        mean_prior, math.sqrt(variance_prior))
    grid = np.linspace(center - 40 * width, center + 40 * width, 200_001)
    step = grid[1] - grid[0]

    def density(m, v):
        return np.exp(-0.5 * (grid - m) ** 2 / v) / np.sqrt(2 * np.pi * v)

    product = density(mean_hat, variance_hat) * density(mean_prior, variance_prior)
    product /= product.sum() * step
    grid_mean = np.sum(grid * product) * step
    grid_variance = np.sum((grid - grid_mean) ** 2 * product) * step
    # the Riemann sum of a smooth, vanishing density is exact far beyond these tolerances
    assert mean == pytest.approx(grid_mean, rel=1e-9, abs=1e-9 * width)
    assert variance == pytest.approx(grid_variance, rel=1e-7)
    np.testing.assert_allclose(product, density(mean, variance), rtol=0,
                               atol=1e-7 * product.max())


def test_precision_weighted_merge_limits_and_shapes():
    merge = objectives.precision_weighted_merge
    # an uninformative prior (σ_p → ∞) leaves the estimate; an uninformative estimate, the prior
    mean, variance = merge(np.float64(1.3), np.float64(0.4), np.float64(-5.0), np.float64(1e15))
    assert float(mean) == pytest.approx(1.3, abs=1e-13)
    assert float(variance) == pytest.approx(0.4, rel=1e-14)
    mean, variance = merge(np.float64(1.3), np.float64(1e15), np.float64(-5.0), np.float64(0.25))
    assert float(mean) == pytest.approx(-5.0, abs=1e-13)
    assert float(variance) == pytest.approx(0.25, rel=1e-14)
    # two equal variances: the average of the means, half the variance; symmetric in its factors
    mean, variance = merge(np.float64(2.0), np.float64(0.6), np.float64(-1.0), np.float64(0.6))
    assert float(mean) == pytest.approx(0.5, abs=float64_tolerance(2.0))
    assert float(variance) == pytest.approx(0.3, rel=4 * np.finfo(np.float64).eps)
    # elementwise over [..., D], against the closed form in numpy
    rng = np.random.RandomState(0)
    args = [rng.randn(4, 3), rng.rand(4, 3) + 0.1, rng.randn(4, 3), rng.rand(4, 3) + 0.1]
    mean, variance = merge(*(tf.constant(a, tf.float32) for a in args))
    expected_mean, expected_variance = np_merge(*args)
    assert mean.shape == variance.shape == (4, 3)
    np.testing.assert_allclose(mean, expected_mean, rtol=0, atol=float32_tolerance(
        args[0] / args[1], args[2] / args[3], expected_mean, ops=16))
    np.testing.assert_allclose(variance, expected_variance, rtol=4 * np.finfo(np.float32).eps)
    swapped_mean, swapped_variance = merge(*(tf.constant(a, tf.float32) for a in args[2:] + args[:2]))
    np.testing.assert_allclose(swapped_mean, mean, rtol=0, atol=float32_tolerance(
        args[0] / args[1], args[2] / args[3], expected_mean, ops=16))
    np.testing.assert_array_equal(swapped_variance, variance)


# --------------------------------------------------------------------------- the bound
@pytest.mark.parametrize("case", CASES)
def test_every_layer_and_the_bound_equal_a_numpy_forward_pass(case, models, x):
    """For fixed noise, log p(x|z_1), each layer's log q - log p (KL term) and log w equal their
    numpy recomputation from the weights (batch norm in inference mode), for 1 and for 4 paths."""
    model = models[case]
    for num_samples, seed in ((1, (3, 5)), (4, (8, 1))):
        log_w, log_px, kls = model.path_log_weights(tf.constant(x), num_samples, seed)
        expected_w, expected_px, expected_kls = np_log_weights(model, x, num_samples, seed)
        assert log_w.shape == log_px.shape == (num_samples, len(x)) and len(kls) == len(LATENT_DIMS)
        tolerance = path_tolerance(model, x, num_samples, seed, expected_w, expected_px,
                                   *expected_kls)
        np.testing.assert_allclose(log_px, expected_px, rtol=0, atol=tolerance)
        for layer, (kl, expected) in enumerate(zip(kls, expected_kls)):
            np.testing.assert_allclose(kl, expected, rtol=0, atol=tolerance,
                                       err_msg=f"layer {layer + 1}")
        np.testing.assert_allclose(log_w, expected_w, rtol=0, atol=tolerance)
        # the same paths are what log_importance_weights (log-likelihood) evaluates
        np.testing.assert_array_equal(model.log_importance_weights(tf.constant(x), num_samples, seed),
                                      log_w)


@pytest.mark.parametrize("cls", FAMILIES)
def test_the_training_objective_is_the_hand_computed_elbo(cls, models, x):
    """A 2-layer model with fixed noise: compute_losses gives -ELBO = -log w of one path, and
    logs the reconstruction, each layer's KL term, their sum, and the ELBO, all as in numpy; a
    KL weight β scales the KL terms of the loss only."""
    model = models[cls.__name__, True]
    seed = tf.constant([11, 12], tf.int32)
    loss, logs = model.compute_losses(tf.constant(x), seed=seed, training=False)
    log_w, log_px, kls = np_log_weights(model, x, 1, seed)
    log_w, log_px, kls = log_w[0], log_px[0], [kl[0] for kl in kls]
    tolerance = path_tolerance(model, x, 1, seed, log_w, log_px, *kls)
    np.testing.assert_allclose(loss, -log_w, rtol=0, atol=tolerance)
    np.testing.assert_allclose(logs["loss"], -log_w, rtol=0, atol=tolerance)
    np.testing.assert_allclose(logs["elbo"], log_w, rtol=0, atol=tolerance)
    np.testing.assert_allclose(logs["reconstruction"], -log_px, rtol=0, atol=tolerance)
    np.testing.assert_allclose(logs["kl"], sum(kls), rtol=0, atol=tolerance)
    for i, kl in enumerate(kls):
        np.testing.assert_allclose(logs[f"kl_{i + 1}"], kl, rtol=0, atol=tolerance)
    assert "iwae_bound" not in logs
    model.kl_weight.assign(0.25)
    try:
        loss, logs = model.compute_losses(tf.constant(x), seed=seed, training=False)
    finally:
        model.kl_weight.assign(1.0)  # the shared model as the other tests expect it
    np.testing.assert_allclose(loss, -(log_px - 0.25 * sum(kls)), rtol=0, atol=tolerance)
    np.testing.assert_allclose(logs["kl"], sum(kls), rtol=0, atol=tolerance)  # unweighted


@pytest.mark.parametrize("cls", FAMILIES)
def test_num_samples_above_one_trains_with_the_importance_weighted_bound(cls, x):
    """num_samples = k > 1: the loss is -log (1/k) Σ_k w_k over k paths (Burda et al. 2016,
    Eq. 8), logged as iwae_bound beside the average ELBO; log_likelihood is the same estimator,
    its k samples drawn in chunks (the last one masked), all against numpy."""
    model = trained(cls, x, batch_norm=False, num_samples=3)
    assert "iwae_bound" in model.metric_names
    seed = tf.constant([2, 9], tf.int32)
    loss, logs = model.compute_losses(tf.constant(x), seed=seed, training=False)
    log_w, log_px, kls = np_log_weights(model, x, 3, seed)
    tolerance = path_tolerance(model, x, 3, seed, log_w, log_px, *kls)
    np.testing.assert_allclose(loss, -np_log_mean_exp(log_w), rtol=0, atol=tolerance)
    np.testing.assert_allclose(logs["iwae_bound"], np_log_mean_exp(log_w), rtol=0, atol=tolerance)
    np.testing.assert_allclose(logs["elbo"], log_w.mean(axis=0), rtol=0, atol=tolerance)
    assert np.all(np_log_mean_exp(log_w) > log_w.mean(axis=0))  # Jensen: the tighter bound

    # log_likelihood_batch: 5 samples in chunks of 2, chunk c drawn with fold_in(seed, c)
    estimate = model.log_likelihood_batch(tf.constant(x), 5, 2, seed)
    weights = np.concatenate([np_log_weights(
        model, x, 2, tf.random.experimental.stateless_fold_in(seed, c))[0] for c in range(3)])[:5]
    np.testing.assert_allclose(estimate, np_log_mean_exp(weights), rtol=0,
                               atol=path_tolerance(model, x, 2, seed, weights))


# --------------------------------------------------------------------------- the two passes
@pytest.mark.parametrize("batch_norm", [False, True])
def test_encode_returns_every_layers_mean_bottom_first(batch_norm, models, x):
    """encode(x): a list of [B, D_i] means, bottom first, each taken with the layers above (the
    Ladder VAE) or below (bottom-up) at their means; the top of the Ladder VAE is the bottom-up
    estimate μ̂_L itself."""
    for cls in FAMILIES:
        model = models[cls.__name__, batch_norm]
        codes = model.encode(x)
        assert isinstance(codes, list) and [tuple(c.shape) for c in codes] == [
            (len(x), d) for d in LATENT_DIMS]
        expected = np_path(model, x, [None] * len(LATENT_DIMS))[0]
        partial = dense_partial_sums(model.encode, x)
        for code, mean in zip(codes, expected):
            np.testing.assert_allclose(code, mean, rtol=0,
                                       atol=float32_tolerance(partial, mean, ops=PATH_OPS))


def test_the_ladder_top_posterior_is_the_bottom_up_estimate_alone(x):
    """q(z_L|x) = N(μ̂_L, σ̂²_L) of the bottom-up pass: the top-down layers (here scrambled) change
    every lower layer's posterior and none of the top's."""
    model = make(tfvae.LadderVAE, batch_norm=False)
    seed = (4, 4)
    before = model.inference_path(tf.constant(x), 2, seed)
    rng = np.random.RandomState(1)
    for layer in model.top_down_blocks + model.top_down_heads:
        layer.set_weights([rng.randn(*w.shape) for w in layer.get_weights()])
    after = model.inference_path(tf.constant(x), 2, seed)
    np.testing.assert_array_equal(after[0][-1], before[0][-1])      # z_L
    np.testing.assert_array_equal(after[1][-1], before[1][-1])      # log q(z_L|x)
    assert not np.allclose(after[0][0], before[0][0])               # z_1: merged with the prior
    # and q(z_L|x) is the estimate's Gaussian, in numpy from the bottom-up pass only
    h = x.reshape(len(x), -1).astype(np.float64)
    for block in model.bottom_up_blocks:
        h = np_block(block, h)
    mean, variance = np_gaussian(model, model.bottom_up_heads[-1], h)
    noise = noise_for(model, 2 * len(x), seed)[-1]
    expected = np.tile(mean, (2, 1)) + np.sqrt(np.tile(variance, (2, 1))) * noise
    partial = dense_partial_sums(model.inference_path, tf.constant(x), 2, seed)
    np.testing.assert_allclose(after[0][-1], expected, rtol=0,
                               atol=float32_tolerance(partial, expected, ops=PATH_OPS))


@pytest.mark.parametrize("cls", FAMILIES)
def test_the_top_down_layers_serve_inference_and_generation(cls, models, x):
    """One set of top-down layers: the model's trainable variables are the bottom-up pass, the
    top-down pass and the decoder, each once; `sample` draws through the very layers the
    inference check above used (ancestral sampling in numpy, same weights), and for the Ladder
    VAE the posterior depends on them (a gradient)."""
    model = models[cls.__name__, True]
    groups = (model.bottom_up_blocks + model.bottom_up_heads + model.top_down_blocks
              + model.top_down_heads + [model.decoder_block, model.decoder_head])
    expected = [v for layer in groups for v in layer.trainable_variables]
    assert len({id(v) for v in model.trainable_variables}) == len(model.trainable_variables)
    assert {id(v) for v in model.trainable_variables} == {id(v) for v in expected}
    assert len(expected) == len(model.trainable_variables)

    seeds = model._split_seeds((6, 7))
    z = tf.random.stateless_normal([5, LATENT_DIMS[-1]], seeds[-1]).numpy().astype(np.float64)
    for i in reversed(range(len(LATENT_DIMS) - 1)):
        mean, variance = np_top_down(model, i, z)
        z = mean + np.sqrt(variance) * tf.random.stateless_normal(
            [5, LATENT_DIMS[i]], seeds[i]).numpy().astype(np.float64)
    expected_images = 1.0 / (1.0 + np.exp(-np_logits(model, z)))
    images = model.sample(5, seed=(6, 7))
    assert images.shape == (5,) + SHAPE
    np.testing.assert_allclose(np.reshape(images, (5, -1)), expected_images, rtol=0,
                               atol=float32_tolerance(dense_partial_sums(model.sample, 5, seed=(6, 7)),
                                                      ops=PATH_OPS))

    head = model.top_down_heads[0].kernel
    with tf.GradientTape(persistent=True) as tape:
        _, log_q, _ = model.inference_path(tf.constant(x), 1, (1, 1))
        images = model.sample(3, seed=(1, 1))
    assert tape.gradient(images, head) is not None
    if cls is tfvae.LadderVAE:
        gradient = tape.gradient(log_q[0], head)
        assert gradient is not None and np.any(np.asarray(gradient) != 0)
    else:  # bottom-up inference has no top-down term
        assert tape.gradient(log_q[0], head) is None


# --------------------------------------------------------------------------- batch norm
def moving_statistics(model):
    return {v.path: np.asarray(v) for v in model.non_trainable_variables if "moving_" in v.path}


@pytest.mark.parametrize("cls", FAMILIES)
def test_batch_norm_moving_statistics_survive_saving_and_export(cls, models, x, tmp_path):
    """Inference uses the moving statistics (an example alone is encoded as in a batch, and as
    numpy encodes it with them); `.keras` restores them bit for bit, so encode and
    log_likelihood give the same numbers after reloading, and the SavedModel gives them too."""
    model = models[cls.__name__, True]
    statistics = moving_statistics(model)
    assert len(statistics) == 2 * 2 * (2 * len(LATENT_DIMS))  # mean, variance × 2 per block
    means = [v for k, v in statistics.items() if "moving_mean" in k]
    variances = [v for k, v in statistics.items() if "moving_variance" in k]
    assert max(np.abs(m).max() for m in means) > 1e-2          # trained away from 0 and 1
    assert max(np.abs(v - 1).max() for v in variances) > 1e-2
    alone = [model.encode(x[i:i + 1]) for i in range(len(x))]
    together = model.encode(x)
    tolerance = float32_tolerance(dense_partial_sums(model.encode, x), ops=PATH_OPS)
    for layer, code in enumerate(together):
        np.testing.assert_allclose(np.concatenate([a[layer] for a in alone]), code, rtol=0,
                                   atol=tolerance)

    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded) is cls and loaded.batch_norm
    for key, value in moving_statistics(loaded).items():
        np.testing.assert_array_equal(value, statistics[key], err_msg=key)
    for a, b in zip(loaded.encode(x), together):
        np.testing.assert_array_equal(a, b)
    log_px = model.log_likelihood(x, 20, seed=3)
    np.testing.assert_array_equal(loaded.log_likelihood(x, 20, seed=3), log_px)

    model.export(tmp_path / "saved")
    signatures = tf.saved_model.load(str(tmp_path / "saved")).signatures
    served = signatures["encode"](x=tf.constant(x))
    assert sorted(served) == [f"mean_{i + 1}" for i in range(len(LATENT_DIMS))]
    for i, code in enumerate(together):
        np.testing.assert_allclose(served[f"mean_{i + 1}"], code, rtol=0, atol=tolerance)
    served = signatures["log_likelihood"](x=tf.constant(x), num_samples=tf.constant(20),
                                          seed=tf.constant([7, 8]))["log_likelihood"]
    expected = model.log_likelihood(x, 20, chunk_size=100, seed=(7, 8))
    np.testing.assert_allclose(served, expected, rtol=0, atol=float32_tolerance(expected, ops=16))


def test_moving_statistics_reach_the_training_data_statistics(x):
    """The authors compute batch-norm statistics over the training set before testing; Keras
    keeps moving averages, m ← 0.99 m + 0.01 (batch statistic). With the weights frozen and the
    whole training set as every batch, each bottom-up statistic of the Ladder VAE (a function of
    x alone) after N steps is the data's statistic up to 0.99^N of its initial gap, in closed
    form: the moving averages are the data's statistics by evaluation time."""
    model = make(tfvae.LadderVAE, batch_norm=True)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    initial = moving_statistics(model)
    steps = 500
    model.fit(np.concatenate([x] * steps), batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    batch_statistics = []
    h = x.reshape(len(x), -1).astype(np.float64)
    for block in model.bottom_up_blocks:
        h = np_block(block, h, batch_statistics)
    layers = [layer for block in model.bottom_up_blocks for layer in block.layers
              if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(layers) == len(batch_statistics) == 2 * len(LATENT_DIMS)
    decay = 0.99 ** steps
    for layer, (mean, variance) in zip(layers, batch_statistics):
        for name, target in (("moving_mean", mean), ("moving_variance", variance)):
            variable = getattr(layer, name)
            start = initial[variable.path]
            expected = decay * start + (1 - decay) * target
            # each step rounds the average once, at the size of the values: `steps` roundings
            np.testing.assert_allclose(np.asarray(variable), expected, rtol=0,
                                       atol=float32_tolerance(start, target, ops=2 * steps),
                                       err_msg=variable.path)
            assert np.all(np.abs(np.asarray(variable) - target) <= 0.01 * np.abs(start - target) + 1e-4)


# --------------------------------------------------------------------------- evaluation
def test_active_units_per_layer_counts_the_units_whose_means_vary(x):
    """A bottom-up model whose head weights decide which units vary: a unit with a zero kernel
    has the same mean for every x (inactive), one with a large kernel varies (active); the
    counts per layer match numpy's variances of the means, whatever the batching."""
    model = make(tfvae.HierarchicalVAE, batch_norm=False)
    data = binary(40, 5)
    first, second = model.bottom_up_heads
    kernel, bias = first.get_weights()
    kernel[:, :3] = 0.0                      # the means of layer 1's units 1 and 2: constant
    kernel[:, 2] = 5.0 * np.sign(np.random.RandomState(2).randn(kernel.shape[0]))  # unit 3 varies
    first.set_weights([kernel, bias])
    kernel, bias = second.get_weights()
    kernel[:, 0], kernel[:, 1] = 0.0, 20.0   # layer 2: unit 1 constant, unit 2 varies with z_1
    second.set_weights([kernel, bias])
    means = np_path(model, data, [None, None])[0]
    variances = [m.var(axis=0) for m in means]
    assert variances[0][0] == variances[0][1] == variances[1][0] == 0.0
    assert variances[0][2] > 1.0 and variances[1][1] > 1.0
    assert evaluation.active_units_per_layer(model, data, batch_size=7) == [1, 1]
    assert evaluation.active_units(model, data) == 2                 # every layer together
    assert evaluation.codes(model, data).shape == (40, sum(LATENT_DIMS))
    assert evaluation.active_units_per_layer(model, data, threshold=np.inf) == [0, 0]


@pytest.mark.parametrize("case", CASES)
def test_active_units_per_layer_of_a_trained_model_against_numpy(case, models):
    model = models[case]
    data = binary(40, 6)
    codes = model.encode(data)
    expected = [int(np.sum(np.asarray(c, np.float64).var(axis=0) > 1e-2)) for c in codes]
    assert evaluation.active_units_per_layer(model, data, batch_size=9) == expected
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(16)
    assert evaluation.active_units_per_layer(model, dataset) == expected
    assert evaluation.active_units(model, data) == sum(expected)


# --------------------------------------------------------------------------- training
def test_per_layer_kl_metrics_are_in_the_history_and_sum_to_kl():
    """fit() logs kl_1 ... kl_L (and their val_ forms) for a 3-layer Ladder VAE, and each epoch's
    per-layer KLs add up to its kl."""
    model = make(tfvae.LadderVAE, batch_norm=True, latent_dims=(4, 3, 2), hidden_units=(8, 6, 4))
    assert list(model.metric_names) == ["loss", "elbo", "reconstruction", "kl", "kl_1", "kl_2", "kl_3"]
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(binary(32, 1), batch_size=8, epochs=2, verbose=0,
                        validation_data=(binary(16, 2),)).history
    for prefix in ("", "val_"):
        assert {f"{prefix}kl_{i}" for i in (1, 2, 3)} <= set(history)
        layers = np.array([history[f"{prefix}kl_{i}"] for i in (1, 2, 3)])
        np.testing.assert_allclose(layers.sum(axis=0), history[f"{prefix}kl"], rtol=0,
                                   atol=float32_tolerance(np.abs(layers).sum(axis=0), ops=32))
        assert np.all(np.isfinite(layers))


@pytest.mark.parametrize("latent_dims, hidden_units, message", [
    ((4, 2), (8,), r"one hidden_units entry per stochastic layer \(2 latent_dims\); got 1"),
    ((4,), (8, 8), r"one hidden_units entry per stochastic layer \(1 latent_dims\); got 2"),
    ((4, 0), (8, 8), r"latent_dims as a sequence of positive ints.*got \(4, 0\)"),
    ((4, -2), (8, 8), r"latent_dims as a sequence of positive ints.*got \(4, -2\)"),
    ((4, 2), (8, 0), r"hidden_units as a sequence of positive ints.*got \(8, 0\)"),
    ((4, 2.5), (8, 8), r"latent_dims as a sequence of positive ints.*got \(4, 2.5\)"),
    ((), (), r"latent_dims as a sequence of positive ints, one per stochastic layer; got none"),
    ("42", (8, 8), r"latent_dims as a sequence of positive ints.*the string '42'"),
    (None, (8,), r"latent_dims as a sequence of positive ints.*got None"),
])
@pytest.mark.parametrize("cls", FAMILIES)
def test_bad_layer_sizes_are_refused_clearly(cls, latent_dims, hidden_units, message):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: expected {message}"):
        cls(SHAPE, latent_dims, hidden_units)
