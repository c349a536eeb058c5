"""The mixtures of Gaussians in the plane (`tfvae.datasets.gaussian_mixture_2d`) and their
mode-coverage score (`tfvae.evaluation.mode_coverage`), the implicit autoencoder's mixture
experiment (Makhzani 2018): centres against their definition, sample statistics against the
closed forms of a 2-D Gaussian (|x - μ|²/σ² is χ² with 2 degrees of freedom, so a fraction
1 - exp(-k²/2) lies within k std), and the score on crafted samples whose answer is counted by
hand (points at chosen centres, just inside and outside 3σ, the 1 % boundary)."""
import itertools
import math

import numpy as np
import pytest

from tfvae.datasets import gaussian_mixture_2d
from tfvae.evaluation import mode_coverage

EPS32 = float(np.finfo(np.float32).eps)


def nearest_distance_loop(samples, centres):
    """The distance of each sample to its nearest centre, one pair at a time (float64)."""
    return np.array([min(math.hypot(float(s[0]) - float(c[0]), float(s[1]) - float(c[1])) for c in centres)
                     for s in samples])


def sampling_tolerance(p, n, sigmas=5.0):
    """`sigmas` binomial standard errors of a fraction p estimated from n draws."""
    return sigmas * math.sqrt(p * (1.0 - p) / n)


# --------------------------------------------------------------------------- gaussian_mixture_2d
def test_grid_centres_std_and_sample_statistics():
    n = 20000
    x, centres, std = gaussian_mixture_2d("grid", n, seed=3)
    assert x.shape == (n, 2) and x.dtype == np.float32 and centres.dtype == np.float32
    assert std == 0.05
    expected = sorted(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))
    assert sorted(map(tuple, centres.tolist())) == expected
    # each point belongs to the nearest centre (spacing 2 = 40 std); its squared distance in units
    # of std is chi-squared with 2 dof: mean 2, variance 4
    d = nearest_distance_loop(x[:4000], centres)
    u = (d / std) ** 2
    assert abs(u.mean() - 2.0) <= 5 * math.sqrt(4.0 / len(u))
    assert d.max() < 8 * std
    # components drawn uniformly: 25 counts, each Binomial(n, 1/25)
    nearest = np.argmin(np.sum((x[:, None, :] - centres[None]) ** 2, -1), axis=1)
    counts = np.bincount(nearest, minlength=25)
    assert np.all(np.abs(counts / n - 1 / 25) <= sampling_tolerance(1 / 25, n))
    # the mean offset from the nearest centre is 0 in each coordinate (SE std / sqrt(n))
    offset = x - centres[nearest]
    assert np.all(np.abs(offset.mean(0)) <= 5 * std / math.sqrt(n))
    assert np.all(np.abs(offset.std(0) / std - 1.0) <= 5 / math.sqrt(2 * n))


def test_ring_centres_and_std():
    x, centres, std = gaussian_mixture_2d("ring", 8000, seed=1)
    assert centres.shape == (8, 2) and std == 0.02
    radius = np.hypot(centres[:, 0].astype(np.float64), centres[:, 1].astype(np.float64))
    assert np.all(np.abs(radius - 2.0) <= 4 * EPS32 * 2.0)
    c64 = centres.astype(np.float64)
    angles = np.sort(np.mod(np.arctan2(c64[:, 1], c64[:, 0]), 2 * np.pi))
    assert np.allclose(angles, np.arange(8) * np.pi / 4, atol=8 * EPS32)
    d = nearest_distance_loop(x[:3000], centres)
    assert abs(((d / std) ** 2).mean() - 2.0) <= 5 * math.sqrt(4.0 / len(d))


def test_mixture_seed_std_and_errors():
    a = gaussian_mixture_2d("ring", 100, seed=7)[0]
    np.testing.assert_array_equal(a, gaussian_mixture_2d("ring", 100, seed=7)[0])
    assert not np.array_equal(a, gaussian_mixture_2d("ring", 100, seed=8)[0])
    x, centres, std = gaussian_mixture_2d("grid", 5000, seed=0, std=0.3)
    assert std == 0.3
    d = nearest_distance_loop(x[:2000], centres)  # modes 6.7 std apart: a point nearer a neighbour is rare (~2e-3)
    assert abs(((d / std) ** 2).mean() - 2.0) <= 5 * math.sqrt(4.0 / len(d))
    with pytest.raises(ValueError, match="kind"):
        gaussian_mixture_2d("spiral", 10)
    with pytest.raises(ValueError, match="num_samples"):
        gaussian_mixture_2d("grid", 0)
    with pytest.raises(ValueError, match="std"):
        gaussian_mixture_2d("grid", 10, std=0.0)


