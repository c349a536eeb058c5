"""The objectives against independent numpy computations and the papers' claims."""
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tolerances import float32_tolerance, float64_tolerance
from tfvae import distributions, likelihoods, objectives

tfd = tfp.distributions


def np_log_normal(x, loc, scale):
    return -0.5 * np.log(2 * np.pi * scale**2) - (x - loc) ** 2 / (2 * scale**2)


def test_log_mean_exp_matches_numpy_and_is_stable():
    values = np.random.RandomState(0).randn(7, 5) * 3
    expected = np.log(np.mean(np.exp(values), axis=0))
    # float64 inputs stay float64 in TF: rounding at the size of the values
    np.testing.assert_allclose(objectives.log_mean_exp(values, axis=0), expected, rtol=0,
                               atol=float64_tolerance(values))
    big = np.array([[1000.0, -1000.0], [1000.0, -1002.0]])
    # log mean(e^1000, e^1000) = 1000; log mean(e^-1000, e^-1002) = -1000 + log((1 + e^-2) / 2)
    np.testing.assert_allclose(objectives.log_mean_exp(big, axis=0),
                               [1000.0, -1000.0 + math.log((1 + math.exp(-2)) / 2)], rtol=0,
                               atol=float64_tolerance(big))


def test_gaussian_kl_matches_closed_form_and_tfp():
    rng = np.random.RandomState(1)
    mq, sq = rng.randn(4, 3), rng.rand(4, 3) + 0.2
    mp, sp = rng.randn(4, 3), rng.rand(4, 3) + 0.5
    # KL(N(mq, sq²) || N(mp, sp²)) written out independently, summed over units
    expected = np.sum(np.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5, axis=-1)
    # the summed |terms| bound every partial sum of either formula: rounding scales with them
    terms = np.sum(np.abs(np.log(sp)) + np.abs(np.log(sq)) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2)
                   + 0.5, axis=-1)
    np.testing.assert_allclose(objectives.gaussian_kl(mq, sq, mp, sp), expected, rtol=0,
                               atol=float64_tolerance(terms))  # float64 inputs: float64 throughout
    q = tfd.Independent(tfd.Normal(mq.astype("float32"), sq.astype("float32")), 1)
    p = tfd.Independent(tfd.Normal(mp.astype("float32"), sp.astype("float32")), 1)
    np.testing.assert_allclose(objectives.kl_divergence(q, p), expected, rtol=0,
                               atol=float32_tolerance(terms))  # TFP in float32
    # standard-normal prior: Kingma & Welling App. B, -1/2 Σ (1 + log σ² - μ² - σ²)
    np.testing.assert_allclose(objectives.gaussian_kl(mq, sq),
                               -0.5 * np.sum(1 + np.log(sq**2) - mq**2 - sq**2, axis=-1), rtol=0,
                               atol=float64_tolerance(np.sum(1 + np.abs(np.log(sq**2)) + mq**2 + sq**2, -1)))


def test_kl_falls_back_to_monte_carlo_for_a_mixture_prior():
    q = distributions.diagonal_gaussian(tf.zeros([3, 4]))
    prior = distributions.MixtureOfGaussians(latent_dim=2, num_components=4).distribution()
    q2 = distributions.diagonal_gaussian(tf.zeros([3, 4]))
    z = q2.sample(5, seed=(1, 2))
    kl = objectives.kl_divergence(q2, prior, z)
    assert kl.shape == (5, 3)
    log_q, log_p = q2.log_prob(z), prior.log_prob(z)
    # a difference of log-densities: rounding at their size, not at the (smaller) difference's
    np.testing.assert_allclose(kl, log_q - log_p, rtol=0, atol=float32_tolerance(log_q, log_p))
    with pytest.raises(NotImplementedError):
        objectives.kl_divergence(q, prior)  # no samples: nothing to fall back on


