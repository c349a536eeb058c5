"""Sample-based evaluation (tfvae/evaluation.py): the Parzen-window log-likelihood, classification
and clustering errors, and the MMD between codes and prior samples, against brute-force numpy."""
import numpy as np
import pytest

from tolerances import float64_tolerance
from tfvae import evaluation

scipy_special = pytest.importorskip("scipy.special")


def brute_force_parzen(samples, x, sigma):
    """log (1/N) Σ_i N(x; s_i, σ² I), from the differences themselves, with scipy's logsumexp."""
    samples, x = samples.reshape(len(samples), -1), x.reshape(len(x), -1)
    squared = np.sum((x[:, None, :] - samples[None, :, :]) ** 2, axis=-1)
    dim = x.shape[1]
    return (scipy_special.logsumexp(-squared / (2 * sigma**2), axis=1) - np.log(len(samples))
            - 0.5 * dim * np.log(2 * np.pi * sigma**2)), squared


def test_parzen_matches_a_brute_force_computation():
    rng = np.random.RandomState(0)
    samples, x = rng.rand(37, 4, 3), rng.rand(11, 4, 3)  # images of 12 values
    result = evaluation.parzen_log_likelihood(samples, x, bandwidth=0.3, batch_size=4, chunk_size=5)
    expected, squared = brute_force_parzen(samples, x, 0.3)
    assert isinstance(result, evaluation.ParzenResult) and result.bandwidth == 0.3
    assert result.log_likelihood.shape == (11,) and result.validation_scores is None
    # the blockwise path expands ‖x - s‖² = ‖x‖² + ‖s‖² - 2x·s: float64 rounding at the size
    # of those terms over 2σ², then the log-sum-exp and the constant
    magnitude = (np.max(np.sum(x.reshape(11, -1) ** 2, 1)) + np.max(np.sum(samples.reshape(37, -1) ** 2, 1)))
    atol = float64_tolerance(magnitude / (2 * 0.3**2), expected, ops=16)
    np.testing.assert_allclose(result.log_likelihood, expected, rtol=0, atol=atol)
    assert result.mean == pytest.approx(np.mean(expected), abs=atol)
    assert result.standard_error == pytest.approx(np.std(expected, ddof=1) / np.sqrt(11), rel=1e-9)


def test_parzen_chooses_the_bandwidth_on_the_validation_set():
    rng = np.random.RandomState(1)
    samples, validation, x = rng.rand(40, 5), rng.rand(15, 5), rng.rand(9, 5)
    grid = [0.05, 0.1, 0.2, 0.4, 0.8]
    result = evaluation.parzen_log_likelihood(samples, x, validation=validation, bandwidths=grid,
                                              batch_size=6, chunk_size=7)
    means = [brute_force_parzen(samples, validation, s)[0].mean() for s in grid]
    assert result.bandwidth == grid[int(np.argmax(means))]
    assert 0 < int(np.argmax(means)) < len(grid) - 1  # an interior optimum: the choice matters
    np.testing.assert_allclose(list(result.validation_scores.values()), means, rtol=0,
                               atol=float64_tolerance(means, 2 * 5 / (2 * 0.05**2), ops=16))
    np.testing.assert_allclose(result.log_likelihood, brute_force_parzen(samples, x, result.bandwidth)[0],
                               rtol=1e-10)
    with pytest.raises(ValueError, match="needs a bandwidth, or validation examples"):
        evaluation.parzen_log_likelihood(samples, x)
    with pytest.raises(ValueError, match="same number of values per example"):
        evaluation.parzen_log_likelihood(samples, rng.rand(3, 4), bandwidth=0.1)


def test_parzen_recovers_a_known_density():
    """Samples of N(0, 1): the Parzen estimate converges to N(0, 1 + σ²), the density convolved
    with the kernel. With 20,000 samples its relative error at |x| <= 1 is about 1 %."""
    samples = np.random.RandomState(2).randn(20000, 1)
    x = np.array([[-1.0], [0.0], [1.0]])
    result = evaluation.parzen_log_likelihood(samples, x, bandwidth=0.2)
    variance = 1 + 0.2**2
    exact = -0.5 * np.log(2 * np.pi * variance) - x[:, 0] ** 2 / (2 * variance)
    np.testing.assert_allclose(result.log_likelihood, exact, atol=0.03)


