"""The VAE and IWAE: the model contract, the objective, log-likelihood, bad input, training."""
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
from tolerances import float32_tolerance, mlp_partial_sums
from scripts._common import FAMILIES, architecture_kwargs

tfd = tfp.distributions


def small(cls=tfvae.VAE, **kwargs):
    kwargs.setdefault("input_shape", (28, 28, 1))
    # latent_dim (or the family's name for it), encoder and decoder of 32 units, or their like
    for key, value in architecture_kwargs(cls, 4, 32).items():
        kwargs.setdefault(key, value)
    kwargs.setdefault("seed", 0)
    keras.utils.set_random_seed(0)  # deterministic initial weights: every test here is repeatable
    return cls(**kwargs)


@pytest.fixture(scope="module")
def batch():
    return (np.random.RandomState(0).rand(6, 28, 28, 1) > 0.5).astype("float32")


def test_contract_distributions_and_tensors(batch):
    model = small()
    q = model.posterior(batch)
    assert isinstance(q, tfd.Distribution) and q.batch_shape == (6,) and q.event_shape == (4,)
    assert model.prior().event_shape == (4,)
    px = model.likelihood(q.sample(3, seed=(1, 1)))
    assert px.batch_shape == (3, 6) and px.event_shape == (28, 28, 1)
    assert model.encode(batch).shape == (6, 4)
    assert model.decode(np.zeros((2, 4), "float32")).shape == (2, 28, 28, 1)
    assert model.reconstruct(batch).shape == (6, 28, 28, 1)
    recon = model(batch)
    assert isinstance(recon, tf.Tensor)
    # graph (predict) vs eager (call): rounding scales with the networks' partial sums, not with
    # the outputs (sigmoids of the logits, slope <= 1/4)
    np.testing.assert_allclose(model.predict(batch, verbose=0), recon, rtol=0, atol=float32_tolerance(
        mlp_partial_sums(model.encoder, batch), mlp_partial_sums(model.decoder, model.encode(batch))))
    images = model.sample(5, seed=1)
    assert images.shape == (5, 28, 28, 1) and np.all((images >= 0) & (images <= 1))


def test_sampling_is_seeded(batch):
    model = small()
    np.testing.assert_array_equal(model.sample(4, seed=7), model.sample(4, seed=7))
    assert not np.allclose(model.sample(4, seed=7), model.sample(4, seed=8))
    np.testing.assert_array_equal(model.reconstruct(batch, seed=(1, 2)), model.reconstruct(batch, seed=(1, 2)))
    assert not np.allclose(model.reconstruct(batch, seed=(1, 2)), model.reconstruct(batch, seed=(3, 2)))


def test_iwae_with_one_sample_is_exactly_the_vae_objective(batch):
    vae = small(tfvae.VAE, analytic_kl=False)
    iwae = small(tfvae.IWAE, num_samples=1)
    iwae.set_weights(vae.get_weights())
    x = tf.constant(batch)
    vae_loss, vae_logs = vae.compute_losses(x, seed=tf.constant([3, 4]))
    iwae_loss, iwae_logs = iwae.compute_losses(x, seed=tf.constant([3, 4]))
    # Equal in exact arithmetic, not in float32: the VAE scores z with TFP's log_prob, the IWAE
    # with the ε shortcut of sample_and_log_prob. The KL log q(z|x) - log p(z) is a difference of
    # log-densities much larger than itself, so it agrees to eps times *their* terms (one machine
    # gave -0.14048052 vs -0.14048004: 4.8e-7, beyond a relative 1e-6 of the KL, within this).
    q = vae.posterior(x)
    z, log_qz = tfvae.distributions.sample_and_log_prob(q, 1, tf.constant([3, 4]))
    log_pz, log_px = vae.prior().log_prob(z), vae.conditional_log_prob(x, z)
    scale = q.stddev().numpy()
    eps = (z.numpy() - q.mean().numpy()) / scale
    # Σ_d |log N(ε_d; 0, 1)| + |log σ_d| bounds every partial sum of log q(z|x) on both paths
    log_q_terms = np.sum(0.5 * eps**2 + 0.5 * np.log(2 * np.pi) + np.abs(np.log(scale)), axis=-1)
    kl_tolerance = float32_tolerance(log_q_terms, log_pz)
    np.testing.assert_allclose(vae_logs["kl"], iwae_logs["kl"], rtol=0, atol=kl_tolerance)
    np.testing.assert_allclose(vae_loss, iwae_loss, rtol=0, atol=float32_tolerance(log_px) + kl_tolerance)


