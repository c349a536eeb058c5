"""The Adversarial Autoencoder (tfvae/models/aae.py): every form trains under fit(), the phases
touch only their own variables, labels are checked, saving keeps all three optimizers, and the
model says clearly that it has no density."""
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
from tolerances import float32_tolerance, mlp_partial_sums
from scripts._common import load_labels
from tfvae import distributions, objectives

tfd = tfp.distributions
SHAPE = (28, 28, 1)
METRICS = {"loss", "reconstruction", "discriminator_loss", "generator_loss", "discriminator_accuracy"}


@keras.saving.register_keras_serializable(package="tfvae_tests")
def uniform_square(num_samples, seed):
    """A sample-only prior for the tests: uniform on [-2, 2]², drawn with the stateless seed."""
    return tf.random.stateless_uniform(tf.stack([num_samples, 2]), seed, -2.0, 2.0)


#: Every form of the model, as constructor arguments of a 2-D code.
FORMS = {
    "deterministic": {},
    "gaussian": {"posterior": "gaussian"},
    "universal": {"posterior": "universal", "noise_dim": 3},
    "mixture_of_gaussians": {"prior": "mixture_of_gaussians"},
    "swiss_roll": {"prior": "swiss_roll"},
    "tfp_distribution": {"prior": tfd.MultivariateNormalDiag(loc=[1.0, -1.0], scale_diag=[0.5, 2.0])},
    "sampler": {"prior": uniform_square},
    "labels_to_discriminator": {"prior": "mixture_of_gaussians", "label_mode": "discriminator",
                                "num_classes": 10},
    "labels_to_discriminator_swiss_roll": {"prior": "swiss_roll", "label_mode": "discriminator",
                                           "num_classes": 10},
    "labels_to_decoder": {"label_mode": "decoder", "num_classes": 10},
}


def tiny(**kwargs):
    kwargs.setdefault("latent_dim", 2)
    keras.utils.set_random_seed(0)  # the same initial weights in every test
    return tfvae.AdversarialAutoencoder(
        SHAPE, encoder=tfvae.networks.mlp([16]), decoder=tfvae.networks.mlp([16]),
        discriminator=tfvae.networks.mlp([16]), seed=0, **kwargs)


@pytest.fixture(scope="module")
def data(mnist_sample):
    """64 real MNIST images, their labels, and a partially labelled copy (-1: unlabelled)."""
    x = mnist_sample[0][:64]
    y = load_labels(64)
    partial = np.where(np.arange(64) % 3 == 0, y, -1)
    return x, y, partial


def fit_args(form, data):
    x, y, partial = data
    mode = FORMS[form].get("label_mode")
    return {"x": x, "y": {None: None, "discriminator": partial, "decoder": y}[mode]}


def variables_of(model):
    return {part: [np.asarray(v) for v in getattr(model, part).trainable_variables]
            for part in ("encoder", "decoder", "discriminator")}


