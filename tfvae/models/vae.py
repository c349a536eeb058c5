"""The variational autoencoder (Kingma & Welling 2013) and the importance-weighted
autoencoder (Burda et al. 2016).

Both use a Gaussian encoder q(z|x) = N(μ(x), diag σ²(x)), a prior p(z) from
`tfvae.distributions`, and a decoder p(x|z) from `tfvae.likelihoods`. They differ only in the
objective: the VAE averages the ELBO over L samples (Eq. 7 of Kingma & Welling, with a β weight
on the KL term); the IWAE takes the log-mean-exp of k importance weights (Eq. 8 of Burda et al.),
which is the ELBO at k = 1 and tightens as k grows.
"""
import keras
import tensorflow as tf

from tfvae import distributions, likelihoods, networks, objectives
from tfvae.models.base import DecoderDensity, GenerativeModel, check_count

__all__ = ["VAE", "IWAE"]


@keras.saving.register_keras_serializable(package="tfvae")
class VAE(DecoderDensity, GenerativeModel):
    """Variational autoencoder with a Gaussian encoder and any prior and likelihood.

    Args:
        input_shape: shape of one observation, e.g. `(28, 28, 1)`.
        latent_dim: number of latent units D.
        encoder, decoder: bodies from `tfvae.networks` (default: the IWAE paper's
            `mlp([200, 200], activation="tanh")`); the model sets their output shapes.
        likelihood: 'bernoulli', 'gaussian' (learned variance), 'fixed_gaussian', or a
            `tfvae.likelihoods.Likelihood`.
        prior: a name or `tfvae.distributions.Prior` (default N(0, I)).
        num_samples: L Monte-Carlo samples per example (k for the IWAE).
        beta: weight of the KL term (β-VAE); `kl_weight` holds the current value, which a
            `tfvae.callbacks.KLWarmup` raises from 0 to β.
        analytic_kl: use the closed-form KL when TFP has one for (posterior, prior); the
            Monte-Carlo estimate log q(z|x) - log p(z) otherwise.
        min_posterior_scale: floor of the encoder's σ.
    """

    metric_names = ("loss", "elbo", "reconstruction", "kl")
    nested_config_keys = ("encoder", "decoder", "likelihood", "prior")

    def __init__(self, input_shape, latent_dim, *, encoder=None, decoder=None,
                 likelihood="bernoulli", prior="standard_normal", num_samples=1, beta=1.0,
                 analytic_kl=True, min_posterior_scale=1e-4, **kwargs):
        latent_dim = check_count(latent_dim, "latent_dim", type(self).__name__)
        num_samples = check_count(num_samples, "num_samples", type(self).__name__)
        super().__init__(input_shape, **kwargs)
        self.latent_dim = latent_dim
        self.num_samples = num_samples
        self.beta = float(beta)
        self.analytic_kl = bool(analytic_kl)
        self.min_posterior_scale = float(min_posterior_scale)
        self.observation_model = likelihoods.get(likelihood)
        self.latent_prior = distributions.get(prior, self.latent_dim)
        if not self.latent_prior.has_density:
            raise ValueError(f"{type(self).__name__} needs a prior with a density; "
                             f"{type(self.latent_prior).__name__} can only be sampled.")
        self.encoder = _with_target(encoder, (2 * self.latent_dim,))
        self.decoder = _with_target(decoder, self.observation_model.param_shape(self.data_shape))
        self.kl_weight = self.add_weight(name="kl_weight", shape=(), trainable=False,
                                         initializer=keras.initializers.Constant(self.beta))
        networks.check_output(self.encoder, self.data_shape, (2 * self.latent_dim,), "encoder")
        networks.check_output(self.decoder, (self.latent_dim,),
                            self.observation_model.param_shape(self.data_shape), "decoder")
        self.build()

    # ----------------------------------------------------------------- distributions
    def prior(self):
        return self.latent_prior.distribution()

    def posterior(self, x):
        """q(z|x) = N(μ(x), diag σ²(x)), batch shape [B], event shape [D]."""
        params = tf.cast(self.encoder(x), tf.float32)  # float32 densities under mixed precision
        return distributions.diagonal_gaussian(params, self.min_posterior_scale)

    # ----------------------------------------------------------------- tensors
    def posterior_parameters(self, x):
        """{'mean': μ(x), 'stddev': σ(x)}, each `[B, D]`."""
        q = self.posterior(self.check_input(x))
        return {"mean": q.mean(), "stddev": q.stddev()}

    def encode(self, x):
        """The posterior mean μ(x), `[B, D]`."""
        return self.posterior(self.check_input(x)).mean()

    def decode(self, z):
        """E[x|z] for codes `[N, D]`: pixel probabilities (Bernoulli) or means (Gaussian)."""
        z = self.check_codes(z, self.latent_dim)
        return self.observation_model.mean(self.decoder(z))

    def reconstruct(self, x, seed=None):
        q = self.posterior(self.check_input(x))
        z = q.mean() if seed is None else q.sample(seed=distributions.stateless_seed(seed))
        return self.decode(z)

    def sample(self, num_samples, seed=None):
        num_samples = self.check_count(num_samples, "num_samples")
        z = self.latent_prior.sample(num_samples, seed=distributions.stateless_seed(seed))
        return self.decode(z)

    # ----------------------------------------------------------------- objective
    def compute_losses(self, x, y=None, seed=None, training=False):
        """-ELBO per example, averaged over L = num_samples draws (Kingma & Welling, Eq. 7)."""
        q = self.posterior(x)
        z = q.sample(self.num_samples, seed=seed)                       # [L, B, D]
        log_px_given_z = self.conditional_log_prob(x, z)                 # [L, B]
        kl = objectives.kl_divergence(q, self.prior(), z, analytic=self.analytic_kl)
        kl_weight = tf.cast(self.kl_weight, tf.float32)
        elbo = objectives.elbo(log_px_given_z, kl, kl_weight)
        kl_mean = tf.reduce_mean(kl, axis=0) if kl.shape.rank == 2 else kl
        reconstruction = -tf.reduce_mean(log_px_given_z, axis=0)
        return -elbo, {"loss": -elbo, "elbo": -reconstruction - kl_mean,
                       "reconstruction": reconstruction, "kl": kl_mean}

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            likelihood=keras.saving.serialize_keras_object(self.observation_model),
            prior=keras.saving.serialize_keras_object(self.latent_prior),
            num_samples=self.num_samples, beta=self.beta, analytic_kl=self.analytic_kl,
            min_posterior_scale=self.min_posterior_scale)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class IWAE(VAE):
    """Importance-weighted autoencoder (Burda et al. 2016): maximizes
    L_k(x) = E[log (1/k) Σ_i p(x, z_i) / q(z_i|x)], z_i ~ q(z|x) (Eq. 8).

    `num_samples` is k (default 5). With k = 1 the objective is exactly the VAE's ELBO with the
    Monte-Carlo KL. The β weight (and KL warm-up) scales log p(z) - log q(z|x) inside each weight.
    """

    metric_names = ("loss", "iwae_bound", "elbo", "reconstruction", "kl")

    def __init__(self, input_shape, latent_dim, *, num_samples=5, analytic_kl=False, **kwargs):
        super().__init__(input_shape, latent_dim, num_samples=num_samples,
                         analytic_kl=analytic_kl, **kwargs)

    def compute_losses(self, x, y=None, seed=None, training=False):
        """-L_k per example (Burda et al., Eq. 8), vectorized over the k samples."""
        z, log_qz = distributions.sample_and_log_prob(self.posterior(x), self.num_samples, seed)
        log_px_given_z = self.conditional_log_prob(x, z)                 # [k, B]
        log_pz = self.prior().log_prob(z)                                # [k, B]
        kl_weight = tf.cast(self.kl_weight, tf.float32)
        log_w = objectives.log_importance_weights(log_px_given_z, log_pz, log_qz, kl_weight)
        bound = objectives.iwae_bound(log_w)
        reconstruction = -tf.reduce_mean(log_px_given_z, axis=0)
        kl = tf.reduce_mean(log_qz - log_pz, axis=0)
        return -bound, {"loss": -bound, "iwae_bound": bound, "elbo": -reconstruction - kl,
                        "reconstruction": reconstruction, "kl": kl}


def _with_target(network, target_shape):
    """The IWAE paper's MLP (two tanh layers of 200 units) unless given; see `networks.resolve`."""
    return networks.resolve(network, target_shape,
                            lambda: networks.mlp([200, 200], activation="tanh"))