def test_vae_loss_is_reconstruction_plus_beta_kl(batch):
    model = small(beta=0.25)
    loss, logs = model.compute_losses(tf.constant(batch), seed=tf.constant([0, 1]))
    np.testing.assert_allclose(loss, logs["reconstruction"] + 0.25 * logs["kl"], rtol=0,
                               atol=float32_tolerance(logs["reconstruction"], logs["kl"]))
    # analytic KL against the closed form of Kingma & Welling App. B
    q = model.posterior(batch)
    mu, sigma = q.mean().numpy(), q.stddev().numpy()
    closed = -0.5 * np.sum(1 + np.log(sigma**2) - mu**2 - sigma**2, axis=-1)
    # two float32 formulas (TFP's log-ratio form, App. B): eps times the summed terms, which can
    # be far larger than a small KL
    terms = np.sum(1 + np.abs(np.log(sigma**2)) + mu**2 + sigma**2, axis=-1)
    np.testing.assert_allclose(logs["kl"], closed, rtol=0, atol=float32_tolerance(terms))


def test_iwae_bound_exceeds_elbo_and_grows_with_k(batch):
    model = small(tfvae.IWAE)
    x = tf.constant(batch)
    bounds = {}
    for k in (1, 5, 50):
        model.num_samples = k
        bounds[k] = np.mean([model.compute_losses(x, seed=tf.constant([s, 0]))[1]["iwae_bound"].numpy().mean()
                             for s in range(20)])
    assert bounds[1] < bounds[5] < bounds[50]


def test_log_likelihood_is_seeded_chunked_and_masks_the_last_chunk(batch):
    model = small()
    a = model.log_likelihood(batch, num_samples=10, chunk_size=4, seed=3)
    b = model.log_likelihood(batch, num_samples=10, chunk_size=4, seed=3)
    np.testing.assert_array_equal(a, b)
    # rebuild the same estimate by hand: chunks of 4, 4 and 2 (of 4 drawn) samples
    batch_seed = tf.random.experimental.stateless_fold_in(tf.constant([3, 0]), 0)
    log_w = np.concatenate([model.log_importance_weights(
        tf.constant(batch), 4, tf.random.experimental.stateless_fold_in(batch_seed, i)).numpy()
        for i in range(3)])[:10]
    expected = np.log(np.mean(np.exp(log_w - log_w.max(0)), axis=0)) + log_w.max(0)
    # graph (running log-sum-exp over chunks) vs numpy: rounding at the size of the log-weights
    np.testing.assert_allclose(a, expected, rtol=0, atol=float32_tolerance(log_w))