def changed(before, after):
    return any(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_trains_with_fit_in_graph_mode(form, data):
    model = tiny(**FORMS[form])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = variables_of(model)
    history = model.fit(**fit_args(form, data), batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert not model.run_eagerly
    assert set(history.history) == METRICS
    assert all(np.isfinite(v[-1]) for v in history.history.values()), history.history
    assert history.history["loss"] == history.history["reconstruction"]
    assert 0.0 <= history.history["discriminator_accuracy"][-1] <= 1.0
    after = variables_of(model)
    assert all(changed(before[part], after[part]) for part in before), form
    assert all(int(opt.iterations) == 2 for opt in model.all_optimizers())


@pytest.mark.parametrize("form", ["labels_to_discriminator", "labels_to_decoder"])
def test_train_step_compiles_with_xla_with_labels(form, data):
    """The label forms under XLA (the unlabelled form is in test_models' registry-wide test)."""
    model = tiny(**FORMS[form])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    history = model.fit(**fit_args(form, data), batch_size=32, epochs=1, verbose=0)
    assert model.jit_compile is True
    assert all(np.isfinite(v[-1]) for v in history.history.values())


@pytest.mark.parametrize("active", ["optimizer", "discriminator_optimizer", "generator_optimizer"])
def test_each_phase_updates_only_its_networks(active, data):
    """reconstruction: encoder + decoder; discriminator: D alone; generator: the encoder alone."""
    model = tiny(posterior="gaussian")
    rates = {name: 0.1 if name == active else 0.0 for name in model.optimizer_names}
    model.compile(**{name: keras.optimizers.SGD(rate) for name, rate in rates.items()},
                  run_eagerly=True)
    before = variables_of(model)
    model.fit(data[0][:16], batch_size=16, epochs=1, verbose=0)
    moved = {part for part, values in variables_of(model).items() if changed(before[part], values)}
    assert moved == {"optimizer": {"encoder", "decoder"}, "discriminator_optimizer": {"discriminator"},
                     "generator_optimizer": {"encoder"}}[active]


def test_phase_losses_are_the_papers_objectives(data):
    """Each phase's per-example loss, recomputed from the networks' outputs with numpy (float64).
    Tolerances: float32 eps times the magnitudes the model's float32 path sums."""
    model = tiny(adversarial_weight=0.5)
    x = tf.constant(data[0][:8])
    seed = tf.constant([3, 4])
    # reconstruction: -log Bernoulli(x | decoder(encoder(x))), summed over the 784 pixels
    codes = model.encoder(x)
    logits = np.asarray(model.decoder(codes), np.float64).reshape(8, -1)
    pixels = data[0][:8].reshape(8, -1).astype(np.float64)
    terms = pixels * logits - np.logaddexp(0.0, logits)
    loss, logs = model.reconstruction_losses(x, seed=seed)
    # the logits' own rounding (eps · the decoder's partial sums) times 784 pixels of slope <= 1,
    # plus the sum's roundings at the size of Σ|terms| (blocked, in another order: ops=16)
    atol = (784 * float32_tolerance(mlp_partial_sums(model.decoder, codes))
            + float32_tolerance(np.sum(np.abs(terms), axis=1), ops=16))
    np.testing.assert_allclose(loss, -np.sum(terms, axis=1), rtol=0, atol=atol)
    np.testing.assert_array_equal(logs["reconstruction"], loss)
    # discriminator (no input noise outside training): prior samples labelled 1, codes 0
    _, prior_seed, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    prior_draws = model.latent_prior.sample(8, seed=prior_seed)
    real = np.asarray(model.discriminator(prior_draws), np.float64)[:, 0]
    fake = np.asarray(model.discriminator(codes), np.float64)[:, 0]
    # D ran on the 16 codes at once in the model, on 8 and 8 here; softplus has slope <= 1
    atol = 2 * float32_tolerance(mlp_partial_sums(model.discriminator, prior_draws),
                                 mlp_partial_sums(model.discriminator, codes), np.abs(real), np.abs(fake))
    loss, logs = model.discriminator_losses(x, seed=seed)
    np.testing.assert_allclose(loss, np.logaddexp(0.0, -real) + np.logaddexp(0.0, fake), rtol=0,
                               atol=atol)
    assert np.min(np.abs(np.concatenate([real, fake]))) > atol  # no logit within rounding of 0
    np.testing.assert_array_equal(logs["discriminator_accuracy"],
                                  0.5 * ((real > 0).astype(float) + (fake < 0)))
    # generator: adversarial_weight · -log σ(D(codes)); the logged value is unweighted
    loss, logs = model.generator_losses(x, seed=seed)
    np.testing.assert_allclose(logs["generator_loss"], np.logaddexp(0.0, -fake), rtol=0, atol=atol)
    np.testing.assert_array_equal(loss, 0.5 * np.asarray(logs["generator_loss"], np.float32))


def test_discriminator_input_noise_only_while_training(data):
    model = tiny(discriminator_noise=0.5)
    z = tf.constant(np.random.RandomState(0).randn(5, 2).astype("float32"))
    clean = model.discriminate(z)
    np.testing.assert_array_equal(model.discriminate(z, seed=tf.constant([1, 2])), clean)
    noisy = model.discriminate(z, seed=tf.constant([1, 2]), training=True)
    assert not np.allclose(noisy, clean)
    np.testing.assert_array_equal(noisy, model.discriminate(z, seed=tf.constant([1, 2]), training=True))


def test_label_discriminator_gets_the_label_one_hot_with_an_unlabelled_slot():
    model = tiny(prior="mixture_of_gaussians", label_mode="discriminator", num_classes=10)
    assert model.discriminator_input_dim == 2 + 11
    seen = []
    model.discriminator = _Recorder(model.discriminator, seen)
    model.discriminate(tf.zeros([3, 2]), labels=tf.constant([4, -1, 0]))
    np.testing.assert_array_equal(seen[0][:, 2:], np.eye(11)[[4, 10, 0]])


class _Recorder:
    def __init__(self, layer, seen):
        self.layer, self.seen = layer, seen

    def __call__(self, inputs, **kwargs):
        self.seen.append(np.asarray(inputs))
        return self.layer(inputs, **kwargs)


# ----------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("run_eagerly", [True, False])
def test_bad_labels_give_clear_errors(data, run_eagerly):
    x, y, partial = data
    model = tiny(**FORMS["labels_to_discriminator"])
    model.compile(optimizer="adam", run_eagerly=run_eagerly)
    expected = r"expected y as integer class labels of shape \(batch,\) with values in \[-1, 10\)"
    with pytest.raises(ValueError, match="expected labels with every batch"):
        model.fit(x, batch_size=32, verbose=0)
    with pytest.raises(TypeError, match=expected + r".*got dtype float32"):
        model.fit(x, y.astype("float32"), batch_size=32, verbose=0)
    # fit() checks label arrays whole (64 rows) before tracing; a traced step checks a batch
    flatten = r".*got shape \((64|32|\?), 1\)\. Flatten it with y\.reshape\(-1\)"
    with pytest.raises(ValueError, match=expected + flatten):
        model.fit(x, y[:, None], batch_size=32, verbose=0)
    # graph mode: an assertion, which fit() re-raises as the same one-line ValueError
    out_of_range = (ValueError, tf.errors.InvalidArgumentError)
    for bad in (np.where(y == 3, 10, y), np.where(y == 3, -2, y)):
        with pytest.raises(out_of_range, match=expected):
            model.fit(x, bad, batch_size=32, verbose=0)
    # the decoder needs every label: -1 is refused there
    decoder_model = tiny(**FORMS["labels_to_decoder"])
    decoder_model.compile(optimizer="adam", run_eagerly=run_eagerly)
    with pytest.raises(out_of_range, match=r"with values in \[0, 10\)"):
        decoder_model.fit(x, partial, batch_size=32, verbose=0)


def test_check_labels_batch_and_unlabelled_models(data):
    x, y, _ = data
    model = tiny(**FORMS["labels_to_decoder"])
    with pytest.raises(ValueError, match=r"one label per example of x \(4\); got 3 labels"):
        model.check_labels(y[:3], 10, x=tf.constant(x[:4]))
    np.testing.assert_array_equal(model.check_labels(y[:4], 10, x=tf.constant(x[:4])), y[:4])
    # a model without a label_mode ignores labels (a supervised dataset trains it as is)
    plain = tiny()
    plain.compile(optimizer="adam")
    plain.fit(x[:32], y[:32].astype("float32"), batch_size=32, verbose=0)


def test_labels_in_the_wrong_place_are_refused():
    plain = tiny()
    with pytest.raises(ValueError, match="only taken with a label_mode"):
        plain.sample(2, seed=1, labels=[0, 1])
    with pytest.raises(ValueError, match="label_mode='decoder'"):
        plain.decode(np.zeros((2, 2), "float32"), labels=[0, 1])
    decoder = tiny(**FORMS["labels_to_decoder"])
    with pytest.raises(ValueError, match="label_mode='decoder' needs labels"):
        decoder.decode(np.zeros((2, 2), "float32"))
    with pytest.raises(ValueError, match=r"reconstructs \(x, labels\)"):
        decoder(np.zeros((2, *SHAPE), "float32"))


@pytest.mark.parametrize("kwargs, message", [
    ({"posterior": "normal"}, "expected posterior as one of"),
    ({"label_mode": "encoder", "num_classes": 3}, "expected label_mode as one of"),
    ({"label_mode": "decoder"}, "needs num_classes"),
    ({"num_classes": 10}, "only used with a label_mode"),
    ({"noise_dim": 3}, "only used with posterior='universal'"),
    ({"label_mode": "discriminator", "num_classes": 10}, r"prior needs num_classes=10 classes; "
                                                         r"StandardNormal has none"),
    ({"label_mode": "discriminator", "num_classes": 4, "prior": "mixture_of_gaussians"},
     "MixtureOfGaussians has 10"),
    ({"posterior": "universal", "encoder": tfvae.networks.conv_encoder()},
     "universal posterior feeds the encoder a flat vector"),
])
def test_bad_configurations_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfvae.AdversarialAutoencoder(SHAPE, 2, seed=0, **{
            "encoder": tfvae.networks.mlp([4]), "decoder": tfvae.networks.mlp([4]),
            "discriminator": tfvae.networks.mlp([4]), **kwargs})


# ----------------------------------------------------------------------------------- tensors
@pytest.mark.parametrize("form", ["deterministic", "gaussian", "universal", "labels_to_decoder"])
def test_contract_shapes_and_seeds(form, data):
    x = data[0][:5]
    model = tiny(**FORMS[form])
    labels = {"labels": np.array([0, 1, 2, 3, 4])} if form == "labels_to_decoder" else {}
    codes = model.encode(x)
    assert codes.shape == (5, 2)
    np.testing.assert_array_equal(codes, model.encode(x))  # deterministic
    assert model.decode(codes, **labels).shape == (5, *SHAPE)
    recon = model.reconstruct(x, **labels)
    np.testing.assert_allclose(recon, model.decode(codes, **labels), rtol=1e-6)
    inputs = (x, labels["labels"]) if labels else x
    np.testing.assert_allclose(model(inputs), recon, rtol=1e-6)
    drawn = model.reconstruct(x, seed=(1, 2), **labels)
    np.testing.assert_array_equal(drawn, model.reconstruct(x, seed=(1, 2), **labels))
    assert np.allclose(drawn, recon) == (form in ("deterministic", "labels_to_decoder"))
    images = model.sample(4, seed=7)
    assert images.shape == (4, *SHAPE) and np.all((images >= 0) & (images <= 1))
    np.testing.assert_array_equal(images, model.sample(4, seed=7))
    assert not np.allclose(images, model.sample(4, seed=8))
    if form == "universal":  # encode is the code at η = 0
        flat = np.concatenate([x.reshape(5, -1), np.zeros((5, 3), "float32")], axis=1)
        np.testing.assert_allclose(codes, model.encoder(flat), rtol=1e-6)
    if form == "gaussian":  # encode is the posterior mean
        np.testing.assert_allclose(codes, model.posterior(x).mean(), rtol=1e-6)


def test_predict_returns_reconstructions(data):
    model = tiny()
    np.testing.assert_allclose(model.predict(data[0][:6], verbose=0), model.reconstruct(data[0][:6]),
                               atol=1e-6)


def test_sampling_with_labels():
    decoder = tiny(**FORMS["labels_to_decoder"])
    threes, fives = decoder.sample(3, seed=1, labels=3), decoder.sample(3, seed=1, labels=5)
    assert not np.allclose(threes, fives)
    np.testing.assert_array_equal(threes, decoder.sample(3, seed=1, labels=[3, 3, 3]))
    np.testing.assert_array_equal(decoder.sample(3, seed=1), decoder.sample(3, seed=1))
    with pytest.raises(ValueError, match=r"one label per sample \(3\); got 2"):
        decoder.sample(3, seed=1, labels=[1, 2])
    # discriminator mode: a label picks its mixture component, -1 the whole prior
    model = tiny(**FORMS["labels_to_discriminator"])
    z = model.prior_samples(None, tf.constant([2] * 200), seed=tf.constant([1, 1]))
    means = distributions._circle_means(10, 2, 4.0)
    # 200 draws of N(mean_2, 0.5² I): their mean is within 4 standard errors (4 · 0.5/√200)
    np.testing.assert_allclose(np.mean(z, axis=0), means[2], rtol=0, atol=4 * 0.5 / np.sqrt(200))
    assert model.sample(4, seed=2, labels=[2, 2, -1, 0]).shape == (4, *SHAPE)


def test_log_likelihood_says_there_is_no_density(data):
    model = tiny()
    assert not model.has_density
    message = r"AdversarialAutoencoder has no density.*tfvae\.evaluation\.parzen_log_likelihood"
    with pytest.raises(NotImplementedError, match=message):
        model.log_likelihood(data[0][:2], num_samples=10)
    with pytest.raises(NotImplementedError, match=message):
        tfvae.evaluation.log_likelihood(model, data[0][:2], num_samples=10)
    with pytest.raises(NotImplementedError, match="deterministic posterior has no density"):
        model.posterior(data[0][:2])


# ----------------------------------------------------------------------------------- compile
def test_extra_optimizers_default_to_copies_of_the_main_one():
    model = tiny()
    model.compile(optimizer=keras.optimizers.Adam(3e-3, beta_1=0.8))
    extras = model.extra_optimizers
    assert set(extras) == {"discriminator_optimizer", "generator_optimizer"}
    for opt in extras.values():
        assert isinstance(opt, keras.optimizers.Adam) and opt is not model.optimizer
        assert float(opt.learning_rate) == pytest.approx(3e-3) and opt.beta_1 == 0.8
    model.compile(discriminator_optimizer=keras.optimizers.SGD(0.5))
    assert isinstance(model.extra_optimizers["discriminator_optimizer"], keras.optimizers.SGD)
    assert float(model.extra_optimizers["generator_optimizer"].learning_rate) == pytest.approx(1e-3)


def test_mixed_precision_scales_every_phase(data):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny(posterior="gaussian")
        model.compile(optimizer="adam", run_eagerly=True)
        assert all(isinstance(opt, keras.optimizers.LossScaleOptimizer) for opt in model.all_optimizers())
        history = model.fit(data[0][:16], batch_size=8, epochs=1, verbose=0)
        assert all(np.isfinite(v[-1]) for v in history.history.values())
    finally:
        keras.mixed_precision.set_global_policy(previous)


# ----------------------------------------------------------------------------------- saving
def all_state(model):
    state = [np.asarray(v) for v in model.variables]
    for opt in model.all_optimizers():
        state += [np.asarray(v) for v in opt.variables]
    return state


@pytest.mark.parametrize("form", ["universal", "swiss_roll", "tfp_distribution", "sampler",
                                  "labels_to_discriminator", "labels_to_decoder"])
def test_keras_file_round_trip_and_resumed_training(form, data, tmp_path):
    """Save after one epoch, load with safe_mode=True, train on: the same weights and the same
    three optimizer states as two epochs straight."""
    args = fit_args(form, data)
    args["x"], args["y"] = args["x"][:32], None if args["y"] is None else args["y"][:32]

    def fit(model):
        model.fit(**args, batch_size=16, epochs=1, shuffle=False, verbose=0)

    straight, resumed = tiny(**FORMS[form]), tiny(**FORMS[form])
    for model in (straight, resumed):
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      discriminator_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    fit(straight), fit(straight), fit(resumed)
    resumed.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded) is tfvae.AdversarialAutoencoder
    assert loaded.get_config()["prior"] == resumed.get_config()["prior"]
    assert [type(o).__name__ for o in loaded.all_optimizers()] == ["Adam"] * 3
    assert float(loaded.extra_optimizers["discriminator_optimizer"].beta_1) == 0.5
    for a, b in zip(all_state(resumed), all_state(loaded)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.sample(3, seed=4), resumed.sample(3, seed=4))
    fit(loaded)
    assert [int(o.iterations) for o in loaded.all_optimizers()] == [4, 4, 4]
    for a, b in zip(all_state(straight), all_state(loaded)):
        np.testing.assert_array_equal(a, b)


def test_unsavable_priors_say_so():
    model = tiny(prior=lambda n, seed: tf.random.stateless_normal(tf.stack([n, 2]), seed))
    assert model.sample(2, seed=1).shape == (2, *SHAPE)  # it works, it just cannot be saved
    with pytest.raises(ValueError, match="cannot save the sampler.*lambda"):
        model.get_config()
    bijected = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)),
                                           tfp.bijectors.Exp())
    with pytest.raises(ValueError,
                       match=r"cannot save the prior TransformedDistribution\.bijector: a Exp is not"):
        tiny(prior=bijected).get_config()