def test_elbo_and_iwae_bound_match_numpy():
    rng = np.random.RandomState(2)
    log_px, log_pz, log_qz = rng.randn(6, 4) - 5, rng.randn(6, 4), rng.randn(6, 4)
    kl_mc = log_qz - log_pz
    # float64 throughout (numpy inputs): rounding at the size of the log-densities
    tolerance = float64_tolerance(log_px, log_pz, log_qz, kl_mc)
    np.testing.assert_allclose(objectives.elbo(log_px, kl_mc), np.mean(log_px - kl_mc, 0), rtol=0,
                               atol=tolerance)
    np.testing.assert_allclose(objectives.elbo(log_px, kl_mc, 0.5), np.mean(log_px - 0.5 * kl_mc, 0),
                               rtol=0, atol=tolerance)
    log_w = objectives.log_importance_weights(log_px, log_pz, log_qz)
    np.testing.assert_allclose(log_w, log_px + log_pz - log_qz, rtol=0, atol=tolerance)
    np.testing.assert_allclose(objectives.iwae_bound(log_w),
                               np.log(np.mean(np.exp(log_px + log_pz - log_qz), 0)), rtol=0,
                               atol=tolerance)
    # k = 1: the IWAE bound is the Monte-Carlo ELBO (equal in exact arithmetic; two code paths)
    np.testing.assert_allclose(objectives.iwae_bound(log_w[:1]), objectives.elbo(log_px[:1], kl_mc[:1]),
                               rtol=0, atol=tolerance)


def _conjugate_model(k, x, seed):
    """p(z) = N(0,1), p(x|z) = N(z,1), q(z|x) = N(x/4, 0.5²): log p(x) = log N(x; 0, 2) exactly.

    q is deliberately off the true posterior N(x/2, 1/2), so the bounds are visibly apart.
    """
    rng = np.random.RandomState(seed)
    z = x / 4 + 0.5 * rng.randn(k, len(x))
    log_px = np_log_normal(x, z, 1.0)
    log_pz = np_log_normal(z, 0.0, 1.0)
    log_qz = np_log_normal(z, x / 4, 0.5)
    return log_px, log_pz, log_qz


def test_iwae_bound_is_above_elbo_grows_with_k_and_approaches_log_px():
    """Burda et al. Theorem 1: log p(x) >= L_{k+1} >= L_k >= L_1 = ELBO (in expectation)."""
    x = np.linspace(-2, 2, 5)
    exact = np_log_normal(x, 0.0, math.sqrt(2.0))
    means = {}
    for k in (1, 5, 50, 500):
        bounds = [objectives.iwae_bound(objectives.log_importance_weights(*_conjugate_model(k, x, s)))
                  for s in range(400)]
        means[k] = np.mean(bounds, axis=0)
    elbo = np.mean([objectives.elbo(lpx, lqz - lpz)
                    for lpx, lpz, lqz in (_conjugate_model(1, x, s) for s in range(400))], axis=0)
    # float64 averages of 400 values of two code paths: ~√400 roundings at the log-densities' size
    magnitude = max(np.max(np.abs(_conjugate_model(1, x, s))) for s in range(400))
    np.testing.assert_allclose(means[1], elbo, rtol=0, atol=float64_tolerance(magnitude, ops=32))
    assert np.all(means[5] > means[1]) and np.all(means[50] > means[5]) and np.all(means[500] > means[50])
    assert np.all(means[500] <= exact + 1e-3)
    np.testing.assert_allclose(means[500], exact, atol=0.05)