def test_log_likelihood_matches_the_closed_form_of_a_linear_gaussian_model():
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s²I) ⇒ p(x) = N(b, WWᵀ + s²I): the estimate must agree."""
    keras.utils.set_random_seed(0)
    model = tfvae.VAE(input_shape=(5,), latent_dim=2, likelihood=tfvae.likelihoods.FixedGaussian(0.7),
                      encoder=tfvae.networks.mlp([]), decoder=tfvae.networks.mlp([]), seed=0)
    kernel, bias = model.decoder.head.kernel.numpy(), model.decoder.head.bias.numpy()
    bias[:] = np.linspace(-1, 1, 5)
    model.decoder.head.bias.assign(bias)
    x = np.random.RandomState(1).randn(8, 5).astype("float32")
    w = kernel.T  # x = W z + b
    cov = w @ w.T + 0.49 * np.eye(5)
    diff = x - bias
    exact = -0.5 * (5 * np.log(2 * np.pi) + np.linalg.slogdet(cov)[1]
                    + np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff))
    # point the (linear) encoder at the true posterior N(Σ Wᵀ(x - b)/s², Σ), Σ = (I + WᵀW/s²)⁻¹,
    # keeping only its diagonal: a close but imperfect proposal, as a trained encoder would be
    sigma = np.linalg.inv(np.eye(2) + w.T @ w / 0.49)
    gain = sigma @ w.T / 0.49
    scale = np.sqrt(np.diag(sigma)) - model.min_posterior_scale
    model.encoder.head.kernel.assign(np.concatenate([gain.T, np.zeros((5, 2))], 1))
    model.encoder.head.bias.assign(np.concatenate([-gain @ bias, np.log(np.expm1(scale))]))
    estimate = model.log_likelihood(x, num_samples=5000, seed=0)
    np.testing.assert_allclose(estimate, exact, atol=0.02)


def test_config_round_trip():
    model = small(tfvae.IWAE, num_samples=3, beta=0.5, likelihood="gaussian", prior="learnable_gaussian")
    clone = tfvae.IWAE.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert isinstance(clone.observation_model, tfvae.likelihoods.Gaussian)
    assert any("loc" in v.path for v in clone.trainable_variables)


@pytest.mark.parametrize("bad, error, words", [
    (np.zeros((4, 28, 28), "float32"), ValueError, r"expected x of shape \(batch, 28, 28, 1\)"),
    (np.zeros((4, 27, 28, 1), "float32"), ValueError, r"got shape \(4, 27, 28, 1\)"),
    (np.zeros((4, 28, 28, 1), "uint8"), TypeError, "floating-point.*uint8"),
    (np.full((4, 28, 28, 1), np.nan, "float32"), ValueError, "NaN"),
    (np.full((4, 28, 28, 1), 2.0, "float32"), ValueError, r"in \[0.0, 1.0\].*Bernoulli"),
])
def test_bad_input_raises_a_clear_error(bad, error, words):
    model = small()
    with pytest.raises(error, match=words):
        model.encode(bad)
    with pytest.raises(error, match=words):
        model.log_likelihood(bad, num_samples=2)


def test_bad_input_inside_fit_names_the_problem():
    model = small()
    model.compile(optimizer="adam")
    bad = np.full((8, 28, 28, 1), 2.0, "float32")
    with pytest.raises(ValueError, match=r"expected x in \[0.0, 1.0\]"):
        model.fit(bad, epochs=1, batch_size=4, verbose=0)
    # arrays are checked before fit() traces anything, so a second fit is refused the same way
    with pytest.raises(ValueError, match=r"expected x of shape"):
        model.fit(np.zeros((8, 28, 28), "float32"), epochs=1, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match=r"expected x of shape"):
        fresh = small()
        fresh.compile(optimizer="adam")
        fresh.fit(np.zeros((8, 28, 28), "float32"), epochs=1, batch_size=4, verbose=0)


def test_gaussian_likelihoods_accept_any_real_values():
    model = small(likelihood="fixed_gaussian")
    assert np.all(np.isfinite(model.encode(np.full((2, 28, 28, 1), -3.0, "float32"))))


def test_decode_checks_code_shape():
    with pytest.raises(ValueError, match=r"codes of shape \(batch, 4\)"):
        small().decode(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="NaN"):
        small().decode(np.full((2, 4), np.nan, "float32"))


@pytest.mark.parametrize("call, words", [
    (lambda m, x: m.sample(-1), r"num_samples as an integer >= 1; got -1"),
    (lambda m, x: m.sample(2.5), r"num_samples as an integer >= 1; got 2.5"),
    (lambda m, x: m.log_likelihood(x, num_samples=0), r"num_samples as an integer >= 1; got 0"),
    (lambda m, x: m.log_likelihood(x, 10, batch_size=0), r"batch_size as an integer >= 1"),
    (lambda m, x: m.log_likelihood(x, 10, chunk_size=-3), r"chunk_size as an integer >= 1"),
])
def test_bad_counts_raise_a_clear_error(call, words, batch):
    with pytest.raises(ValueError, match=words):
        call(small(), batch)


def test_networks_must_fit_the_model():
    with pytest.raises(ValueError, match="encoder must map"):
        tfvae.VAE(input_shape=(28, 28, 1), latent_dim=4, encoder=keras.layers.Dense(3))


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_convolutional_networks(shape):
    model = tfvae.VAE(input_shape=shape, latent_dim=8, encoder=tfvae.networks.conv_encoder(filters=(8, 16)),
                      decoder=tfvae.networks.conv_decoder(filters=(16, 8)), likelihood="gaussian")
    x = np.random.RandomState(0).rand(4, *shape).astype("float32")
    assert model.reconstruct(x).shape == (4,) + shape
    model.compile(optimizer="adam", run_eagerly=True)
    history = model.fit(x, epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    with pytest.raises(ValueError, match="divisible by 4"):
        tfvae.networks.conv_decoder().with_target_shape((30, 30, 1))


def test_kl_warmup_raises_the_weight_linearly():
    model = small(beta=2.0)
    model.compile(optimizer="adam", run_eagerly=True)
    x = (np.random.RandomState(0).rand(8, 28, 28, 1) > 0.5).astype("float32")
    history = model.fit(x, epochs=5, batch_size=8, verbose=0, callbacks=[tfvae.callbacks.KLWarmup(4)])
    np.testing.assert_allclose(history.history["kl_weight"], [0.0, 0.5, 1.0, 1.5, 2.0])


def test_active_units_counts_units_whose_posterior_mean_varies(mnist_sample):
    model = small(latent_dim=6)
    head = model.encoder.head
    kernel, bias = head.kernel.numpy(), head.bias.numpy()
    kernel[:, :2] = 0.0  # the means of units 0 and 1 ignore x
    bias[:2] = 0.0
    kernel[:, 2:6] *= 20.0  # the other four vary strongly with x
    head.kernel.assign(kernel)
    head.bias.assign(bias)
    variances = tfvae.evaluation.unit_activity(model, mnist_sample[0][:300])
    assert np.all(variances[:2] == 0.0) and np.all(variances[2:] > 1e-2)
    assert tfvae.evaluation.active_units(model, mnist_sample[0][:300]) == 4


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "fixed_gaussian"])
def test_every_likelihood_trains(likelihood, mnist_sample):
    x_train = mnist_sample[0][:512]
    model = small(likelihood=likelihood, latent_dim=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(x_train, epochs=4, batch_size=64, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.parametrize("prior", ["mixture_of_gaussians", "learnable_mixture"])
def test_non_gaussian_priors_use_the_monte_carlo_kl_and_train(prior, mnist_sample):
    model = small(prior=prior, latent_dim=2)
    model.compile(optimizer="adam")
    history = model.fit(mnist_sample[0][:256], epochs=2, batch_size=64, verbose=0)
    assert np.all(np.isfinite(history.history["kl"]))


def test_swiss_roll_prior_is_refused_for_density_models():
    with pytest.raises(ValueError, match="needs a prior with a density"):
        small(prior="swiss_roll", latent_dim=2)


def test_training_lowers_held_out_nll_on_real_digits(mnist_sample):
    """A trained IWAE beats an untrained one on held-out MNIST (k = 200 importance samples)."""
    x_train, x_test = mnist_sample
    keras.utils.set_random_seed(0)
    model = tfvae.IWAE(input_shape=(28, 28, 1), latent_dim=16, num_samples=5, seed=0,
                       encoder=tfvae.networks.mlp([128], activation="tanh"),
                       decoder=tfvae.networks.mlp([128], activation="tanh"))
    held_out = x_test[:200]
    before = -np.mean(tfvae.evaluation.log_likelihood(model, held_out, num_samples=200))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=10)
    history = model.fit(x_train, epochs=8, batch_size=100, verbose=0, validation_data=(held_out,))
    after = -np.mean(tfvae.evaluation.log_likelihood(model, held_out, num_samples=200))
    assert math.isfinite(after) and after < before - 100, (before, after)
    assert history.history["val_loss"][-1] < history.history["val_loss"][0]
    assert tfvae.evaluation.active_units(model, x_test[:500]) >= 1


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_float32_densities(policy, batch):
    """Networks compute in half precision; log-likelihoods, KL and bounds stay float32."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = small(tfvae.IWAE, num_samples=3)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
        assert model.decoder.head.compute_dtype != "float32"
        if policy == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        before = [w.numpy().copy() for w in model.trainable_weights]
        history = model.fit(batch, epochs=2, batch_size=6, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, model.trainable_weights))
        log_px = model.log_likelihood(batch, num_samples=4)
        assert log_px.dtype == tf.float32 and np.all(np.isfinite(log_px))
        assert model.posterior(batch).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_train_step_compiles_with_xla(name, batch):
    """The TPU path: the whole train_step (sampling, log-probs, every phase and optimizer)
    compiles with XLA, for every family of the production registry."""
    model = small(getattr(tfvae, name), **FAMILIES[name])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    history = model.fit(batch, epochs=2, batch_size=6, verbose=0)
    assert model.jit_compile is True
    assert np.all(np.isfinite(history.history["loss"]))