# ----------------------------------------------------------------------------------- export
def test_export_with_labels_to_the_decoder(data, tmp_path):
    model = tiny(**FORMS["labels_to_decoder"])
    path = model.export(tmp_path / "saved")
    signatures = tf.saved_model.load(str(path)).signatures
    assert set(signatures) == {"encode", "decode", "reconstruct", "sample", "sample_for_labels",
                               "serving_default"}
    x, labels = tf.constant(data[0][:3]), tf.constant([1, 2, 3])
    z = model.encode(x)
    np.testing.assert_allclose(signatures["decode"](z=z, labels=labels)["x_mean"],
                               model.decode(z, labels), atol=1e-5)
    np.testing.assert_allclose(
        signatures["reconstruct"](x=x, labels=labels, seed=tf.constant([1, 2]))["reconstruction"],
        model.reconstruct(x, seed=(1, 2), labels=labels), atol=1e-5)
    np.testing.assert_allclose(
        signatures["sample_for_labels"](labels=labels, seed=tf.constant([5, 6]))["samples"],
        model.sample(3, seed=(5, 6), labels=labels), atol=1e-5)
    np.testing.assert_allclose(
        signatures["sample"](num_samples=tf.constant(2), seed=tf.constant([5, 6]))["samples"],
        model.sample(2, seed=(5, 6)), atol=1e-5)