def test_bernoulli_log_prob_is_binary_cross_entropy():
    logits = np.random.RandomState(3).randn(2, 5).astype("float32")
    x = np.array([[0, 1, 1, 0, 1], [1, 1, 0, 0, 0]], "float32")
    p = 1 / (1 + np.exp(-logits.astype("float64")))  # float64: only the float32 path under test rounds
    expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)
    dist = likelihoods.Bernoulli().distribution(logits, event_ndims=1)

    def terms(lg):  # the float32 paths add x·l and softplus(l) per pixel: Σ |l| + softplus(l) bounds them
        return np.sum(np.abs(lg) + np.logaddexp(0.0, lg.astype("float64")), axis=-1)

    np.testing.assert_allclose(dist.log_prob(x), expected, rtol=0, atol=float32_tolerance(terms(logits)))
    # sigmoid: probabilities in [0, 1], rounded at their size
    np.testing.assert_allclose(likelihoods.Bernoulli().mean(logits), p, rtol=0, atol=float32_tolerance(p))
    # the fused formula the models train with agrees with TFP, also for grey levels and broadcasting
    grey = np.random.RandomState(6).rand(2, 5).astype("float32")
    many = np.random.RandomState(7).randn(3, 2, 5).astype("float32") * 4
    for obs, lg in ((x, logits), (grey, logits), (grey, many)):
        np.testing.assert_allclose(likelihoods.Bernoulli().log_prob(lg, obs, 1),
                                   likelihoods.Bernoulli().distribution(lg, 1).log_prob(obs), rtol=0,
                                   atol=float32_tolerance(terms(lg)))


@pytest.mark.parametrize("fused", [True, False])
def test_bernoulli_log_prob_gradients_match_numpy(fused):
    """Both Bernoulli paths (the XLA-fused kernel and plain TF ops) against numpy: values for
    extreme logits, d/dl = x - sigmoid(l) summed over a broadcast, d/dx = l, images as events."""
    rng = np.random.RandomState(11)
    logits = (rng.randn(3, 2, 4, 4, 1) * 30).astype("float32")  # |l| up to ~100: no overflow
    x = rng.rand(2, 4, 4, 1).astype("float32")
    weights = np.arange(1.0, 7.0, dtype="float32").reshape(3, 2)
    lg, obs = tf.constant(logits), tf.constant(x)
    with likelihoods.fused_kernels(fused), tf.GradientTape(persistent=True) as tape:
        tape.watch([lg, obs])
        value = likelihoods.Bernoulli().log_prob(lg, obs, event_ndims=3)
        total = tf.reduce_sum(value * weights)
    softplus = np.logaddexp(0.0, logits.astype("float64"))
    # float32 against float64 numpy: rounding at the size of the summed terms |x·l|, softplus(l)
    np.testing.assert_allclose(value, np.sum(x * logits - softplus, axis=(-3, -2, -1)), rtol=0,
                               atol=float32_tolerance(np.sum(np.abs(logits) + softplus, axis=(-3, -2, -1))))
    sigmoid = 1 / (1 + np.exp(-logits.astype("float64")))
    w = weights[:, :, None, None, None]
    # w·(x - sigmoid(l)): x and sigmoid are at most 1, so eps·w
    np.testing.assert_allclose(tape.gradient(total, lg), w * (x - sigmoid), rtol=0,
                               atol=float32_tolerance(w))
    # Σ_k w_k·l_k over the broadcast: rounding at the size of Σ |w_k·l_k|
    np.testing.assert_allclose(tape.gradient(total, obs), np.sum(w * logits, axis=0), rtol=0,
                               atol=float32_tolerance(np.sum(np.abs(w * logits), axis=0)))
    # mixed precision: bfloat16 logits give a float32 log-likelihood and a bfloat16 gradient
    with likelihoods.fused_kernels(fused), tf.GradientTape() as tape:
        low = tf.cast(lg, tf.bfloat16)
        tape.watch(low)
        value = likelihoods.Bernoulli().log_prob(low, obs, event_ndims=3)
    assert value.dtype == tf.float32 and tape.gradient(value, low).dtype == tf.bfloat16