# ------------------------------------------------------------------ errors through fit() (issue 8)
def _assert_one_line(info, model_name, expected):
    """The error is the model's own line, with a traceback that stops in tfvae."""
    message = str(info.value)
    assert message.startswith(f"{model_name}: ") and re.search(expected, message), message
    assert "\n" not in message and "Graph execution error" not in message
    assert not any(part in str(entry.path) for entry in info.traceback
                   for part in ("keras", "tensorflow")), info.traceback


def _images_0_to_255(n=8):
    return (np.arange(n * 784) % 256).reshape(n, 28, 28, 1).astype("float32")


@pytest.mark.parametrize("bad, error, expected", [
    (_images_0_to_255(), ValueError,
     r"^VAE: expected x in \[0.0, 1.0\] for its Bernoulli likelihood; got values in \[0, 255\]\.$"),
    (np.zeros((8, 784), "float32"), ValueError,
     r"^VAE: expected x of shape \(batch, 28, 28, 1\); got shape \(8, 784\)\.$"),
    (np.full((8, 28, 28, 1), np.nan, "float32"), ValueError,
     r"^VAE: x contains 6272 NaN or infinite values; expected finite values\.$"),
    (np.zeros((8, 28, 28, 1), "uint8"), TypeError, r"^VAE: expected x as floating-point values"),
])
def test_bad_arrays_through_fit_raise_the_one_line_message_before_tracing(bad, error, expected):
    model = small()
    model.compile(optimizer="adam")  # graph mode (run_eagerly=False)
    with pytest.raises(error) as info:
        model.fit(bad, epochs=1, batch_size=4, verbose=0)
    _assert_one_line(info, "VAE", expected)
    assert model.train_function is None  # refused before anything was traced
    with pytest.raises(error) as info:
        model.evaluate(bad, batch_size=4, verbose=0)
    _assert_one_line(info, "VAE", expected)
    good = (np.random.RandomState(0).rand(8, 28, 28, 1) > 0.5).astype("float32")
    with pytest.raises(error) as info:
        model.fit(good, epochs=1, batch_size=4, verbose=0, validation_data=(bad,))
    _assert_one_line(info, "VAE", expected.replace("x ", "validation x "))


