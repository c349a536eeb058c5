"""The objectives of the papers, as pure functions over tensors.

Conventions: a leading sample axis S precedes the batch axis B, so per-sample terms have shape
`[S, B]` and per-example results `[B]`. Nothing here holds state or knows about Keras.
"""
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["log_mean_exp", "kl_divergence", "elbo", "log_importance_weights", "iwae_bound",
           "gaussian_kl"]


def log_mean_exp(values, axis=0):
    """log (1/K) Σ_k exp(values_k) along `axis`, stable for large magnitudes (max-shifted)."""
    values = tf.convert_to_tensor(values)
    k = tf.cast(tf.shape(values)[axis], values.dtype)
    return tf.reduce_logsumexp(values, axis=axis) - tf.math.log(k)


def kl_divergence(posterior, prior, z=None, analytic=True):
    """KL(q || p), analytic where TFP registers it, else the one-sample estimate log q(z) - log p(z).

    Kingma & Welling (2013), Eq. 7 (analytic) and Eq. 6 (Monte Carlo). With samples `z` of shape
    `[S, B, D]` the Monte-Carlo estimate has shape `[S, B]`; the analytic one has shape `[B]`.
    """
    if analytic:
        try:
            return tfd.kl_divergence(posterior, prior)
        except NotImplementedError:
            if z is None:
                raise
    if z is None:
        raise ValueError("the Monte-Carlo KL needs samples z from the posterior.")
    return posterior.log_prob(z) - prior.log_prob(z)


def elbo(log_px_given_z, kl, kl_weight=1.0):
    """L(x) = (1/L) Σ_l log p(x|z_l) - β KL(q(z|x) || p(z)) (Kingma & Welling 2013, Eq. 7; β-weighted).

    log_px_given_z: `[L, B]`; kl: `[B]` (analytic) or `[L, B]` (Monte Carlo). Returns `[B]`.
    """
    per_sample = log_px_given_z - kl_weight * kl
    return tf.reduce_mean(per_sample, axis=0)


def log_importance_weights(log_px_given_z, log_pz, log_qz, kl_weight=1.0):
    """log w_k = log p(x|z_k) + β (log p(z_k) - log q(z_k|x)) (Burda et al. 2016, Eq. 8 with β = 1)."""
    return log_px_given_z + kl_weight * (log_pz - log_qz)


def iwae_bound(log_weights):
    """L_k(x) = log (1/k) Σ_k w_k (Burda et al. 2016, Eq. 8); `[k, B]` → `[B]`. k = 1 is the ELBO."""
    return log_mean_exp(log_weights, axis=0)


def gaussian_kl(loc_q, scale_q, loc_p=0.0, scale_p=1.0):
    """Closed-form KL between diagonal Gaussians, summed over the last axis.

    KL = Σ_i log(σ_p/σ_q) + (σ_q² + (μ_q-μ_p)²)/(2σ_p²) - 1/2; with p = N(0, I) this is
    Kingma & Welling (2013), Appendix B.
    """
    loc_q, scale_q = tf.convert_to_tensor(loc_q), tf.convert_to_tensor(scale_q)
    loc_p = tf.cast(loc_p, loc_q.dtype)
    scale_p = tf.cast(scale_p, loc_q.dtype)
    per_unit = (tf.math.log(scale_p) - tf.math.log(scale_q)
                + (tf.square(scale_q) + tf.square(loc_q - loc_p)) / (2.0 * tf.square(scale_p)) - 0.5)
    return tf.reduce_sum(per_unit, axis=-1)

