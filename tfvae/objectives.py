"""The objectives of the papers, as pure functions over tensors.

Conventions: a leading sample axis S precedes the batch axis B, so per-sample terms have shape
`[S, B]` and per-example results `[B]`. Nothing here holds state or knows about Keras.
"""
import math

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["sample_moments", "diagonal_gaussian_log_prob", "avb_elbo", "log_mean_exp", "kl_divergence", "elbo", "log_importance_weights", "iwae_bound",
           "gaussian_kl", "discriminator_loss", "generator_loss", "categorical_cross_entropy",
           "cluster_head_distance_penalty", "precision_weighted_merge", "squared_distances",
           "vector_quantization_losses", "ema_codebook_update", "perplexity"]


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



# --------------------------------------------------------------------------- adversarial objectives
# Shared by the Adversarial Autoencoder, Adversarial Variational Bayes and the Implicit
# Autoencoder. A discriminator outputs logits l; σ(l) is its probability that the input is real.


def discriminator_loss(real_logits, fake_logits):
    """Per-pair binary cross-entropy of a discriminator: real labelled 1, fake labelled 0.

    -log σ(D(real)) - log(1 - σ(D(fake))) = softplus(-D(real)) + softplus(D(fake)): the negated
    value function of Goodfellow et al. (2014), Eq. 1, which the discriminator of an adversarial
    autoencoder maximizes with prior samples as real and codes as fake (Makhzani et al. 2016,
    Sec. 2, Eq. 1). `tf.nn.softplus` is exact for logits of any magnitude (no log(0)).

    real_logits, fake_logits: `[B]` (the same shape). Returns `[B]`. At the equilibrium, where
    D cannot tell the two apart (σ = 1/2), the value is 2·ln 2 ≈ 1.386.
    """
    real_logits = tf.convert_to_tensor(real_logits)
    fake_logits = tf.convert_to_tensor(fake_logits, real_logits.dtype)
    return tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits)


def generator_loss(fake_logits):
    """The non-saturating generator loss -log σ(D(fake)) = softplus(-D(fake)), per example.

    Goodfellow et al. (2014), Sec. 3: maximizing log D(G(z)) instead of minimizing
    log(1 - D(G(z))) gives strong gradients while the discriminator still wins; the AAE's
    encoder (its generator) minimizes it in the regularization phase (Makhzani et al. 2016,
    Sec. 2). fake_logits: `[B]`; returns `[B]`; ln 2 at the equilibrium.
    """
    return tf.nn.softplus(-tf.convert_to_tensor(fake_logits))


def discriminator_accuracy(real_logits, fake_logits):
    """The fraction of a (real, fake) pair a discriminator classifies right, per pair: `[B]` in
    {0, 0.5, 1}. A logit above 0 says real; 0.5 at the equilibrium, near 1 when D wins."""
    real_logits = tf.convert_to_tensor(real_logits)
    fake_logits = tf.convert_to_tensor(fake_logits, real_logits.dtype)
    return 0.5 * (tf.cast(real_logits > 0, tf.float32) + tf.cast(fake_logits < 0, tf.float32))


def code_reconstruction_loss(codes, recovered, categorical=False):
    """How far the encoder's reading of a decoded image is from the code it was decoded from,
    per example `[B]` (the implicit autoencoder's optional cycle term).

    Continuous codes: ½‖ẑ − z‖² summed over the code. Categorical codes (z a probability
    vector, `recovered` the encoder's logits): the cross-entropy −Σ_k z_k log softmax(ẑ)_k,
    InfoGAN's bound on the mutual information between the class and the image (Chen et al.
    2016, Eq. 4) up to H(z). codes, recovered: `[B, K]`.
    """
    codes = tf.convert_to_tensor(codes)
    recovered = tf.convert_to_tensor(recovered, codes.dtype)
    if categorical:
        return -tf.reduce_sum(codes * tf.nn.log_softmax(recovered, axis=-1), axis=-1)
    return 0.5 * tf.reduce_sum(tf.square(recovered - codes), axis=-1)


def squared_error(x, x_hat, event_ndims):
    """Σ (x − x̂)² over the last `event_ndims` axes, per example `[B]`: the implicit
    autoencoder's optional anchor of the decoder at its noise's mean, g(z, 0), to the input."""
    x = tf.convert_to_tensor(x)
    error = tf.square(tf.convert_to_tensor(x_hat, x.dtype) - x)
    return tf.reduce_sum(error, axis=list(range(-event_ndims, 0))) if event_ndims else error