def test_bad_values_in_a_later_batch_of_a_dataset_stop_fit_with_the_one_line_message(batch):
    x = np.concatenate([batch, batch])
    x[9, 5, 5, 0] = np.nan  # the third batch of four
    model = small()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError) as info:
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), epochs=1, verbose=0)
    _assert_one_line(info, "VAE", r"^VAE: x contains NaN or infinite values; expected finite values\.$")
    x = np.concatenate([batch, _images_0_to_255(2)])
    with pytest.raises(ValueError) as info:
        model.evaluate(tf.data.Dataset.from_tensor_slices((x, x)).batch(4), verbose=0)
    _assert_one_line(info, "VAE", r"^VAE: expected x in \[0.0, 1.0\] for its Bernoulli likelihood; "
                                  r"got values in \[0, 255\]\.$")


@pytest.mark.parametrize("dataset, error, expected", [
    (lambda x: tf.data.Dataset.from_tensor_slices(x.reshape(-1, 784)).batch(4), ValueError,
     r"^VAE: expected x of shape \(batch, 28, 28, 1\); got shape \(\?, 784\)\.$"),
    (lambda x: tf.data.Dataset.from_tensor_slices(x), ValueError,  # forgot .batch()
     r"^VAE: expected x of shape \(batch, 28, 28, 1\); got shape \(28, 28, 1\)\.$"),
    (lambda x: tf.data.Dataset.from_tensor_slices((x * 255).astype("uint8")).batch(4), TypeError,
     r"^VAE: expected x as floating-point values \(float32\) .* got dtype uint8"),
    # a spec of unknown rank passes the static check: the traced step refuses the batch
    (lambda x: tf.data.Dataset.from_generator(lambda: iter([x.reshape(-1, 784)[:4]]),
                                              output_signature=tf.TensorSpec(None, tf.float32)),
     ValueError, r"^VAE: expected x of shape \(batch, 28, 28, 1\); got shape \(4, 784\)\.$"),
])
def test_datasets_of_the_wrong_shape_or_dtype_are_refused_by_their_element_spec(
        dataset, error, expected, batch):
    model = small()
    model.compile(optimizer="adam")
    with pytest.raises(error) as info:
        model.fit(dataset(batch), epochs=1, verbose=0)
    _assert_one_line(info, "VAE", expected)


