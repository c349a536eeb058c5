"""The VQ-VAE (van den Oord et al. 2017) against numbers computed independently.

Nearest-code quantization (Eq. 1) against a brute-force numpy search; the straight-through
gradient (Eq. 3's reconstruction term reaches the encoder as if z_q = z_e) and the codebook
loss's closed-form gradient; the loss terms against numpy; the EMA codebook (Appendix A.1)
against a numpy step, and on two replicas against one device; dead-code restarts; perplexity
and codes used over an epoch; the PixelCNN prior's causal mask, log-probabilities and samples;
the errors; `.keras` files and SavedModels with a prior; `fit_prior`'s inputs.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tolerances import float32_tolerance

SHAPE = (28, 28, 1)
NUM_CODES, CODE_DIM = 8, 4
GRID = (7, 7)  # the VQ networks downsample 4×
SCRIPTS = Path(__file__).resolve().parent / "scripts"
REPO = Path(__file__).resolve().parents[1]
REPLICA_TIMEOUT_S = 240


def tiny(**kwargs):
    """A VQ-VAE with 8-filter networks of one residual block and 8 codes of 4 dimensions."""
    kwargs.setdefault("num_codes", NUM_CODES)
    kwargs.setdefault("code_dim", CODE_DIM)
    keras.utils.set_random_seed(0)  # the same initial weights every time
    return tfvae.VQVAE(SHAPE, encoder=tfvae.networks.vq_encoder(filters=8, residual_blocks=1),
                       decoder=tfvae.networks.vq_decoder(filters=8, residual_blocks=1), seed=0,
                       **kwargs)


def tiny_prior(grid_shape=GRID, num_codes=NUM_CODES, **kwargs):
    kwargs.setdefault("num_layers", 2)
    kwargs.setdefault("filters", 8)
    return tfvae.PixelCNNPrior(grid_shape, num_codes, **kwargs)


@pytest.fixture(scope="module")
def x(mnist_sample):
    return mnist_sample[0][:32]


# --------------------------------------------------------------------------- numpy reference
def np_nearest(z, codebook):
    """(indices, distances, margin): the brute-force nearest codes of vectors `[..., D]` in
    float64, and the smallest gap between the nearest and the second nearest distance."""
    z64, e64 = np.asarray(z, np.float64), np.asarray(codebook, np.float64)
    distances = np.sum((z64[..., None, :] - e64) ** 2, axis=-1)
    ordered = np.sort(distances, axis=-1)
    return distances.argmin(-1), distances, float(np.min(ordered[..., 1] - ordered[..., 0]))


def np_ema_step(cluster_size, cluster_sum, codebook, z, decay, epsilon):
    """One EMA codebook step in float64 (Appendix A.1): the nearest codes of `z`, their counts
    and sums, the decayed statistics, the Laplace-smoothed sizes; codes never assigned keep
    their vectors. Returns (N, m, e, counts, margin)."""
    num_codes, code_dim = codebook.shape
    indices, _, margin = np_nearest(z, codebook)
    flat, indices = np.asarray(z, np.float64).reshape(-1, code_dim), indices.reshape(-1)
    counts = np.bincount(indices, minlength=num_codes).astype(np.float64)
    sums = np.zeros((num_codes, code_dim))
    np.add.at(sums, indices, flat)
    size = decay * cluster_size + (1 - decay) * counts
    total = decay * cluster_sum + (1 - decay) * sums
    n = size.sum()
    smoothed = (size + epsilon) / (n + num_codes * epsilon) * n
    new = np.where(size[:, None] > 0, total / np.where(size > 0, smoothed, 1.0)[:, None], codebook)
    return size, total, new, counts, margin


def np_bernoulli_log_prob(x, logits):
    """log p(x | logits) per example, float64, and the summed |terms| (the rounding's scale)."""
    x, logits = np.asarray(x, np.float64), np.asarray(logits, np.float64)
    terms = x * logits - np.logaddexp(0.0, logits)
    axes = tuple(range(1, x.ndim))
    return terms.sum(axes), (np.abs(x * logits) + np.logaddexp(0.0, logits)).sum(axes)


def np_perplexity(codes, num_codes):
    counts = np.bincount(np.asarray(codes).reshape(-1), minlength=num_codes)
    p = counts[counts > 0] / counts.sum()
    return math.exp(-np.sum(p * np.log(p))), float(np.mean(counts > 0))


# --------------------------------------------------------------------------- quantization
def test_nearest_codes_is_the_brute_force_nearest_neighbour():
    """Eq. 1: z_q = e_k with k = argmin_j ‖z_e − e_j‖², for a grid of vectors `[B, h, w, D]`."""
    rng = np.random.RandomState(0)
    quantizer = tfvae.VectorQuantizer(16, CODE_DIM)
    codebook = rng.randn(16, CODE_DIM).astype("float32")
    quantizer.codebook.assign(codebook)
    z = rng.randn(3, 5, 6, CODE_DIM).astype("float32")
    expected, distances, margin = np_nearest(z, codebook)
    # no near-tie: the float32 expansion's rounding cannot swap the nearest and second nearest
    assert margin > float32_tolerance(distances.max(), np.sum(z.astype(np.float64) ** 2, -1), ops=64)
    indices, z_q = quantizer.nearest_codes(z)
    assert indices.dtype == tf.int32 and indices.shape == (3, 5, 6) and z_q.shape == z.shape
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(z_q, codebook[expected])
    np.testing.assert_array_equal(quantizer.lookup(expected), codebook[expected])
    assert len(np.unique(expected)) > 8  # many codes in play, not a degenerate case


def test_straight_through_gradient_passes_unchanged():
    """call(z_e) has the value of z_q and the gradient of z_e: d f(call(z_e)) / d z_e equals
    d f(z_q) / d z_q = w cos(z_q), for f = Σ w sin(·); the codebook gets no gradient from it."""
    rng = np.random.RandomState(1)
    quantizer = tfvae.VectorQuantizer(NUM_CODES, CODE_DIM)
    codebook = rng.randn(NUM_CODES, CODE_DIM).astype("float32")
    quantizer.codebook.assign(codebook)
    z_e = tf.Variable(rng.randn(2, 3, 3, CODE_DIM).astype("float32"))
    w = rng.randn(2, 3, 3, CODE_DIM).astype("float32")
    z_q = codebook[np_nearest(z_e.numpy(), codebook)[0]]
    with tf.GradientTape(persistent=True) as tape:
        out = quantizer(z_e)
        loss = tf.reduce_sum(w * tf.sin(out))
        z_q_tensor = tf.constant(z_q)
        tape.watch(z_q_tensor)
        loss_at_z_q = tf.reduce_sum(w * tf.sin(z_q_tensor))
    # z_e + (z_q − z_e) rounds twice at the size of z_e and z_q
    np.testing.assert_allclose(out, z_q, rtol=0, atol=float32_tolerance(z_e.numpy(), z_q, ops=2))
    gradient = tape.gradient(loss, z_e).numpy()
    expected = w.astype(np.float64) * np.cos(z_q.astype(np.float64))
    tolerance = float32_tolerance(w, ops=8)  # cos at z_q ± rounding, times w
    np.testing.assert_allclose(gradient, tape.gradient(loss_at_z_q, z_q_tensor), rtol=0, atol=tolerance)
    np.testing.assert_allclose(gradient, expected, rtol=0, atol=tolerance)
    # sharp: the gradient is taken at z_q, and w cos(z_e) would be far off
    at_z_e = w * np.cos(z_e.numpy().astype(np.float64))
    assert np.max(np.abs(at_z_e - expected)) > 1e4 * tolerance
    assert tape.gradient(loss, quantizer.codebook) is None


def test_encoder_learns_through_the_quantizer(x):
    """The reconstruction term alone gives every encoder variable a nonzero gradient (without
    the straight-through estimator the argmin would cut it: None)."""
    model = tiny()
    with tf.GradientTape() as tape:
        _, logs = model.compute_losses(tf.constant(x[:8]))
        reconstruction = tf.reduce_sum(logs["reconstruction"])
    variables = model.encoder.trainable_variables
    assert variables
    for variable, gradient in zip(variables, tape.gradient(reconstruction, variables)):
        assert gradient is not None and np.any(np.asarray(gradient) != 0), variable.path


def test_codebook_gradient_is_the_codebook_loss_closed_form(x):
    """With a learned codebook, only ‖sg[z_e] − e‖² reaches it: d Σ_b loss_b / d e_k =
    Σ_{vectors assigned to k} 2 (e_k − z_e), and the reconstruction and commitment terms give
    it nothing (None)."""
    model = tiny()
    batch = tf.constant(x[:8])
    with tf.GradientTape(persistent=True) as tape:
        loss, logs = model.compute_losses(batch)
        total = tf.reduce_sum(loss)
        others = tf.reduce_sum(logs["reconstruction"] + model.quantizer.commitment_cost * logs["commitment"])
    gradient = np.asarray(tf.convert_to_tensor(tape.gradient(total, model.quantizer.codebook)))
    assert tape.gradient(others, model.quantizer.codebook) is None
    z_e = np.asarray(model.encoder(batch), np.float64).reshape(-1, CODE_DIM)
    codebook = np.asarray(model.quantizer.codebook, np.float64)
    indices = np.asarray(model.quantizer.nearest_codes(z_e.astype("float32"))[0])
    terms = 2 * (codebook[indices] - z_e)
    expected = np.zeros_like(codebook)
    np.add.at(expected, indices, terms)
    absolute = np.zeros_like(codebook)
    np.add.at(absolute, indices, np.abs(terms))  # bounds every partial sum of the scatter-add
    assert len(np.unique(indices)) > 1 and np.max(np.abs(expected)) > 1.0
    np.testing.assert_allclose(gradient, expected, rtol=0, atol=float32_tolerance(absolute, ops=8))


def test_ema_codebook_is_not_trained_by_gradient(x):
    """With `ema_decay` the codebook is not trainable, not in the training phase, and the loss
    (reconstruction + β commitment) has no path to it."""
    model = tiny(ema_decay=0.99)
    codebook = model.quantizer.codebook
    assert not codebook.trainable
    assert all(v is not codebook for v in model.trainable_variables)
    assert all(v is not codebook for v in model.training_phases()[0].variables)
    with tf.GradientTape() as tape:
        tape.watch(codebook.value)
        loss, _ = model.compute_losses(tf.constant(x[:4]))
    assert tape.gradient(loss, codebook.value) is None
    plain = tiny()  # the contrast: a learned codebook is a trainable variable of the phase
    assert any(v is plain.quantizer.codebook for v in plain.training_phases()[0].variables)


# --------------------------------------------------------------------------- the loss
@pytest.mark.parametrize("ema_decay", [None, 0.9], ids=["plain", "ema"])
def test_compute_losses_match_numpy(x, ema_decay):
    """Eq. 3 per example: −log p(x|z_q) (Bernoulli, numpy) + ‖sg[z_e] − e‖² + β‖z_e − sg[e]‖²
    for a learned codebook, without the codebook term with EMA (still logged)."""
    beta = 0.3
    model = tiny(ema_decay=ema_decay, commitment_cost=beta)
    batch = x[:6]
    loss, logs = model.compute_losses(tf.constant(batch))
    z_e = np.asarray(model.encoder(batch))
    codebook = np.asarray(model.quantizer.codebook)
    z_q = codebook[np.asarray(model.quantizer.nearest_codes(z_e)[0])]
    # the decoder's input: z_e + (z_q − z_e) as float32 rounds it (IEEE: numpy gives the same)
    logits = np.asarray(model.decoder(z_e + (z_q - z_e)))
    log_px, log_px_terms = np_bernoulli_log_prob(batch, logits)
    squared = np.sum((z_e.astype(np.float64) - z_q) ** 2, axis=(1, 2, 3))
    expected = -log_px + beta * squared + (squared if ema_decay is None else 0.0)
    # the sums over 784 pixels and 49 × 4 code entries round at the size of their |terms|
    squared_tolerance = float32_tolerance(squared, ops=16)
    np.testing.assert_allclose(logs["reconstruction"], -log_px, rtol=0,
                               atol=float32_tolerance(log_px_terms, ops=32))
    np.testing.assert_allclose(logs["codebook"], squared, rtol=0, atol=squared_tolerance)
    np.testing.assert_allclose(logs["commitment"], squared, rtol=0, atol=squared_tolerance)
    np.testing.assert_allclose(loss, expected, rtol=0,
                               atol=float32_tolerance(log_px_terms, squared, ops=40))
    np.testing.assert_array_equal(logs["loss"], loss)
    assert np.min(squared) > 1e3 * squared_tolerance  # the code terms are not negligible here


# --------------------------------------------------------------------------- the EMA codebook
def test_ema_update_matches_a_numpy_step():
    """Two `update` steps of an EMA quantizer against `np_ema_step`: the decayed counts and
    sums, the Laplace-smoothed codes (ε = 0.5, large enough to matter), a code assigned in step
    1 but not step 2 (its statistics decay), and codes never assigned keeping their vectors."""
    rng = np.random.RandomState(2)
    decay, epsilon = 0.8, 0.5
    quantizer = tfvae.VectorQuantizer(6, 3, ema_decay=decay, epsilon=epsilon)
    codebook = np.concatenate([rng.randn(4, 3) * 2, np.full((2, 3), 40.0)]).astype("float32")
    quantizer.codebook.assign(codebook)
    first = (codebook[rng.randint(0, 4, 30)] + 0.3 * rng.randn(30, 3)).astype("float32")
    second = (codebook[rng.randint(0, 3, 30)] + 0.3 * rng.randn(30, 3)).astype("float32")
    size, total, expected = np.zeros(6), np.zeros((6, 3)), codebook.astype(np.float64)
    unused = np.zeros(6)
    for z in (first.reshape(2, 3, 5, 3), second.reshape(2, 3, 5, 3)):
        size, total, expected, counts, margin = np_ema_step(size, total, expected, z, decay, epsilon)
        unused = np.where(counts > 0, 0, unused + 1)
        assert margin > 1e-3  # no near-tie between codes
        indices, _ = quantizer.nearest_codes(z)
        quantizer.update(z, indices)
        tolerance = float32_tolerance(total, expected, size, ops=16)
        np.testing.assert_allclose(quantizer.cluster_size, size, rtol=0, atol=tolerance)
        np.testing.assert_allclose(quantizer.cluster_sum, total, rtol=0, atol=tolerance)
        np.testing.assert_allclose(quantizer.codebook, expected, rtol=0, atol=tolerance)
        np.testing.assert_array_equal(quantizer.steps_unused, unused)
        np.testing.assert_array_equal(np.asarray(quantizer.codebook)[4:], codebook[4:])
    np.testing.assert_array_equal(unused, [0, 0, 0, 1, 2, 2])  # code 3: used, then not
    # the smoothing is visible: the unsmoothed m/N would fail the comparison above
    plain = total[:4] / size[:4, None]
    assert np.max(np.abs(plain - expected[:4])) > 100 * tolerance


# --------------------------------------------------------------------------- dead codes
@pytest.mark.parametrize("ema_decay", [None, 0.9], ids=["plain", "ema"])
def test_dead_code_restart_replaces_only_unused_codes(ema_decay):
    """With `restart_after=3`, a code assigned to nothing for 3 steps becomes one of the
    batch's vectors (with EMA: one fresh assignment, N = 1, m = the vector); not before; the
    other codes end each step exactly as without restarts."""
    rng = np.random.RandomState(3)
    codebook = np.concatenate([rng.randn(3, 2) * 3, [[100.0, 100.0]]]).astype("float32")

    def make():
        quantizer = tfvae.VectorQuantizer(4, 2, ema_decay=ema_decay)
        quantizer.codebook.assign(codebook)
        return quantizer

    restarting, reference = make(), make()
    for step in range(1, 4):
        z = (codebook[rng.randint(0, 3, 12)] + 0.2 * rng.randn(12, 2)).astype("float32")
        for quantizer, restart_after in ((restarting, 3), (reference, None)):
            quantizer.update(z, quantizer.nearest_codes(z)[0], restart_after=restart_after,
                             seed=tf.constant([step, 0]))
        new = np.asarray(restarting.codebook)
        np.testing.assert_array_equal(new[:3], np.asarray(reference.codebook)[:3])
        if step < 3:
            np.testing.assert_array_equal(new[3], codebook[3])
            np.testing.assert_array_equal(restarting.steps_unused, [0, 0, 0, step])
    assert np.any(np.all(z == new[3], axis=-1)), "the restarted code is one of the batch's vectors"
    np.testing.assert_array_equal(restarting.steps_unused, [0, 0, 0, 0])
    np.testing.assert_array_equal(reference.steps_unused, [0, 0, 0, 3])
    if ema_decay is not None:
        assert float(restarting.cluster_size[3]) == 1.0
        np.testing.assert_array_equal(restarting.cluster_sum[3], new[3])
        np.testing.assert_array_equal(np.asarray(restarting.cluster_size)[:3],
                                      np.asarray(reference.cluster_size)[:3])


def test_vqvae_dead_code_restart_in_fit(x):
    """`VQVAE(dead_code_restart=2)`: in `fit` (SGD with learning rate 0: only the restarts
    change anything), a code far from every encoder output survives one step and is replaced
    by an encoder output of the batch at the second; the used codes stay as they were."""
    model = tiny(dead_code_restart=2)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    batch = x[:8]
    z_e = np.asarray(model.encoder(batch)).reshape(-1, CODE_DIM)
    codebook = np.asarray(model.quantizer.codebook).copy()
    codebook[-1] = 1e3
    model.quantizer.codebook.assign(codebook)
    used = np.unique(np.asarray(model.encode(batch)))
    assert NUM_CODES - 1 not in used
    model.fit(batch, batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(model.quantizer.codebook, codebook)
    assert float(model.quantizer.steps_unused[-1]) == 1.0
    model.fit(batch, batch_size=8, epochs=1, shuffle=False, verbose=0)
    new = np.asarray(model.quantizer.codebook)
    # an encoder output of the batch (computed here eagerly, in fit in a graph: conv rounding)
    nearest_output = np.min(np.max(np.abs(z_e - new[-1]), axis=-1))
    assert nearest_output <= float32_tolerance(z_e, ops=64), "the restarted code is an encoder output"
    np.testing.assert_array_equal(new[used], codebook[used])
    assert float(model.quantizer.steps_unused[-1]) == 0.0


# --------------------------------------------------------------------------- codebook usage
def test_perplexity_and_codes_used_over_the_epoch(x):
    """The logged perplexity and codes_used of `fit` (SGD(0), a learned codebook, no restarts:
    nothing changes) and `evaluate` are those of all the epoch's assignments, from `encode`,
    not of the last batch's."""
    model = tiny()
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    data = np.concatenate([np.zeros((8,) + SHAPE, "float32"), x[:16]])  # three unlike batches
    perplexity, codes_used = np_perplexity(model.encode(data), NUM_CODES)
    last_batch, _ = np_perplexity(model.encode(data[16:]), NUM_CODES)
    tolerance = float32_tolerance(perplexity, ops=16)
    assert abs(last_batch - perplexity) > 100 * tolerance  # the last batch alone would fail
    history = model.fit(data, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    logs = model.evaluate(data, batch_size=8, verbose=0, return_dict=True)
    for values in (logs, {k: v[0] for k, v in history.items()}):
        np.testing.assert_allclose(values["perplexity"], perplexity, rtol=0, atol=tolerance)
        assert values["codes_used"] == pytest.approx(codes_used, abs=1e-7)


# --------------------------------------------------------------------------- the prior
def test_pixelcnn_prior_is_causal():
    """The logits at (i, j) depend on no code at or after (i, j) in raster order (zero
    gradient w.r.t. the one-hot input there) and do depend on the codes to the left, above
    and above-right (no blind spot), on a 4×5 grid, 3 layers, 3×3 kernels."""
    height, width, num_codes = 4, 5, 3
    keras.utils.set_random_seed(1)
    prior = tfvae.PixelCNNPrior((height, width), num_codes, num_layers=3, filters=8, kernel_size=3)
    codes = np.random.RandomState(4).randint(0, num_codes, (1, height, width))
    one_hot = tf.constant(np.eye(num_codes, dtype="float32")[codes])
    np.testing.assert_array_equal(prior(one_hot), prior(codes))  # the two input paths agree
    with tf.GradientTape() as tape:
        tape.watch(one_hot)
        logits = prior(one_hot)
    jacobian = np.asarray(tape.jacobian(logits, one_hot))  # [1, h, w, K, 1, h, w, K]
    dependence = np.abs(jacobian).sum(axis=(0, 3, 4, 7)).reshape(height * width, height * width)
    for p in range(height * width):
        i, j = divmod(p, width)
        assert np.all(dependence[p, p:] == 0), f"position {(i, j)} sees the present or future"
        for di, dj in ((0, -1), (-1, 0), (-1, 1), (-1, -1)):
            if 0 <= i + di < height and 0 <= j + dj < width:
                assert dependence[p, (i + di) * width + j + dj] > 0, f"{(i, j)} misses {(i + di, j + dj)}"


def test_pixelcnn_prior_log_prob_and_samples():
    """log_prob = Σ over the grid of log softmax(logits) at the codes (numpy); `sample` is
    int32 in [0, K), reproducible for a seed and different for another."""
    keras.utils.set_random_seed(2)
    prior = tiny_prior((3, 4), 5)
    codes = np.random.RandomState(5).randint(0, 5, (6, 3, 4)).astype("int32")
    logits = np.asarray(prior(codes), np.float64)
    log_softmax = logits - np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1,
                                         keepdims=True)) - logits.max(-1, keepdims=True)
    expected = np.take_along_axis(log_softmax, codes[..., None], -1)[..., 0].sum(axis=(1, 2))
    np.testing.assert_allclose(prior.log_prob(codes), expected, rtol=0,
                               atol=float32_tolerance(np.abs(log_softmax).sum(axis=(1, 2, 3)), ops=8))
    samples = np.asarray(prior.sample(7, seed=3))
    assert samples.dtype == np.int32 and samples.shape == (7, 3, 4)
    assert samples.min() >= 0 and samples.max() < 5
    np.testing.assert_array_equal(prior.sample(7, seed=3), samples)
    assert not np.array_equal(prior.sample(7, seed=4), samples)


def test_pixelcnn_prior_learns_a_single_grid():
    """Trained on copies of one grid (48 Adam steps), the prior puts most of its mass there:
    its samples reproduce the grid (≥ 90% of positions) and its loss falls far below log K."""
    keras.utils.set_random_seed(3)
    grid = np.random.RandomState(6).randint(0, 4, (1, 3, 4)).astype("int32")
    prior = tiny_prior((3, 4), 4, filters=16)
    prior.compile(optimizer=keras.optimizers.Adam(2e-2))
    history = prior.fit(np.repeat(grid, 1024, axis=0), batch_size=64, epochs=3, verbose=0)
    assert history.history["loss"][-1] < 0.1 * math.log(4)
    samples = np.asarray(prior.sample(20, seed=0))
    assert np.mean(samples == grid) >= 0.9
    assert float(np.mean(prior.log_prob(grid))) > math.log(0.5)


# --------------------------------------------------------------------------- errors
def test_decode_refuses_bad_codes():
    """Out-of-range, float and wrongly shaped codes: an error naming dtype, shape and range."""
    model = tiny()
    expected = r"expected codes as integer code indices of shape \(batch, 7, 7\) with values in \[0, 8\)"
    with pytest.raises(ValueError, match=expected + r"; got values in \[0, 8\]"):
        model.decode(8 * np.eye(7, dtype="int32")[None])
    with pytest.raises(ValueError, match=expected + r"; got values in \[-1, 0\]"):
        model.decode(-np.eye(7, dtype="int64")[None])
    with pytest.raises(TypeError, match=expected + "; got dtype float32"):
        model.decode(np.zeros((2, 7, 7), "float32"))
    with pytest.raises(ValueError, match=expected + r"; got shape \(2, 6, 7\)"):
        model.decode(np.zeros((2, 6, 7), "int32"))
    with pytest.raises(ValueError, match=expected + r"; got shape \(7, 7\)"):
        model.decode(np.zeros((7, 7), "int32"))
    assert model.decode(np.full((1, 7, 7), 7, "int32")).shape == (1,) + SHAPE  # the edge is fine


def test_networks_of_the_wrong_shape_are_refused():
    """Checked at construction, naming the shapes expected and given."""
    encoder = keras.layers.Conv2D(3, 4, strides=4)  # a 7×7 grid of 3 channels, not code_dim=4
    with pytest.raises(ValueError, match=r"VQVAE: the encoder must map images \(28, 28, 1\) to a grid "
                       r"\(batch, height, width, code_dim=4\); it gives \(1, 7, 7, 3\)"):
        tfvae.VQVAE(SHAPE, num_codes=NUM_CODES, code_dim=CODE_DIM, encoder=encoder)
    decoder = keras.layers.Conv2DTranspose(1, 2, strides=2)  # 14×14×1, not 28×28×1
    with pytest.raises(ValueError, match=r"VQVAE: the decoder must map a code grid \(7, 7, 4\) to the "
                       r"Bernoulli likelihood's parameters \(28, 28, 1\); it gives \(14, 14, 1\)"):
        tfvae.VQVAE(SHAPE, num_codes=NUM_CODES, code_dim=CODE_DIM,
                    encoder=keras.layers.Conv2D(CODE_DIM, 4, strides=4), decoder=decoder)


def test_inputs_likelihood_and_prior_errors(x):
    """A wrong image shape gets the models' usual message; log_likelihood points to
    approximate_log_likelihood, which needs a prior; a prior of another grid or K is refused."""
    model = tiny()
    with pytest.raises(ValueError, match=r"^VQVAE: expected x of shape \(batch, 28, 28, 1\)"):
        model.encode(np.zeros((2, 28, 28), "float32"))
    with pytest.raises(NotImplementedError, match="approximate_log_likelihood"):
        model.log_likelihood(x[:2])
    with pytest.raises(ValueError, match="needs a prior over codes: train one with fit_prior"):
        model.approximate_log_likelihood(x[:2])
    for prior in (tiny_prior((6, 7)), tiny_prior(num_codes=NUM_CODES + 1)):
        with pytest.raises(ValueError, match=r"the code prior must model grids \(7, 7\) of 8 codes"):
            model.attach_prior(prior)
    assert model.code_prior is None
    with pytest.raises(ValueError, match="the code prior must model grids"):
        tiny(code_prior=tiny_prior((6, 7)))
    # with a prior: log p(x|z_q) + log p(z_q), the paper's estimate
    prior = model.attach_prior(tiny_prior())
    codes = model.encode(x[:3])
    np.testing.assert_array_equal(model.approximate_log_likelihood(x[:3]),
                                  model.decoder_log_prob(x[:3]) + prior.log_prob(codes))


# --------------------------------------------------------------------------- saving, export
@pytest.fixture(scope="module")
def trained(x):
    """A tiny EMA VQ-VAE after two steps (EMA state off zero) with a prior from `fit_prior`."""
    model = tiny(ema_decay=0.9)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x[:16], batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.fit_prior(x, epochs=1, prior=tiny_prior(), batch_size=16, verbose=0)
    return model


def quantizer_state(model):
    q = model.quantizer
    return [np.asarray(v) for v in (q.codebook, q.cluster_size, q.cluster_sum, q.steps_unused)]


@pytest.mark.parametrize("how", ["attach_prior", "fit_prior"])
def test_keras_file_keeps_the_codebook_and_the_prior(trained, x, tmp_path, how):
    """A `.keras` round trip keeps the codebook, the EMA state and the prior: the same codes
    and the same seeded samples."""
    if how == "attach_prior":
        model = tiny(ema_decay=0.9)
        model.attach_prior(tiny_prior())
    else:
        model = trained
    assert np.sum(quantizer_state(model)[1]) > 0 or how == "attach_prior"
    path = tmp_path / "vqvae.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded.code_prior, tfvae.PixelCNNPrior)
    for a, b in zip(quantizer_state(loaded), quantizer_state(model)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(loaded.code_prior.get_weights(), model.code_prior.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.encode(x[:4]), model.encode(x[:4]))
    np.testing.assert_array_equal(loaded.sample(3, seed=5), model.sample(3, seed=5))


def test_saved_model_endpoints_with_a_prior(trained, x, tmp_path):
    """The SavedModel's `encode` gives the int32 codes of `model.encode`, `decode` and `sample`
    (codes drawn from the prior with the seed) what the model gives."""
    signatures = tf.saved_model.load(str(trained.export(tmp_path / "saved"))).signatures
    batch = tf.constant(x[:4])
    code = signatures["encode"](x=batch)["code"]
    assert code.dtype == tf.int32
    np.testing.assert_array_equal(code, trained.encode(batch))
    decoded = trained.decode(code)
    # the same graph ops on the same inputs: rounding only where the runtime fuses differently
    np.testing.assert_allclose(signatures["decode"](z=code)["x_mean"], decoded, rtol=0,
                               atol=float32_tolerance(1.0, ops=64))
    samples = signatures["sample"](num_samples=tf.constant(3), seed=tf.constant([1, 2]))["samples"]
    np.testing.assert_allclose(samples, trained.sample(3, seed=(1, 2)), rtol=0,
                               atol=float32_tolerance(1.0, ops=64))


def test_fit_prior_takes_arrays_and_datasets(x):
    """`fit_prior` trains on an array, a Dataset of x batches and one of (x, y) batches alike:
    `encode_data` gives the same codes for each, those of `encode`."""
    model = tiny()
    images = x[:24]
    expected = np.asarray(model.encode(images))
    forms = {"array": images,
             "x batches": tf.data.Dataset.from_tensor_slices(images).batch(10),
             "(x, y) batches": tf.data.Dataset.from_tensor_slices((images, np.arange(24))).batch(10)}
    prior = tiny_prior()  # compiled by the first fit_prior, then trained on by each
    losses = []
    for name, data in forms.items():
        codes = model.encode_data(data)
        assert codes.dtype == np.int32, name
        np.testing.assert_array_equal(codes, expected, err_msg=name)
        history = model.fit_prior(data, epochs=1, prior=prior, batch_size=8, verbose=0)
        assert model.code_prior is prior and len(history.history["loss"]) == 1, name
        losses.append(history.history["loss"][0])
    assert int(prior.optimizer.iterations.numpy()) == 3 * 3  # 24 grids in batches of 8, thrice
    assert np.all(np.isfinite(losses))


# --------------------------------------------------------------------------- two replicas
def scenario(results, name):
    result = results[name]
    assert "error" not in result, f"scenario {name} failed in the subprocess:\n{result['error']}"
    return result


@pytest.fixture(scope="module", autouse=True)
def replica_process(request, tmp_path_factory):
    """scripts/vqvae_replicas.py (two logical CPUs need a fresh process), started with the
    module's first test when a selected test needs it, so that it runs beside the others (its
    tests come last); killed at the module's end if still running."""
    needed = any("replica_results" in getattr(item, "fixturenames", ())
                 for item in request.session.items if item.module is request.module)
    if not needed:
        yield None
        return
    tmp = tmp_path_factory.mktemp("vqvae_replicas")
    out, log = tmp / "result.json", tmp / "log.txt"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with open(log, "w") as log_file:
        proc = subprocess.Popen([sys.executable, str(SCRIPTS / "vqvae_replicas.py"), "--out", str(out)],
                                cwd=tmp, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        yield proc, out, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def replica_results(replica_process):
    """The scenarios' results, once the script has finished."""
    proc, out, log = replica_process
    try:
        returncode = proc.wait(timeout=REPLICA_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"vqvae_replicas.py ran over {REPLICA_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
    assert returncode == 0, f"vqvae_replicas.py exited with {returncode}:\n{log.read_text()[-4000:]}"
    results = json.loads(out.read_text())
    assert results["logical_devices"] == ["/device:CPU:0", "/device:CPU:1"]
    return results


def test_dead_code_restart_on_two_replicas(replica_results):
    """A restart under MirroredStrategy puts the same vector, one of the global batch's, in
    every replica's copy (plain and EMA codebooks)."""
    result = scenario(replica_results, "restart")
    batch = np.asarray(result["batch"]).reshape(-1, 3)
    initial = np.asarray(result["initial_codebook"])
    for key in ("plain", "ema"):
        state = result[key]
        assert state["replica_copies_equal"], key
        codebook = np.asarray(state["state"]["codebook"])
        assert np.any(np.all(batch == codebook[-1], axis=-1)), key
        assert state["state"]["steps_unused"][-1] == 0.0, key
        if key == "plain":  # no EMA: the used codes are untouched
            used = np.unique(np_nearest(batch, initial)[0])
            np.testing.assert_array_equal(codebook[used], initial[used])


def test_ema_on_two_replicas_equals_one_device(replica_results):
    """Under MirroredStrategy (2 logical CPUs) the assignment counts and sums are all-reduced:
    two EMA steps on a global batch split over two replicas give the statistics and codes of
    the same steps on one device with the whole batch, while replica 0's half alone would not;
    one `fit` step of a tiny EMA VQ-VAE moves the EMA state (and, with SGD, the weights) as on
    one device; every mirrored copy is identical."""
    result = scenario(replica_results, "update")
    assert result["num_replicas"] == 2 and result["replica_copies_equal"]
    decay, epsilon = 0.9, 1e-3
    initial = np.asarray(result["initial_codebook"], np.float64)
    size, total, expected = np.zeros(len(initial)), np.zeros(initial.shape), initial
    for z in result["batches"]:  # the numpy reference, whole batches
        size, total, expected, _, margin = np_ema_step(size, total, expected, np.asarray(z), decay, epsilon)
        assert margin > 1e-3
    tolerance = float32_tolerance(total, expected, size, ops=16)
    for name, reference in (("cluster_size", size), ("cluster_sum", total), ("codebook", expected)):
        single, mirrored = (np.asarray(result[key][name]) for key in ("single", "mirrored"))
        np.testing.assert_allclose(single, reference, rtol=0, atol=tolerance, err_msg=name)
        np.testing.assert_allclose(mirrored, single, rtol=0, atol=tolerance, err_msg=name)
    np.testing.assert_array_equal(result["mirrored"]["steps_unused"], result["single"]["steps_unused"])
    # sharpness: one replica's half batch moves the statistics far from the global batch's
    half = np.asarray(result["half_batch_first_step"]["cluster_size"])
    first = np_ema_step(np.zeros(len(initial)), np.zeros(initial.shape), initial,
                        np.asarray(result["batches"][0]), decay, epsilon)[0]
    assert np.max(np.abs(half - first)) > 1e3 * tolerance

    fit = scenario(replica_results, "fit")
    assert fit["num_replicas"] == 2 and fit["replica_copies_equal"]
    single, mirrored = fit["single"], fit["mirrored"]
    assert np.sum(single["cluster_size"]) > 0  # the step updated the EMA state
    for name in ("cluster_size", "cluster_sum", "codebook"):
        a, b = np.asarray(single[name]), np.asarray(mirrored[name])
        # the encoder outputs of half batches against the whole batch: conv rounding
        np.testing.assert_allclose(b, a, rtol=0, atol=float32_tolerance(a, ops=64), err_msg=name)
    np.testing.assert_array_equal(mirrored["steps_unused"], single["steps_unused"])
    assert fit["max_trainable_difference"] <= float32_tolerance(fit["max_trainable_weight"], ops=64)