def test_classification_error():
    labels = np.array([0, 1, 2, 2])
    assert evaluation.classification_error(np.array([0, 1, 1, 2]), labels) == 0.25
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1]])
    assert evaluation.classification_error(probs, labels) == 0.25
    with pytest.raises(ValueError, match="same N"):
        evaluation.classification_error(np.array([0, 1]), labels)


def test_clustering_error_by_hand():
    train_clusters = np.array([0, 0, 0, 1, 1, 2])
    train_labels = np.array([5, 5, 3, 7, 7, 1])          # clusters 0 → 5, 1 → 7, 2 → 1
    clusters, labels = np.array([0, 1, 2, 3, 0]), np.array([5, 7, 2, 4, 3])
    # wrong: example 2 (cluster 2 says 1), 3 (cluster 3 has no training member), 4 (5 ≠ 3)
    assert evaluation.clustering_error(clusters, labels, train_clusters, train_labels) == 3 / 5
    # the evaluated set labelling its own clusters: cluster 0 holds {5, 3}, a tie → 3
    assert evaluation.clustering_error(clusters, labels) == 1 / 5
    with pytest.raises(ValueError, match="both train_cluster_ids and train_labels"):
        evaluation.clustering_error(clusters, labels, train_clusters)
    with pytest.raises(ValueError, match="non-negative integers"):
        evaluation.clustering_error(clusters, labels.astype(float))


def brute_force_mmd(a, b, sigma):
    """The unbiased MMD² with explicit i ≠ j masks, from the differences themselves."""
    def kernel(u, v):
        return np.exp(-np.sum((u[:, None] - v[None]) ** 2, -1) / (2 * sigma**2))

    m, n = len(a), len(b)
    kaa, kbb = kernel(a, a), kernel(b, b)
    within_a = (kaa.sum() - np.trace(kaa)) / (m * (m - 1))
    within_b = (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
    return within_a + within_b - 2 * kernel(a, b).mean()


def test_prior_mismatch_matches_brute_force_and_uses_the_median_heuristic_on_the_prior():
    rng = np.random.RandomState(3)
    codes, prior = rng.randn(23, 3) * 1.5 + 0.3, rng.randn(31, 3)
    value = evaluation.prior_mismatch(codes, prior, bandwidth=0.8, block_size=7)
    # kernel values are <= 1: rounding at the size of the sums' terms (~1 each, averaged)
    np.testing.assert_allclose(value, brute_force_mmd(codes, prior, 0.8), rtol=0,
                               atol=float64_tolerance(4.0, ops=64))
    distances = np.sqrt(np.sum((prior[:, None] - prior[None]) ** 2, -1))[np.triu_indices(31, 1)]
    assert evaluation.median_bandwidth(prior) == pytest.approx(np.median(distances), rel=1e-12)
    np.testing.assert_allclose(evaluation.prior_mismatch(codes, prior, block_size=5),
                               brute_force_mmd(codes, prior, np.median(distances)), rtol=0,
                               atol=float64_tolerance(4.0, ops=64))


def test_prior_mismatch_is_about_zero_for_the_same_distribution_and_positive_for_a_shift():
    rng = np.random.RandomState(4)
    prior = rng.randn(500, 2)
    same = evaluation.prior_mismatch(rng.randn(500, 2), prior)
    shifted = evaluation.prior_mismatch(rng.randn(500, 2) + [1.0, 0.0], prior)
    squeezed = evaluation.prior_mismatch(0.3 * rng.randn(500, 2), prior)
    # the unbiased estimate's spread for n = 500 is ~1e-3 under equality; a shift by one standard
    # deviation, or a scale of 0.3, gives ~0.1 (50 times more)
    assert abs(same) < 0.005 and shifted > 0.05 and squeezed > 0.05
    with pytest.raises(ValueError, match="same dimension"):
        evaluation.prior_mismatch(rng.randn(5, 3), prior)