def test_errors_that_are_not_input_checks_pass_through_fit_unchanged(batch):
    model = small()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="Arguments not recognized") as info:
        model.evaluate(batch, verbose=0, no_such_argument=1)
    assert not str(info.value).startswith("VAE")


@pytest.mark.parametrize("cls, latent_dim", [(tfvae.VAE, 0), (tfvae.VAE, -2), (tfvae.VAE, 2.5),
                                             (tfvae.VAE, None), (tfvae.IWAE, 0)])
def test_latent_dim_must_be_a_positive_integer(cls, latent_dim):
    with pytest.raises(ValueError) as info:
        cls(input_shape=(28, 28, 1), latent_dim=latent_dim)
    assert str(info.value) == (f"{cls.__name__}: expected latent_dim as an integer >= 1; "
                               f"got {latent_dim!r}.")


# ------------------------------------------------------------------ log-likelihood progress
def test_log_likelihood_progress_bar_counts_examples(batch, capsys):
    model = small()
    model.log_likelihood(batch, num_samples=3, batch_size=4, verbose=1)
    out = capsys.readouterr().out
    assert "6/6" in out and "k=3" in out, out
    model.log_likelihood(batch, num_samples=3, batch_size=4)
    assert capsys.readouterr().out == ""
    values = tfvae.evaluation.log_likelihood(model, batch, num_samples=3, batch_size=4, verbose=0)
    assert capsys.readouterr().out == ""
    # one bar over all the data, not one per batch of 4 and 2; the same numbers
    np.testing.assert_array_equal(
        tfvae.evaluation.log_likelihood(model, batch, num_samples=3, batch_size=4, verbose=1), values)
    out = capsys.readouterr().out
    assert "6/6" in out and "k=3" in out and "4/4" not in out and "2/2" not in out, out
    tfvae.evaluation.log_likelihood(model, tf.data.Dataset.from_tensor_slices(batch).batch(4),
                                    num_samples=3, verbose=1)
    out = capsys.readouterr().out
    assert re.search(r"\b6/Unknown", out) and "k=3" in out, out