def categorical_cross_entropy(labels, logits, mask=None):
    """-log softmax(logits)[label] per example, 0 where `mask` is False.

    The supervised phase of the semi-supervised AAE (Makhzani et al. 2016, Sec. 5): q(y|x)'s
    logits against the labelled examples of a batch. labels: int `[B]`; logits: `[B, K]`;
    mask: bool `[B]` or None (every example counts). Masked examples may carry any label
    (e.g. -1 for unlabelled): they never reach the softmax lookup. Returns `[B]`; averaging over
    the labelled examples only is left to the caller.
    """
    logits = tf.convert_to_tensor(logits)
    labels = tf.cast(labels, tf.int32)
    if mask is None:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    mask = tf.cast(mask, tf.bool)
    safe = tf.where(mask, labels, tf.zeros_like(labels))
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    return tf.where(mask, per_example, tf.zeros_like(per_example))


def cluster_head_distance_penalty(heads, eta):
    """Σ_{i<j} max(0, η - ‖W_i - W_j‖₂): keeps cluster heads at least η apart.

    Makhzani et al. (2016), "Dimensionality Reduction with Adversarial Autoencoders": each of
    the K clusters has a head W_i in the code space (a row of the matrix that maps the cluster
    one-hot to the code), and the Euclidean distance between every two heads is penalized by a
    ReLU below the threshold η. heads: `[K, D]`; eta: scalar. Returns a scalar.

    The distance is computed from the differences (no ‖a‖² + ‖b‖² - 2a·b cancellation), and its
    gradient is finite, zero, for coinciding heads (where the norm has no derivative).
    """
    heads = tf.convert_to_tensor(heads)
    eta = tf.cast(eta, heads.dtype)
    differences = heads[:, None, :] - heads[None, :, :]                     # [K, K, D]
    squared = tf.reduce_sum(tf.square(differences), axis=-1)                 # [K, K]
    positive = squared > 0
    distance = tf.where(positive, tf.sqrt(tf.where(positive, squared, tf.ones_like(squared))),
                        tf.zeros_like(squared))
    num_heads = tf.shape(heads)[0]
    upper = tf.linalg.band_part(tf.ones([num_heads, num_heads], heads.dtype), 0, -1) - tf.eye(
        num_heads, dtype=heads.dtype)                                        # i < j
    return tf.reduce_sum(upper * tf.nn.relu(eta - distance))


def precision_weighted_merge(mean_hat, variance_hat, mean_prior, variance_prior):
    """The Ladder VAE's posterior from a bottom-up estimate and the top-down prior (Sønderby et
    al. 2016, Eq. 17-19): σ²_q = 1 / (σ̂⁻² + σ_p⁻²), μ_q = (μ̂ σ̂⁻² + μ_p σ_p⁻²) σ²_q.

    Takes and returns variances (not standard deviations), all of one shape `[..., D]`; the
    product of the two Gaussian densities, renormalized. Returns (μ_q, σ²_q).
    """
    precision_hat, precision_prior = 1.0 / variance_hat, 1.0 / variance_prior
    variance = 1.0 / (precision_hat + precision_prior)
    mean = (mean_hat * precision_hat + mean_prior * precision_prior) * variance
    return mean, variance


def squared_distances(z, codebook):
    """‖z_n − e_k‖² for vectors `z` `[N, D]` and a codebook `[K, D]`: `[N, K]` (the VQ-VAE's
    nearest-neighbour lookup, van den Oord et al. 2017, Eq. 1), as ‖z‖² − 2 z·e + ‖e‖²."""
    return (tf.reduce_sum(tf.square(z), -1, keepdims=True) - 2.0 * tf.matmul(z, codebook, transpose_b=True)
            + tf.reduce_sum(tf.square(codebook), -1)[None, :])


def vector_quantization_losses(z_e, z_q):
    """The VQ-VAE's two code terms per example (van den Oord et al. 2017, Eq. 3), summed over
    the code grid: (codebook loss ‖sg[z_e] − e‖², commitment loss ‖z_e − sg[e]‖²), each `[B]`
    for encoder outputs `z_e` and their nearest codes `z_q`, both `[B, ..., D]`. The commitment
    cost β multiplies the second; the two are equal in value and differ in their gradients."""
    axes = list(range(1, z_e.shape.rank))
    codebook = tf.reduce_sum(tf.square(tf.stop_gradient(z_e) - z_q), axes)
    commitment = tf.reduce_sum(tf.square(z_e - tf.stop_gradient(z_q)), axes)
    return codebook, commitment


