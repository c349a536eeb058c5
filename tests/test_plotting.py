"""tfvae.plotting's figures (latent scatter, latent manifold, training curves, codebook usage),
the package without matplotlib, and tfvae.callbacks.ImageSummaries over every model family."""
import json
import math
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from PIL import Image

import tfvae
from scripts._common import FAMILIES, load_labels, load_sample, tiny_model
from tfvae import callbacks, plotting

tfd = tfp.distributions
REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def mpl():
    """matplotlib (the `plots` extra): the figure tests skip without it; the others need none."""
    return pytest.importorskip("matplotlib")


def assert_png(path):
    """A PNG file with more than one colour in it."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 1, f"{path} is a single colour"


_MODELS = {}


def model_2d(name, **kwargs):
    """The family `name`, tiny, with a 2-D code (built once per module and configuration)."""
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _MODELS:
        keras.utils.set_random_seed(0)
        _MODELS[key] = tiny_model(name, latent_dim=2, **kwargs)
    return _MODELS[key]


@pytest.fixture(scope="module")
def x():
    return load_sample(16)


class Stub:
    """A duck-typed model: a 2-D latent, a prior, and `decode` recording the codes it gets."""

    def __init__(self, prior, latent_dim=2):
        self.latent_dim, self._prior, self.codes = latent_dim, prior, None

    def prior(self):
        return self._prior

    def decode(self, z):
        self.codes = np.asarray(z)
        return np.tile(np.linspace(0, 1, 16, dtype=np.float32).reshape(1, 4, 4, 1),
                       (len(z), 1, 1, 1))


class Codebook:
    """A stand-in VQ-VAE: `encode` gives integer code indices of any shape, `num_codes` K."""

    def __init__(self, num_codes, encode):
        self.num_codes, self.encode = num_codes, encode


# --------------------------------------------------------------------------- latent_scatter
@pytest.mark.parametrize("case", ["codes", "labels", "prior_samples", "prior_density",
                                  "many_labels"])
def test_latent_scatter_writes_a_png(mpl, case, tmp_path):
    rng = np.random.RandomState(0)
    codes = rng.randn(200, 2).astype("float32")
    kwargs = {
        "codes": {},
        "labels": {"labels": rng.randint(0, 10, 200)},
        "prior_samples": {"labels": rng.randint(0, 3, 200), "prior_samples": rng.randn(500, 2)},
        "prior_density": {"prior": tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2)),
                          "prior_samples": rng.randn(100, 2)},
        "many_labels": {"labels": np.arange(200) % 30},                    # a colorbar
    }[case]
    figure = plotting.latent_scatter(codes, path=tmp_path / "scatter.png", **kwargs)
    assert type(figure).__module__ == "matplotlib.figure"
    assert_png(tmp_path / "scatter.png")
    ax = figure.axes[0]
    if case == "labels":
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [str(k) for k in range(10)]
    if case == "many_labels":
        assert len(figure.axes) == 2  # the axes and the colorbar
    if case == "prior_density":
        assert ax.collections and any(type(c).__name__.endswith("ContourSet")
                                      for c in ax.collections)


def test_latent_scatter_of_model_codes_over_the_prior(mpl, x, tmp_path):
    model = model_2d("AdversarialAutoencoder", prior="mixture_of_gaussians")
    labels = load_labels(len(x))
    figure = plotting.latent_scatter(
        model.encode(x), labels, prior=model.prior(),
        prior_samples=model.latent_prior.sample(300, seed=(0, 0)), path=tmp_path / "aae.png")
    assert_png(tmp_path / "aae.png")
    low, high = figure.axes[0].get_xlim()
    codes = np.asarray(model.encode(x))
    assert low < codes[:, 0].min() and codes[:, 0].max() < high


def test_latent_scatter_draws_into_given_axes(mpl, tmp_path):
    from matplotlib.figure import Figure

    figure = Figure()
    left, right = figure.subplots(1, 2)
    assert plotting.latent_scatter(np.zeros((5, 2)), ax=right, path=tmp_path / "a.png") is figure
    assert right.collections and not left.collections
    assert_png(tmp_path / "a.png")


@pytest.mark.parametrize("codes, labels, message", [
    (np.zeros((10, 3)), None, r"expected codes of shape \(N, 2\).*\(10, 3\)"),
    (np.zeros(10), None, r"expected codes of shape \(N, 2\).*\(10,\)"),
    (np.zeros((10, 2)), np.zeros(9, int), r"one label per code, shape \(10,\).*\(9,\)"),
    (np.zeros((10, 2)), np.zeros((10, 2), int), r"one label per code"),
    (np.zeros((10, 2)), np.full(10, 0.5), r"integer labels"),
])
def test_latent_scatter_refuses_bad_shapes(mpl, codes, labels, message):
    with pytest.raises(ValueError, match=message):
        plotting.latent_scatter(codes, labels)
    with pytest.raises(ValueError, match=r"prior_samples of shape \(N, 2\)"):
        plotting.latent_scatter(np.zeros((4, 2)), prior_samples=np.zeros((4, 5)))


# --------------------------------------------------------------------------- latent_manifold
def test_latent_manifold_spans_the_gaussian_quantiles(mpl):
    """Kingma & Welling (2013), Fig. 4: a linear grid on the unit square, 0.05..0.95, through
    the Gaussian inverse CDF; z1 grows to the right, z2 upwards."""
    stub = Stub(tfd.Independent(tfd.Normal(tf.zeros(2), tf.ones(2)), 1))
    plotting.latent_manifold(stub, grid=5)
    codes = stub.codes.reshape(5, 5, 2)
    expected = [statistics.NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, 5)]
    np.testing.assert_allclose(codes[0, :, 0], expected, rtol=1e-6)        # first row: z1
    np.testing.assert_allclose(codes[:, 0, 1], expected[::-1], rtol=1e-6)  # first column: z2
    assert codes[0, 0, 1] == pytest.approx(1.6448536, rel=1e-6)

    shifted = Stub(tfd.MultivariateNormalDiag([1.0, -2.0], [2.0, 0.5]))
    plotting.latent_manifold(shifted, grid=3)
    np.testing.assert_allclose(shifted.codes.reshape(3, 3, 2)[1, 1], [1.0, -2.0], atol=1e-6)

    pair = Stub(tfd.Independent(tfd.Normal(tf.zeros(2), tf.ones(2)), 1))
    plotting.latent_manifold(pair, grid=4, extent=(-3, 3))
    np.testing.assert_allclose(pair.codes.reshape(4, 4, 2)[0, :, 0], [-3, -1, 1, 3], rtol=1e-6)


@pytest.mark.parametrize("family, config, label", [
    ("VAE", {}, None),
    ("IWAE", {}, None),
    ("AdversarialAutoencoder", {"prior": "swiss_roll"}, None),             # only sampled
    ("AdversarialAutoencoder", {"label_mode": "decoder", "num_classes": 3}, 2),
    ("SemiSupervisedAAE", {}, 1),                                          # decode(z, y)
    ("DimensionalityReductionAAE", {}, None),                              # a mixture prior
    ("DimensionalityReductionAAE", {}, 0),                                 # styles around head 0
    ("LadderVAE", {}, None),                            # the top layer z_L, decoded top-down
    ("HierarchicalVAE", {}, None),
])
def test_latent_manifold_of_every_family(mpl, family, config, label, tmp_path):
    assert family in FAMILIES
    model = model_2d(family, **config)
    figure = plotting.latent_manifold(model, grid=6, label=label, path=tmp_path / "m.png")
    assert_png(tmp_path / "m.png")
    image = figure.axes[0].get_images()[0].get_array()
    assert image.shape[:2] == (1 + 6 * 29, 1 + 6 * 29)  # 28-pixel tiles, 1 pixel apart


def test_latent_manifold_errors(mpl):
    with pytest.raises(ValueError, match=r"needs a 2-D latent; VAE has a latent of size 4"):
        plotting.latent_manifold(tiny_model("VAE", latent_dim=4))
    with pytest.raises(ValueError, match=r"SemiSupervisedAAE.decode\(z, y\) needs the class.*"
                                         r"label=k, an int in \[0, 3\)"):
        plotting.latent_manifold(model_2d("SemiSupervisedAAE"))
    with pytest.raises(ValueError, match="VAE.decode takes no class"):
        plotting.latent_manifold(model_2d("VAE"), label=1)
    with pytest.raises(ValueError, match=r"label_mode='decoder' needs labels"):
        plotting.latent_manifold(model_2d("AdversarialAutoencoder", label_mode="decoder",
                                          num_classes=3), grid=2)
    for extent in [(2, 1), (0,), "ab", (0, float("inf"))]:
        with pytest.raises(ValueError, match="extent"):
            plotting.latent_manifold(model_2d("VAE"), extent=extent)
    with pytest.raises(ValueError, match="grid >= 2"):
        plotting.latent_manifold(model_2d("VAE"), grid=1)
    with pytest.raises(ValueError, match="cannot tell the latent size"):
        plotting.latent_manifold(object())


# --------------------------------------------------------------------------- training_curves
def test_training_curves_from_a_dict_and_epoch_history_json(mpl, tmp_path):
    history = {"loss": [3.0, 2.0, 1.5, 1.2], "val_loss": [3.1, 2.2, 1.9, 1.8],
               "kl_weight": [None, None, 0.5, 1.0],        # appeared late: skipped
               "val_nll": [90.0, 88.0, 87.0, 86.5]}        # validation only: its own panel
    figure = plotting.training_curves(history, path=tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["loss", "kl_weight", "nll"]
    loss_lines = panels[0].get_lines()
    assert [line.get_label() for line in loss_lines] == ["training", "validation"]
    assert list(loss_lines[1].get_ydata()) == history["val_loss"]
    assert list(panels[1].get_lines()[0].get_xdata()) == [3, 4]

    path = tmp_path / "history.json"
    recorder = callbacks.EpochHistory(path)
    for epoch in range(3):
        recorder.on_epoch_begin(epoch)
        recorder.on_epoch_end(epoch, {"loss": 2.0 - epoch, **({"nll": 9.0} if epoch else {})})
    for source in (path, str(path), json.loads(path.read_text())):
        figure = plotting.training_curves(source, path=tmp_path / "json.png")
        assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == ["loss", "nll"]
        assert list(figure.axes[1].get_lines()[0].get_xdata()) == [2, 3]
    assert_png(tmp_path / "json.png")


def test_training_curves_from_a_keras_history(mpl, x, tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_model("VAE", latent_dim=2)
    model.compile(optimizer="adam", run_eagerly=True)
    history = model.fit(x[:8], batch_size=4, epochs=2, validation_data=(x[8:12],), verbose=0)
    figure = plotting.training_curves(history, path=tmp_path / "keras.png")
    assert_png(tmp_path / "keras.png")
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert "loss" in titles and not any(t.startswith("val_") for t in titles)
    with pytest.raises(ValueError, match="non-empty"):
        plotting.training_curves({})


# --------------------------------------------------------------------------- codebook_usage
def test_codebook_usage_perplexity_and_fraction_used(mpl, tmp_path):
    rng = np.random.RandomState(0)
    # 16 codes, 4 of them used, with probabilities 1/2, 1/4, 1/8, 1/8
    indices = rng.choice([3, 5, 7, 11], size=(64, 4, 4), p=[0.5, 0.25, 0.125, 0.125])
    model = Codebook(16, lambda data: tf.constant(indices[:len(data)], tf.int32))
    figure = plotting.codebook_usage(model, np.zeros((64, 8)), path=tmp_path / "codes.png")
    assert_png(tmp_path / "codes.png")
    counts = np.bincount(indices.ravel(), minlength=16)
    p = counts[counts > 0] / counts.sum()
    perplexity = math.exp(-(p * np.log(p)).sum())
    title = figure.axes[0].get_title()
    assert f"perplexity {perplexity:.1f} of 16 codes" in title and "25% used" in title
    heights = [bar.get_height() for bar in figure.axes[0].patches]
    assert heights == list(counts)

    uniform = Codebook(8, lambda data: np.arange(8 * len(data)) % 8)   # every code equally
    assert "perplexity 8.0 of 8 codes, 100% used" in plotting.codebook_usage(
        uniform, np.zeros(5)).axes[0].get_title()
    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((6, 3)), np.zeros(6))).batch(4)
    single = Codebook(4, lambda batch: tf.zeros([len(batch), 2, 2], tf.int64))  # one code
    ax = plotting.codebook_usage(single, dataset).axes[0]
    assert ax.get_title() == "perplexity 1.0 of 4 codes, 25% used (1 of 4)"
    assert ax.get_ylabel() == "uses (of 24 indices)"


@pytest.mark.parametrize("codes, message", [
    (np.array([0, 1, 16]), r"indices in \[0, 16\); got values in \[0, 16\]"),
    (np.array([-1, 2]), r"indices in \[0, 16\)"),
    (np.array([0.5, 1.0]), "integer code indices"),
    (np.zeros([0], int), "no code indices"),
])
def test_codebook_usage_refuses_bad_indices(mpl, codes, message):
    with pytest.raises(ValueError, match=message):
        plotting.codebook_usage(Codebook(16, lambda data: codes), None)


# --------------------------------------------------------------------------- without matplotlib
def test_without_matplotlib_the_package_imports_trains_and_says_which_extra():
    script = textwrap.dedent("""
        import sys
        sys.modules["matplotlib"] = None        # as if matplotlib were not installed
        import numpy as np
        import keras
        import tfvae
        from tfvae import plotting

        model = tfvae.VAE((4, 4, 1), latent_dim=2, encoder=tfvae.networks.mlp([8]),
                          decoder=tfvae.networks.mlp([8]), seed=0)
        model.compile(optimizer="adam", run_eagerly=True)
        x = (np.random.RandomState(0).rand(8, 4, 4, 1) > 0.5).astype("float32")
        history = model.fit(x, batch_size=4, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][-1])
        assert plotting.image_grid(model.sample(4, seed=0)).shape == (14, 14)  # Pillow only
        calls = [lambda: plotting.latent_scatter(np.zeros((3, 2))),
                 lambda: plotting.training_curves(history),
                 lambda: plotting.latent_manifold(model, grid=2)]
        for call in calls:
            try:
                call()
            except ImportError as error:
                print("ImportError:", error)
            else:
                raise SystemExit("no ImportError")
        assert sys.modules["matplotlib"] is None
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("ImportError")]
    assert len(lines) == 3
    for line, name in zip(lines, ["latent_scatter", "training_curves", "latent_manifold"]):
        assert f"tfvae.plotting.{name}" in line and line.endswith("pip install tfvae[plots]")