def test_fused_kernels_switch(monkeypatch):
    assert likelihoods.fused_kernels_enabled()
    with likelihoods.fused_kernels(False):
        assert not likelihoods.fused_kernels_enabled()
        with likelihoods.fused_kernels(True):
            assert likelihoods.fused_kernels_enabled()
        assert not likelihoods.fused_kernels_enabled()
    monkeypatch.setenv("TFVAE_FUSED_KERNELS", "0")
    assert not likelihoods.fused_kernels_enabled()
    with likelihoods.fused_kernels(True):
        assert likelihoods.fused_kernels_enabled()


def test_sample_and_log_prob_matches_log_prob_in_value_and_gradient():
    """The ε shortcut for diagonal Gaussians gives log q(z) and d/dφ log q(z(φ); φ) exactly as TFP's
    log_prob of the same draws; other distributions go through TFP."""
    params = tf.Variable(np.random.RandomState(4).randn(3, 8).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        q = distributions.diagonal_gaussian(params)
        z, log_q = distributions.sample_and_log_prob(q, 5, seed=7)
        reference = q.log_prob(z)  # z carries the path through μ and σ as well
        fast, slow = tf.reduce_sum(log_q * tf.range(1.0, 16.0)[:, None][:5]), tf.reduce_sum(
            reference * tf.range(1.0, 16.0)[:, None][:5])
    assert z.shape == (5, 3, 4) and log_q.shape == (5, 3)
    loc, scale = (t.numpy().astype("float64") for t in (q.distribution.loc, q.distribution.scale))
    eps = (z.numpy() - loc) / scale
    # Both add 0.5·ε², log √(2π) and log σ per unit; TFP recomputes ε = (z - μ)/σ from the rounded
    # z, an error of eps·(|z| + |μ|)/σ in ε, so of eps·|ε|·(|z| + |μ|)/σ in 0.5·ε²
    value_terms = np.sum(0.5 * eps**2 + 0.5 * np.log(2 * np.pi) + np.abs(np.log(scale))
                         + np.abs(eps) * (np.abs(z.numpy()) + np.abs(loc)) / scale, axis=-1)
    np.testing.assert_allclose(log_q, reference, rtol=0, atol=float32_tolerance(value_terms))
    # The gradients' terms, Σ_k w_k·(...) over the 5 draws (w_k = 1..5): for μ, |ε|/σ through z and
    # directly (they cancel); for ρ (σ = softplus(ρ) + floor), (ε² + 1)/σ·sigmoid(ρ)
    w = np.arange(1.0, 6.0)[:, None, None]
    rho = np.split(params.numpy().astype("float64"), 2, axis=-1)[1]
    grad_terms = np.concatenate([np.sum(w * np.abs(eps) / scale, 0),
                                 np.sum(w * (eps**2 + 1) / scale, 0) / (1 + np.exp(-rho))], axis=-1)
    np.testing.assert_allclose(tape.gradient(fast, params), tape.gradient(slow, params), rtol=0,
                               atol=float32_tolerance(grad_terms))
    again, _ = distributions.sample_and_log_prob(q, 5, seed=7)
    np.testing.assert_array_equal(z, again)  # stateless: the seed fixes the draws
    mixture = distributions.MixtureOfGaussians(latent_dim=2, num_components=3).distribution()
    z, log_q = distributions.sample_and_log_prob(mixture, 4, seed=(1, 2))
    # log-sum-exp over components: rounding at the size of the dominant component's log-density
    dominant = np.max(mixture.components_distribution.log_prob(z[:, None, :]), axis=-1)
    np.testing.assert_allclose(log_q, mixture.log_prob(z), rtol=0, atol=float32_tolerance(log_q, dominant))


def test_fixed_gaussian_is_a_scaled_squared_error():
    model = likelihoods.FixedGaussian(scale=0.5)
    mu = np.random.RandomState(4).rand(3, 8).astype("float32")
    x = np.random.RandomState(5).rand(3, 8).astype("float32")
    neg_log_p = -model.distribution(mu, event_ndims=1).log_prob(x)
    expected = np.sum((x - mu) ** 2, -1) / (2 * 0.25) + model.squared_error_constant(8)
    # both sum (x-μ)²/2σ², log σ and log √(2π) over 8 units: rounding at the size of those sums
    terms = np.sum((x - mu) ** 2 / (2 * 0.25) + abs(np.log(0.5)) + 0.5 * np.log(2 * np.pi), -1)
    np.testing.assert_allclose(neg_log_p, expected, rtol=0, atol=float32_tolerance(terms))


def test_learned_variance_gaussian_has_a_floor():
    model = likelihoods.Gaussian(min_scale=0.05)
    params = np.concatenate([np.zeros((1, 4, 1)), np.full((1, 4, 1), -1e4)], -1).astype("float32")
    dist = model.distribution(params, event_ndims=2)
    # σ = 0.05 + softplus(-1e4) = 0.05 + 0 in float32
    np.testing.assert_allclose(dist.stddev(), np.full((1, 4, 1), 0.05), rtol=0, atol=float32_tolerance(0.05))
    # the log-density of a perfect fit stays bounded by the floor (it equals the bound up to the
    # rounding of its 4 x (log σ, log √(2π)) terms)
    bound = 4 * -np_log_normal(0.0, 0.0, 0.05) * -1
    slack = float32_tolerance(4 * (abs(np.log(0.05)) + 0.5 * np.log(2 * np.pi)))
    assert float(dist.log_prob(np.zeros((1, 4, 1), "float32"))[0]) <= bound + slack
    assert model.param_shape((28, 28, 1)) == (28, 28, 2)
    with pytest.raises(ValueError, match="min_scale"):
        likelihoods.Gaussian(min_scale=0.0)


def test_priors_sample_and_score():
    for prior in (distributions.StandardNormal(3), distributions.LearnableGaussian(3),
                  distributions.MixtureOfGaussians(3, num_components=5),
                  distributions.LearnableMixture(3, num_components=4)):
        z = prior.sample(7, seed=(0, 1))
        assert z.shape == (7, 3)
        assert np.all(np.isfinite(prior.log_prob(z)))
        np.testing.assert_array_equal(z, prior.sample(7, seed=(0, 1)))
    roll = distributions.SwissRoll()
    points, labels = roll.sample_with_labels(500, seed=(2, 3))
    radius = np.linalg.norm(points, axis=-1)
    assert points.shape == (500, 2) and radius.max() <= 4.0 + 0.5
    assert set(np.unique(labels)) == set(range(10))
    # the arc index grows with the radius along the roll
    assert np.corrcoef(radius, labels)[0, 1] > 0.9
    assert not roll.has_density
    with pytest.raises(NotImplementedError):
        roll.distribution()
    with pytest.raises(ValueError, match="unknown prior"):
        distributions.get("banana", 2)


# ------------------------------------------------------------------ adversarial objectives
def np_softplus(x):
    return np.logaddexp(0.0, np.asarray(x, np.float64))


def test_discriminator_loss_is_the_binary_cross_entropy_of_real_1_and_fake_0():
    # hand-computed: real logit 2, fake logit -1: log(1 + e^-2) + log(1 + e^-1)
    value = objectives.discriminator_loss(tf.constant([2.0]), tf.constant([-1.0]))
    expected = math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))       # 0.44019...
    np.testing.assert_allclose(value, [expected], rtol=0, atol=float32_tolerance(expected))
    # the equilibrium D = 1/2 on both: 2 ln 2
    np.testing.assert_allclose(objectives.discriminator_loss([0.0], [0.0]), [2 * math.log(2.0)],
                               rtol=0, atol=float32_tolerance(2 * math.log(2.0)))
    # against -[log σ(r) + log(1 - σ(f))] in float64, logits up to ±1e4 (no overflow, no log 0)
    rng = np.random.RandomState(0)
    real = np.concatenate([rng.randn(6) * 5, [1e4, -1e4, 80.0]]).astype("float32")
    fake = np.concatenate([rng.randn(6) * 5, [-1e4, 1e4, -80.0]]).astype("float32")
    r, f = tf.constant(real), tf.constant(fake)
    with tf.GradientTape() as tape:
        tape.watch([r, f])
        loss = objectives.discriminator_loss(r, f)
    expected = np_softplus(-real) + np_softplus(fake)
    assert loss.shape == (9,)
    np.testing.assert_allclose(loss, expected, rtol=0, atol=float32_tolerance(expected))
    assert float(loss[7]) == pytest.approx(2e4, rel=1e-6) and 0.0 <= float(loss[6]) < 1e-30
    grad_r, grad_f = tape.gradient(loss, [r, f])
    # d/dr softplus(-r) = -σ(-r), d/df softplus(f) = σ(f), with σ(-x) = exp(-softplus(x))
    np.testing.assert_allclose(grad_r, -np.exp(-np_softplus(real)), rtol=0, atol=float32_tolerance(1.0))
    np.testing.assert_allclose(grad_f, np.exp(-np_softplus(-fake)), rtol=0, atol=float32_tolerance(1.0))


