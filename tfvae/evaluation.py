"""Evaluation of trained models: importance-sampled log-likelihood and active units.

Burda et al. (2016), Section 5: test log-likelihood estimated with k = 5000 importance samples,
and the number of active units A_u = Cov_x(E_{u~q(u|x)}[u]) > 10⁻².
"""
import numpy as np
import tensorflow as tf

__all__ = ["log_likelihood", "unit_activity", "active_units"]


def _batches(data, batch_size):
    """Yield numpy/tensor batches of x from an array or a tf.data.Dataset of x or (x, ...)."""
    if isinstance(data, tf.data.Dataset):
        for batch in data:
            yield batch[0] if isinstance(batch, (tuple, list)) else batch
        return
    for start in range(0, len(data), batch_size):
        yield data[start:start + batch_size]


def log_likelihood(model, data, num_samples=5000, *, batch_size=100, chunk_size=None, seed=0):
    """Per-example importance-sampled log p(x) in nats (Burda et al. 2016, Eq. 8 with k = num_samples).

    `data` is an array `[N, ...]` or a tf.data.Dataset of batches. The estimate is a stochastic
    lower bound that tightens with `num_samples`; the same `seed` gives the same numbers.
    Negate and average it for the "test NLL" of the papers.
    """
    values = []
    for index, batch in enumerate(_batches(data, batch_size)):
        values.append(np.asarray(model.log_likelihood(
            batch, num_samples, batch_size=batch_size, chunk_size=chunk_size,
            seed=(int(np.asarray(seed).ravel()[0]), index))))
    return np.concatenate(values)


def unit_activity(model, data, *, batch_size=500):
    """Cov_x(E_q[u]) for each latent unit u: the variance over the data of the posterior mean."""
    codes = np.concatenate([np.asarray(model.encode(batch)) for batch in _batches(data, batch_size)])
    return codes.reshape(len(codes), -1).var(axis=0)


def active_units(model, data, threshold=1e-2, *, batch_size=500):
    """The number of latent units with Cov_x(E_q[u]) > `threshold` (Burda et al. 2016, Eq. 16)."""
    return int(np.sum(unit_activity(model, data, batch_size=batch_size) > threshold))