# ----------------------------------------------------------------------------------- priors
def test_prior_samples_for_labels():
    mixture = distributions.MixtureOfGaussians(2, num_components=4, radius=4.0, scale=0.5)
    assert mixture.num_classes == 4
    labels = tf.constant([0, 1, 2, 3, -1] * 400)
    z = np.asarray(mixture.sample_for_labels(labels, seed=(1, 2)))
    means = distributions._circle_means(4, 2, 4.0)
    for k in range(4):
        np.testing.assert_allclose(z[k::5].mean(0), means[k], atol=0.1)  # 400 draws: se 0.025
        np.testing.assert_allclose(z[k::5].std(0), [0.5, 0.5], atol=0.06)
    unlabelled = np.argmin(np.linalg.norm(z[4::5, None] - means[None], axis=-1), axis=1)
    assert set(unlabelled) == {0, 1, 2, 3}
    np.testing.assert_array_equal(z, mixture.sample_for_labels(labels, seed=(1, 2)))

    roll = distributions.SwissRoll(num_classes=5, noise=0.0)
    labels = tf.constant(np.repeat([0, 4, -1], 300))
    z = np.asarray(roll.sample_for_labels(labels, seed=(3, 4)))
    radius = np.linalg.norm(z, axis=-1)  # radius = 4·sqrt(u), arc k holds u in [k/5, (k+1)/5)
    assert radius[:300].min() >= 0 and radius[:300].max() <= 4 * np.sqrt(1 / 5) + 1e-5
    assert radius[300:600].min() >= 4 * np.sqrt(4 / 5) - 1e-5
    assert radius[600:].min() < 4 * np.sqrt(1 / 5) and radius[600:].max() > 4 * np.sqrt(4 / 5)
    # the arcs are those sample_with_labels reports
    points, arcs = roll.sample_with_labels(1000, seed=(5, 6))
    r = np.linalg.norm(points, axis=-1)
    assert np.all((r >= 4 * np.sqrt(np.asarray(arcs) / 5) - 1e-5)
                  & (r <= 4 * np.sqrt((np.asarray(arcs) + 1) / 5) + 1e-5))
    with pytest.raises(NotImplementedError, match="no classes"):
        distributions.StandardNormal(2).sample_for_labels([0])