def test_generator_loss_is_non_saturating():
    fake = np.array([-10.0, -1.0, 0.0, 3.0, 1e4, -1e4], "float32")
    f = tf.constant(fake)
    with tf.GradientTape() as tape:
        tape.watch(f)
        loss = objectives.generator_loss(f)
    expected = np_softplus(-fake)                                              # -log σ(f)
    np.testing.assert_allclose(loss, expected, rtol=0, atol=float32_tolerance(expected))
    np.testing.assert_allclose(loss[2], math.log(2.0), rtol=0, atol=float32_tolerance(1.0))
    grad = np.asarray(tape.gradient(loss, f), np.float64)
    np.testing.assert_allclose(grad, -np.exp(-np_softplus(fake)), rtol=0, atol=float32_tolerance(1.0))
    # where D rejects the fake (f = -10) the gradient is -σ(10) ≈ -1; the saturating loss
    # log(1 - σ(f)) would give -σ(f) = -σ(-10) ≈ -4.5e-5 there
    assert grad[0] < -0.9999


def test_categorical_cross_entropy_with_a_mask():
    rng = np.random.RandomState(1)
    logits = (rng.randn(5, 4) * 3).astype("float32")
    labels = np.array([2, -1, 0, 3, -1])
    mask = labels >= 0
    lg = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(lg)
        value = objectives.categorical_cross_entropy(labels, lg, mask)
    lse = np.log(np.sum(np.exp(logits.astype(np.float64)), axis=1))
    expected = np.where(mask, lse - logits[np.arange(5), np.maximum(labels, 0)], 0.0)
    np.testing.assert_allclose(value, expected, rtol=0, atol=float32_tolerance(lse, logits))
    grad = np.asarray(tape.gradient(value, lg))
    assert np.all(grad[~mask] == 0)  # unlabelled rows contribute nothing
    softmax = np.exp(logits - lse[:, None])
    np.testing.assert_allclose(grad[mask], softmax[mask] - np.eye(4)[labels[mask]], rtol=0,
                               atol=float32_tolerance(1.0))
    # no mask: every example counts
    everyone = objectives.categorical_cross_entropy(np.array([1, 1]), lg[:2])
    np.testing.assert_allclose(everyone, lse[:2] - logits[:2, 1], rtol=0,
                               atol=float32_tolerance(lse[:2], logits[:2]))