# --------------------------------------------------------------------------- mode_coverage
def test_samples_at_three_of_eight_centres_cover_three():
    _, centres, std = gaussian_mixture_2d("ring", 1)
    far = np.array([[0.0, 0.0]] * 10 + [[5.0, 5.0]] * 10, np.float32)  # 2 and ~7 from every centre
    samples = np.concatenate([np.repeat(centres[[0, 3, 5]], [30, 20, 20], axis=0), far])
    out = mode_coverage(samples, centres, std)
    assert out["modes_covered"] == 3 and out["num_modes"] == 8
    assert out["high_quality_fraction"] == pytest.approx(70 / 90, abs=1e-15)
    expected = np.zeros(8)
    expected[[0, 3, 5]] = [30 / 90, 20 / 90, 20 / 90]
    np.testing.assert_allclose(out["per_mode_fraction"], expected, rtol=0, atol=1e-15)
    assert isinstance(out["modes_covered"], int) and isinstance(out["high_quality_fraction"], float)


def test_just_inside_and_just_outside_three_std():
    centres = np.array([[0.0, 0.0], [10.0, 0.0]])
    std = 0.5                                        # 3 std = 1.5
    rng = np.random.default_rng(0)
    angles = rng.uniform(0, 2 * np.pi, 40)
    unit = np.stack([np.cos(angles), np.sin(angles)], -1)
    inside = centres[0] + 1.5 * (1 - 1e-6) * unit[:20]       # 1e-6 relative: far above float64 rounding
    outside = centres[1] + 1.5 * (1 + 1e-6) * unit[20:]
    on = np.array([[1.5, 0.0], [0.0, -1.5]])                  # exactly 3 std (representable): inside
    out = mode_coverage(np.concatenate([inside, outside, on]), centres, std)
    assert out["per_mode_fraction"] == [22 / 42, 0.0]
    assert out["modes_covered"] == 1 and out["high_quality_fraction"] == 22 / 42
    # with num_std = 2 (radius 1) none is within reach; with num_std = 4 (radius 2) all are
    assert mode_coverage(np.concatenate([inside, outside, on]), centres, std, num_std=2.0)["modes_covered"] == 0
    wide = mode_coverage(np.concatenate([inside, outside, on]), centres, std, num_std=4.0)
    assert wide["per_mode_fraction"] == [22 / 42, 20 / 42] and wide["high_quality_fraction"] == 1.0


def test_min_fraction_boundary():
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    # 200 samples: 2 (1 %) at the first centre, 1 (0.5 %) at the second, the rest far away
    samples = np.concatenate([np.zeros((2, 2)), [[4.0, 0.0]], np.full((197, 2), 50.0)])
    out = mode_coverage(samples, centres, 0.1)
    assert out["per_mode_fraction"] == [0.01, 0.005, 0.0]
    assert out["modes_covered"] == 1                                  # "at least 1 %": 2/200 counts
    assert mode_coverage(samples, centres, 0.1, min_fraction=0.0101)["modes_covered"] == 0
    assert mode_coverage(samples, centres, 0.1, min_fraction=0.005)["modes_covered"] == 2
    assert out["high_quality_fraction"] == 3 / 200


def test_overlapping_modes_count_a_sample_for_each_but_once_for_quality():
    centres = np.array([[0.0, 0.0], [0.2, 0.0]])
    out = mode_coverage(np.array([[0.1, 0.0], [0.25, 0.0]]), centres, 0.1)  # 3 std = 0.3
    assert out["per_mode_fraction"] == [1.0, 1.0] and out["high_quality_fraction"] == 1.0


def test_data_from_the_mixture_against_the_closed_form():
    """On the mixture's own samples, 1 - exp(-k²/2) lie within k std of their centre; every mode is
    covered, and (the modes being disjoint at 3 std) the per-mode shares add up to the total."""
    n = 20000
    for kind in ("grid", "ring"):
        x, centres, std = gaussian_mixture_2d(kind, n, seed=11)
        for k in (1.0, 3.0):
            out = mode_coverage(x, centres, std, num_std=k)
            p = 1.0 - math.exp(-k * k / 2)
            assert abs(out["high_quality_fraction"] - p) <= sampling_tolerance(p, n), (kind, k)
            assert sum(out["per_mode_fraction"]) == pytest.approx(out["high_quality_fraction"], abs=1e-12)
            assert out["modes_covered"] == len(centres)
        # the loop's nearest distances give the same fraction on a subset
        d = nearest_distance_loop(x[:2000], centres)
        assert mode_coverage(x[:2000], centres, std)["high_quality_fraction"] == np.mean(d <= 3 * std)


def test_mode_coverage_errors():
    centres = np.zeros((2, 2))
    with pytest.raises(ValueError, match="std"):
        mode_coverage(np.zeros((3, 2)), centres, 0.0)
    with pytest.raises(ValueError):
        mode_coverage(np.zeros((0, 2)), centres, 0.1)