# --------------------------------------------------------------------------- ImageSummaries
def read_images(log_dir):
    """{(tag, step): [decoded images uint8 [H, W, C]]} of every image summary under log_dir."""
    found = {}
    for path in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "images":
                    continue
                encoded = tf.make_ndarray(value.tensor)[2:]  # width, height, then PNGs
                found[(value.tag, event.step)] = [tf.io.decode_png(png).numpy() for png in encoded]
    return found


def fit_with_summaries(model, x, log_dir, epochs=1, **kwargs):
    model.compile(optimizer="adam", run_eagerly=True)
    summaries = callbacks.ImageSummaries(log_dir, x[:3], num_samples=4, **kwargs)
    fit_kwargs = {"y": kwargs["labels"]} if "labels" in kwargs else {}
    model.fit(x[:8] if not fit_kwargs else x[:3], **fit_kwargs, batch_size=8, epochs=epochs,
              verbose=0, callbacks=[summaries])
    return read_images(log_dir)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_image_summaries_for_every_family(family, x, tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_model(family, latent_dim=2)
    images = fit_with_summaries(model, x, tmp_path / "logs")
    assert set(images) == {("samples", 0), ("reconstructions", 0)}
    assert len(images["samples", 0]) == 4 and images["samples", 0][0].shape == (28, 28, 1)
    pairs = images["reconstructions", 0]
    assert len(pairs) == 3 and pairs[0].shape == (28, 56, 1)  # example | reconstruction
    np.testing.assert_allclose(pairs[0][:, :28, 0] / 255.0, x[0, ..., 0], atol=1 / 255 + 1e-6)
    reconstruction = np.asarray(model.reconstruct(x[:1]))[0, ..., 0]
    np.testing.assert_allclose(pairs[0][:, 28:, 0] / 255.0, reconstruction, atol=1 / 255 + 1e-6)


def test_image_summaries_every_n_epochs_and_the_last(x, tmp_path):
    keras.utils.set_random_seed(0)
    images = fit_with_summaries(tiny_model("VAE", latent_dim=2), x, tmp_path / "logs",
                                epochs=3, every=2)
    assert sorted({step for _, step in images}) == [1, 2]   # epoch 2, and epoch 3 (the last)
    for every in (0, 1.5, True):
        with pytest.raises(ValueError, match="every"):
            callbacks.ImageSummaries(tmp_path, x[:2], every=every)


def test_image_summaries_with_labels_to_the_decoder(x, tmp_path):
    """An AAE with label_mode='decoder' reconstructs only with the examples' labels."""
    keras.utils.set_random_seed(0)
    model = tiny_model("AdversarialAutoencoder", latent_dim=2, label_mode="decoder",
                       num_classes=10)
    labels = load_labels(3)
    images = fit_with_summaries(model, x, tmp_path / "logs", labels=labels)
    assert set(images) == {("samples", 0), ("reconstructions", 0)}
    expected = np.asarray(model.reconstruct(x[:3], labels=labels))
    for pair, image in zip(images["reconstructions", 0], expected):
        np.testing.assert_allclose(pair[:, 28:, 0] / 255.0, image[..., 0], atol=1 / 255 + 1e-6)

    with pytest.raises(ValueError, match=r"ImageSummaries: AdversarialAutoencoder.reconstruct"
                                         r"\(examples\) failed: .*needs labels.*labels=\.\.\."):
        model.fit(x[:3], labels, epochs=1, verbose=0,
                  callbacks=[callbacks.ImageSummaries(tmp_path / "no_labels", x[:3])])
    with pytest.raises(ValueError, match=r"one label per example, shape \(3,\)"):
        callbacks.ImageSummaries(tmp_path, x[:3], labels=labels[:2])


@pytest.mark.parametrize("family, config", [
    ("SemiSupervisedAAE", {}),
    ("AdversarialAutoencoder", {"prior": "mixture_of_gaussians", "label_mode": "discriminator",
                                "num_classes": 10}),
])
def test_image_summaries_sample_models_with_classes_class_by_class(family, config, x, tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_model(family, latent_dim=2, **config)
    y = {"discriminator": {"y": load_labels(8)}}.get(config.get("label_mode"), {})
    model.compile(optimizer="adam", run_eagerly=True)
    model.fit(x[:8], batch_size=8, epochs=1, verbose=0, **y,
              callbacks=[callbacks.ImageSummaries(tmp_path / "logs", x[:3], num_samples=4)])
    samples = read_images(tmp_path / "logs")["samples", 0]
    by_class = np.asarray(model.sample(4, seed=0, labels=np.arange(4) % model.num_classes))
    for image, expected in zip(samples, by_class):
        np.testing.assert_allclose(image[..., 0] / 255.0, expected[..., 0], atol=1 / 255 + 1e-6)