def test_cluster_head_distance_penalty():
    # by hand: distances 3, 4, 5 below η = 4.5 → (4.5 - 3) + (4.5 - 4) + 0 = 2.0
    heads = tf.constant([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    np.testing.assert_allclose(objectives.cluster_head_distance_penalty(heads, 4.5), 2.0, rtol=0,
                               atol=float32_tolerance(5.0))
    # brute force over pairs i < j, in float64
    rng = np.random.RandomState(2)
    w = rng.randn(7, 3).astype("float32")
    expected = sum(max(0.0, 2.0 - np.linalg.norm(w[i].astype(np.float64) - w[j]))
                   for i in range(7) for j in range(i + 1, 7))
    assert expected > 0.5  # some pairs are inside η, so the check is not vacuous
    np.testing.assert_allclose(objectives.cluster_head_distance_penalty(w, 2.0), expected, rtol=0,
                               atol=float32_tolerance(21 * 2.0))
    # coinciding heads: the pair costs η, and the gradient stays finite (no 0/0 in the norm)
    same = tf.Variable([[1.0, 1.0], [1.0, 1.0], [5.0, 1.0]])
    with tf.GradientTape() as tape:
        penalty = objectives.cluster_head_distance_penalty(same, 1.0)
    assert float(penalty) == pytest.approx(1.0)
    assert np.all(np.isfinite(tape.gradient(penalty, same)))


# --------------------------------------------------------------------------- VQ-VAE
def test_squared_distances_match_numpy():
    """‖z_n − e_k‖² (van den Oord et al. 2017, Eq. 1's nearest-neighbour distance) against the
    direct difference in float64. The expansion ‖z‖² − 2z·e + ‖e‖² cancels terms of size
    ‖z‖² + ‖e‖²: its rounding scales with them, not with the (smaller) distances."""
    rng = np.random.RandomState(3)
    z, codebook = rng.randn(11, 4).astype("float32"), rng.randn(6, 4).astype("float32")
    z64, e64 = z.astype(np.float64), codebook.astype(np.float64)
    expected = np.sum((z64[:, None, :] - e64[None]) ** 2, axis=-1)
    terms = np.sum(z64**2, -1)[:, None] + np.sum(e64**2, -1)[None] + 2 * np.abs(z64) @ np.abs(e64).T
    distances = objectives.squared_distances(z, codebook)
    assert distances.shape == (11, 6)
    np.testing.assert_allclose(distances, expected, rtol=0, atol=float32_tolerance(terms, ops=16))


def test_vector_quantization_losses_values_and_gradients():
    """Eq. 3's code terms per example, summed over the grid: ‖sg[z_e] − z_q‖² moves only the
    codes (∂/∂z_q = 2(z_q − z_e), ∂/∂z_e = 0), ‖z_e − sg[z_q]‖² only the encoder output
    (∂/∂z_e = 2(z_e − z_q), ∂/∂z_q = 0); the two are equal in value."""
    rng = np.random.RandomState(4)
    z_e = tf.constant(rng.randn(3, 2, 5, 4).astype("float32"))
    z_q = tf.constant(rng.randn(3, 2, 5, 4).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([z_e, z_q])
        codebook, commitment = objectives.vector_quantization_losses(z_e, z_q)
    difference = z_e.numpy().astype(np.float64) - z_q.numpy()
    expected = np.sum(difference**2, axis=(1, 2, 3))
    assert codebook.shape == commitment.shape == (3,)
    tolerance = float32_tolerance(expected, ops=8)
    np.testing.assert_allclose(codebook, expected, rtol=0, atol=tolerance)
    np.testing.assert_allclose(commitment, expected, rtol=0, atol=tolerance)
    assert tape.gradient(codebook, z_e) is None and tape.gradient(commitment, z_q) is None
    grad_tolerance = float32_tolerance(2 * np.abs(difference), ops=2)
    np.testing.assert_allclose(tape.gradient(codebook, z_q), -2 * difference, rtol=0, atol=grad_tolerance)
    np.testing.assert_allclose(tape.gradient(commitment, z_e), 2 * difference, rtol=0, atol=grad_tolerance)


def test_ema_codebook_update_by_hand_and_against_numpy():
    """Appendix A.1: N ← γN + (1−γ)n, m ← γm + (1−γ)Σz, e = m / Ñ with Ñ = (N + ε)/(n + Kε)·n.
    By hand (γ = 1/2, ε = 1/4): N = [2, 0, 1/2], m = [[3, 4], 0, [1/2, 1/2]], n = 5/2,
    Ñ = (N + 1/4)·(10/13) → e_0 = [26/15, 104/45], e_2 = [13/15, 13/15]; code 1, never
    assigned, is not `seen`."""
    size, total, codebook, seen = objectives.ema_codebook_update(
        np.array([2.0, 0.0, 1.0]), np.array([[4.0, 2.0], [0.0, 0.0], [1.0, 1.0]]),
        np.array([2.0, 0.0, 0.0]), np.array([[2.0, 6.0], [0.0, 0.0], [0.0, 0.0]]), 0.5, 0.25)
    exact = 1e-14  # float64 inputs stay float64: a few roundings of numbers below 3
    np.testing.assert_allclose(size, [2.0, 0.0, 0.5], rtol=0, atol=exact)
    np.testing.assert_allclose(total, [[3.0, 4.0], [0.0, 0.0], [0.5, 0.5]], rtol=0, atol=exact)
    np.testing.assert_array_equal(seen, [True, False, True])
    np.testing.assert_allclose(np.asarray(codebook)[[0, 2]], [[26 / 15, 104 / 45], [13 / 15, 13 / 15]],
                               rtol=0, atol=exact)
    # random state, against numpy; the smoothing visibly matters at this ε
    rng = np.random.RandomState(5)
    cluster_size = rng.rand(5) * 3 * (np.arange(5) != 4)  # code 4: never assigned
    cluster_sum = rng.randn(5, 3) * cluster_size[:, None]
    counts = rng.randint(0, 4, 5) * (np.arange(5) != 4)
    sums = rng.randn(5, 3) * counts[:, None]
    decay, epsilon = 0.9, 0.3
    n_new = decay * cluster_size + (1 - decay) * counts
    m_new = decay * cluster_sum + (1 - decay) * sums
    smoothed = (n_new + epsilon) / (n_new.sum() + 5 * epsilon) * n_new.sum()
    size, total, codebook, seen = objectives.ema_codebook_update(
        cluster_size, cluster_sum, counts.astype(np.float64), sums, decay, epsilon)
    tolerance = float64_tolerance(cluster_size, cluster_sum, counts, sums, m_new / smoothed[:, None])
    np.testing.assert_allclose(size, n_new, rtol=0, atol=tolerance)
    np.testing.assert_allclose(total, m_new, rtol=0, atol=tolerance)
    np.testing.assert_array_equal(seen, n_new > 0)
    np.testing.assert_allclose(np.asarray(codebook)[:4], (m_new / smoothed[:, None])[:4], rtol=0,
                               atol=tolerance)
    unsmoothed = m_new[:4] / n_new[:4, None]
    assert np.max(np.abs(unsmoothed - np.asarray(codebook)[:4])) > 1e6 * tolerance


def test_perplexity_matches_numpy():
    """exp(H) of counts / Σ counts: K for uniform use, 1 for a single code, 0 without counts."""
    assert float(objectives.perplexity(np.full(8, 5.0))) == pytest.approx(8.0, rel=1e-6)
    assert float(objectives.perplexity(np.eye(8)[3] * 7)) == pytest.approx(1.0, rel=1e-6)
    assert float(objectives.perplexity(np.zeros(8))) == 0.0
    counts = np.array([10.0, 0.0, 3.0, 1.0, 0.0, 25.0])
    p = counts[counts > 0] / counts.sum()
    expected = math.exp(-np.sum(p * np.log(p)))
    # float32: the entropy's terms are below 1 nat each; exp scales their rounding by its value
    np.testing.assert_allclose(objectives.perplexity(counts), expected, rtol=0,
                               atol=float32_tolerance(expected, ops=16))