def test_tfp_distribution_prior_round_trips_through_its_config():
    dist = tfd.MixtureSameFamily(tfd.Categorical(probs=[0.3, 0.7]),
                                 tfd.Independent(tfd.Normal([[0.0, 1.0], [2.0, 3.0]], 0.5), 1))
    prior = distributions.get(dist, 2)
    assert isinstance(prior, distributions.DistributionPrior) and prior.has_density
    config = keras.saving.serialize_keras_object(prior)
    again = keras.saving.deserialize_keras_object(config, safe_mode=True)
    np.testing.assert_array_equal(again.sample(5, seed=(1, 2)), prior.sample(5, seed=(1, 2)))
    z = np.random.RandomState(0).randn(4, 2).astype("float32")
    np.testing.assert_allclose(again.log_prob(z), dist.log_prob(z), rtol=1e-6)
    with pytest.raises(ValueError, match=r"event shape \[3\], the model expects latent_dim=2"):
        distributions.get(tfd.MultivariateNormalDiag(tf.zeros(3)), 2)
    sampler = distributions.get(uniform_square, 2)
    assert isinstance(sampler, distributions.SamplerPrior) and not sampler.has_density
    draws = np.asarray(sampler.sample(100, seed=(1, 2)))
    assert draws.shape == (100, 2) and draws.min() >= -2 and draws.max() <= 2