def ema_codebook_update(cluster_size, cluster_sum, counts, sums, decay, epsilon):
    """One exponential-moving-average codebook step (van den Oord et al. 2017, Appendix A.1).

    N_i ← γ N_i + (1 − γ) n_i and m_i ← γ m_i + (1 − γ) Σ_j z_{i,j}, where n_i `[K]` counts the
    encoder outputs assigned to code i in the (global) batch and `sums` `[K, D]` adds them up.
    The new code vectors are e_i = m_i / Ñ_i with the Laplace-smoothed Ñ_i =
    (N_i + ε) / (n + K ε) · n, n = Σ_i N_i (smoothing only normalizes; N itself is kept as is).
    With N and m started at zero, e_i is the decay-weighted mean of the outputs assigned to code
    i (the start's bias cancels in the ratio). Returns (N `[K]`, m `[K, D]`, e `[K, D]`,
    seen `[K]` bool): e_i is meaningful only where `seen` (N_i > 0, the code was ever assigned).
    """
    cluster_size = decay * cluster_size + (1.0 - decay) * counts
    cluster_sum = decay * cluster_sum + (1.0 - decay) * sums
    total = tf.reduce_sum(cluster_size)
    num_codes = tf.cast(tf.shape(cluster_size)[0], cluster_size.dtype)
    smoothed = (cluster_size + epsilon) / (total + num_codes * epsilon) * total
    codebook = cluster_sum / tf.maximum(smoothed, 1e-30)[:, None]
    return cluster_size, cluster_sum, codebook, cluster_size > 0


def perplexity(counts):
    """exp(H(p)) of the empirical code distribution p = counts / Σ counts (`counts` `[K]`): K when
    every code is used equally, 1 when one code takes every assignment (0 counts: 0)."""
    counts = tf.cast(counts, tf.float32)
    total = tf.reduce_sum(counts)
    p = counts / tf.maximum(total, 1e-30)
    entropy = -tf.reduce_sum(tf.math.multiply_no_nan(tf.math.log(p), p))
    return tf.where(total > 0, tf.exp(entropy), 0.0)


def sample_moments(z, axis=0, min_scale=1e-4):
    """(mean, standard deviation) of draws `z` along `axis`, the deviation floored at
    `min_scale`: the moments of AVB's adaptive contrast r_α (Mescheder et al. 2017, Sec. 4),
    estimated from S draws of q(z|x) `[S, B, D]` → `[B, D]` each (the unbiased variance, S − 1)."""
    z = tf.convert_to_tensor(z)
    mean = tf.reduce_mean(z, axis=axis)
    count = tf.cast(tf.shape(z)[axis], z.dtype)
    variance = tf.reduce_sum(tf.square(z - tf.expand_dims(mean, axis)), axis=axis) / tf.maximum(count - 1.0, 1.0)
    return mean, tf.maximum(tf.sqrt(variance), min_scale)


def diagonal_gaussian_log_prob(z, mean, scale):
    """log N(z; μ, diag σ²), summed over the last axis: `[..., D]` → `[...]` (μ and σ
    broadcast against z). AVB's log r_α(z|x) (Mescheder et al. 2017, Eq. 11)."""
    standardized = (z - mean) / scale
    return tf.reduce_sum(-0.5 * tf.square(standardized) - tf.math.log(scale)
                         - 0.5 * math.log(2.0 * math.pi), axis=-1)


def avb_elbo(log_likelihood, t_value, log_prior=None, log_contrast=None):
    """AVB's estimate of the ELBO per draw (Mescheder et al. 2017): log p(x|z) − T(x, z)
    (Eq. 4, where T ≈ log q(z|x) − log p(z)), or with a contrast r (adaptive contrast, Eq. 11)
    log p(x|z) + log p(z) − log r(z|x) − T(x, z̃), where T ≈ log q(z|x) − log r(z|x).

    All arguments `[S, B]` (or broadcastable); `log_prior` and `log_contrast` go together.
    With the optimal T (Proposition 1) both equal the ELBO log p(x|z) + log p(z) − log q(z|x)
    draw by draw; they are estimates, not bounds, for any other T.
    """
    if (log_prior is None) != (log_contrast is None):
        raise ValueError("avb_elbo: give log_prior and log_contrast together, or neither.")
    elbo = log_likelihood - t_value
    if log_prior is not None:
        elbo = elbo + log_prior - log_contrast
    return elbo
