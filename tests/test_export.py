"""SavedModel export (tfvae/export.py): endpoints, names, seeds, a clean loader, saved_model_cli.

The exported models are loaded in a subprocess in which `tfvae` and `tensorflow_probability`
cannot be imported, as TF Serving would load them, and every endpoint is compared with the
model's own methods called with the same seeds.
"""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import tfvae
from tolerances import float32_tolerance, layer_partial_sums, mlp_partial_sums
from scripts._common import DETERMINISTIC_RECONSTRUCTION, FAMILIES, architecture_kwargs
from tfvae import export as export_lib

LATENT = 4
SHAPE = (28, 28, 1)
LL_SAMPLES = 150  # two chunks of 100: the last one is masked
ENDPOINTS = ("encode", "decode", "reconstruct", "sample", "log_likelihood")
INPUTS = {"encode": ["x"], "decode": ["z"], "reconstruct": ["seed", "x"],
          "sample": ["num_samples", "seed"], "log_likelihood": ["num_samples", "seed", "x"]}
OUTPUTS = {"encode": ["mean", "stddev"], "decode": ["x_mean"], "reconstruct": ["reconstruction"],
           "sample": ["samples"], "log_likelihood": ["log_likelihood"]}


FAMILY_NAMES = [name.lower() for name in FAMILIES]
CLASS_NAMES = {name.lower(): name for name in FAMILIES}


def small(cls, **kwargs):
    return cls(input_shape=SHAPE, **architecture_kwargs(cls, LATENT, 32), seed=0, **kwargs)


def binary(n, seed):
    return (np.random.RandomState(seed).rand(n, *SHAPE) > 0.5).astype("float32")


def decoder_tolerance(model, codes):
    """Rounding of decoder outputs computed by the SavedModel's graph and by the eager model: eps
    times the decoder's partial sums on `codes` ([..., latent]), not times the outputs (e.g.
    sigmoids in [0, 1] of the logits, whose slope is at most 1/4)."""
    codes = np.asarray(codes, np.float32)
    return float32_tolerance(mlp_partial_sums(model.decoder, codes.reshape(-1, codes.shape[-1])))


def path_tolerance(method, *args, **kwargs):
    """Rounding of `method(*args, **kwargs)` (a model's encode, decode, reconstruct or sample)
    computed by the SavedModel's graph and by the eager model: eps times the partial sums of the
    Dense and convolution layers it runs on these inputs and seeded draws, not times its
    outputs. Any family: it needs no `encoder` or `decoder` attribute, only the path the method
    takes."""
    return float32_tolerance(layer_partial_sums(method, *args, **kwargs))


def has_integer_codes(model, x):
    """Whether `model.encode` gives integer code indices (a VQ-VAE's grid), not float codes."""
    codes = model.encode(x)
    return not isinstance(codes, (list, tuple)) and tf.as_dtype(codes.dtype).is_integer


def decode_input(model, z):
    """What the decode endpoint gets as `z` for the float codes `z` [N, LATENT]: `z` itself, or
    for a model with integer codes N grids of indices drawn uniformly from its `num_codes`
    (every code, not only those that a barely trained encoder picks)."""
    x = binary(1, 0)
    if not has_integer_codes(model, x):
        return z
    grid = tuple(model.encode(x).shape[1:])
    return np.random.RandomState(4).randint(0, model.num_codes, (len(z),) + grid).astype("int32")


def nearest_code_margin(model, x):
    """(margin, tolerance) of a VQ-VAE's code choice on `x`: the smallest gap, over the grid
    positions, between the distances ‖z_e − e_k‖² to the nearest and the second nearest code
    (float64, from the eager encoder's z_e), and how far rounding can move that gap between the
    SavedModel's graph and the eager model. An encoder output off by at most t per unit moves
    each distance by at most 2t·‖z_e − e_k‖₁ + D·t², both distances of the gap alike; the
    distances themselves round at the size of their terms ‖z_e‖², ‖e_k‖² and 2|z_e·e_k|. While
    the margin exceeds the tolerance, both paths must pick the same codes."""
    z = np.asarray(model.encoder(x), np.float64).reshape(-1, model.code_dim)
    codebook = np.asarray(model.quantizer.codebook, np.float64)
    distances = ((z[:, None, :] - codebook[None]) ** 2).sum(-1)
    nearest_two = np.sort(distances, axis=1)[:, :2]
    t = path_tolerance(model.encoder, x)
    moved = 2 * t * np.abs(z[:, None, :] - codebook[None]).sum(-1).max() + model.code_dim * t ** 2
    terms = [(z ** 2).sum(-1), (codebook ** 2).sum(-1), 2 * np.abs(z @ codebook.T)]
    return float(np.min(nearest_two[:, 1] - nearest_two[:, 0])), 2 * moved + float32_tolerance(*terms)


def encode_outputs(model, x):
    """What the `encode` endpoint returns, from the model's own methods: the posterior's
    parameters (`posterior_parameters`), one mean per stochastic layer (`mean_1 ... mean_L`,
    bottom first, where `encode` returns a list), else `code`."""
    if hasattr(model, "posterior_parameters"):
        return model.posterior_parameters(x)
    codes = model.encode(x)
    if isinstance(codes, (list, tuple)):
        return {f"mean_{i + 1}": mean for i, mean in enumerate(codes)}
    return {"code": codes}


def subprocess_env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.RandomState(1)
    return {"x": binary(5, 2), "x_big": binary(130, 3),  # 130: two batches of 100, one padded
            "z": rng.randn(3, LATENT).astype("float32")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{name: (model, SavedModel path)} for every model family, trained one step."""
    root = tmp_path_factory.mktemp("export")
    # seeded weights: a VQ-VAE's code choice is compared exactly only where no two codes lie
    # within rounding of an encoder output (`nearest_code_margin`); unseeded, a rare draw of the
    # codebook put two codes that close (CI: margin 8.9e-6 against a tolerance of 1.5e-5)
    keras.utils.set_random_seed(0)
    models = {name.lower(): small(getattr(tfvae, name), **config) for name, config in FAMILIES.items()}
    result = {}
    for name, model in models.items():
        model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
        model.fit(binary(8, 0), batch_size=8, epochs=1, verbose=0)
        path = root / name
        assert model.export(path) == path
        result[name] = (model, path)
    return result


CLEAN_LOADER = textwrap.dedent('''
    import importlib.abc, sys

    BLOCKED = ("tfvae", "tensorflow_probability")

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this process")
            return None

    sys.meta_path.insert(0, Blocker())
    for name in BLOCKED:
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f"could import {name}")

    import numpy as np
    import tensorflow as tf

    paths, inputs_file, out_file = sys.argv[1:-2], sys.argv[-2], sys.argv[-1]
    inputs = np.load(inputs_file)
    x, x_big = (tf.constant(inputs[k]) for k in ("x", "x_big"))
    seed = lambda a, b: tf.constant([a, b], tf.int32)
    n = lambda k: tf.constant(k, tf.int32)
    out = {}
    for i, path in enumerate(paths):
        sigs = tf.saved_model.load(path).signatures
        z = tf.constant(inputs[f"z_{i}"])  # float codes, or a VQ-VAE's int32 grids of indices
        # decode inputs beside z (e.g. the semi-supervised AAE's classes y): values in [0, 1)
        # (an implicit decoder's seed: a fixed pair)
        decode_inputs = {key: tf.constant([5, 6], tf.int32) if key == "seed" else tf.constant(
                             np.random.RandomState(0).rand(int(z.shape[0]), *spec.shape.as_list()[1:]),
                             spec.dtype)
                         for key, spec in sigs["decode"].structured_input_signature[1].items()
                         if key != "z"}
        results = {
            "signatures": np.array(sorted(sigs)),
            "encode": sigs["encode"](x=x),
            "serving_default": sigs["serving_default"](x=x),
            "decode": sigs["decode"](z=z, **decode_inputs),
            "decode_inputs": decode_inputs,
            "reconstruct": sigs["reconstruct"](x=x, seed=seed(1, 2)),
            "reconstruct_again": sigs["reconstruct"](x=x, seed=seed(1, 2)),
            "reconstruct_other": sigs["reconstruct"](x=x, seed=seed(3, 2)),
            "sample": sigs["sample"](num_samples=n(6), seed=seed(3, 4)),
            "sample_again": sigs["sample"](num_samples=n(6), seed=seed(3, 4)),
            "sample_other": sigs["sample"](num_samples=n(6), seed=seed(5, 4)),
        }
        if "log_likelihood" in sigs:  # models with a density
            results["log_likelihood"] = sigs["log_likelihood"](x=x, num_samples=n(%d), seed=seed(7, 8))
            results["log_likelihood_big"] = sigs["log_likelihood"](x=x_big, num_samples=n(%d),
                                                                   seed=seed(7, 8))
        for key, value in results.items():
            if isinstance(value, dict):
                for output, tensor in value.items():
                    out[f"{i}/{key}/{output}"] = tensor.numpy()
            else:
                out[f"{i}/{key}"] = value
    leaked = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
    assert not leaked, leaked
    np.savez(out_file, **out)
''' % (LL_SAMPLES, LL_SAMPLES))


@pytest.fixture(scope="module")
def decode_inputs(exported, inputs):
    """{model: what its decode endpoint gets as `z`} (see `decode_input`)."""
    return {name: decode_input(model, inputs["z"]) for name, (model, _) in exported.items()}


@pytest.fixture(scope="module")
def clean_outputs(exported, inputs, decode_inputs, tmp_path_factory):
    """The endpoints' outputs, computed in a process without tfvae and TFP: {model: {key: array}}."""
    root = tmp_path_factory.mktemp("clean")
    names = list(exported)
    np.savez(root / "inputs.npz", **inputs,
             **{f"z_{i}": decode_inputs[name] for i, name in enumerate(names)})
    proc = subprocess.run(
        [sys.executable, "-c", CLEAN_LOADER, *[str(exported[n][1]) for n in names],
         str(root / "inputs.npz"), str(root / "outputs.npz")],
        cwd=root, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = np.load(root / "outputs.npz")
    outputs = {name: {} for name in names}
    for key in data.files:
        index, rest = key.split("/", 1)
        outputs[names[int(index)]][rest] = data[key]
    return outputs


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_clean_process_endpoints_match_the_model(name, exported, clean_outputs, inputs,
                                                 decode_inputs):
    model, _ = exported[name]
    out = clean_outputs[name]
    # a model without a density (has_density = False) has no log_likelihood endpoint
    endpoints = [e for e in ENDPOINTS if e != "log_likelihood" or model.has_density]
    # a model may add endpoints of its own (e.g. classify and cluster)
    names = (set(model.serving_endpoints()) if hasattr(model, "serving_endpoints")
             else set(endpoints))
    assert set(endpoints) <= names
    assert set(out["signatures"]) == names | {"serving_default"}
    x, x_big, z = inputs["x"], inputs["x_big"], decode_inputs[name]

    # encode gives the posterior's parameters where the model has them, else its codes (one
    # mean per layer for the hierarchical models)
    params = encode_outputs(model, x)
    # graph vs eager: eps times the partial sums of the Dense layers each path runs on these very
    # inputs and draws (encoder, decoder, or a hierarchical model's bottom-up and top-down blocks;
    # σ = softplus(ρ) + floor: slope <= 1, sigmoids of the logits: slope <= 1/4)
    encoder_tolerance = path_tolerance(model.encode, x)
    if has_integer_codes(model, x):
        # a VQ-VAE's nearest codes: the same indices on both paths, exactly, since no two codes
        # are nearly as close to an encoder output as rounding could reorder (checked first)
        margin, tolerance = nearest_code_margin(model, x)
        assert margin > tolerance, (margin, tolerance)
        assert out["encode/code"].dtype == np.int32
        encoder_tolerance = 0
    for key, value in params.items():
        np.testing.assert_allclose(out[f"encode/{key}"], value, rtol=0, atol=encoder_tolerance)
        # serving_default is encode
        np.testing.assert_array_equal(out[f"serving_default/{key}"], out[f"encode/{key}"])
    assert {key.split("/")[1] for key in out if key.startswith("encode/")} == set(params)
    # decode's other inputs, if any (the classes y of the semi-supervised AAE)
    extras = {key.split("/", 1)[1]: value for key, value in out.items()
              if key.startswith("decode_inputs/")}
    # x_mean (the mean of p(x|z)), or x, a draw x = g(z, n) of an implicit decoder
    decoded = [key for key in out if key.startswith("decode/")]
    assert decoded in (["decode/x_mean"], ["decode/x"]), decoded
    np.testing.assert_allclose(out[decoded[0]], model.decode(z, **extras), rtol=0,
                               atol=path_tolerance(model.decode, z, **extras))
    np.testing.assert_allclose(out["reconstruct/reconstruction"], model.reconstruct(x, seed=(1, 2)),
                               rtol=0, atol=path_tolerance(model.reconstruct, x, seed=(1, 2)))
    np.testing.assert_allclose(out["sample/samples"], model.sample(6, seed=(3, 4)), rtol=0,
                               atol=path_tolerance(model.sample, 6, seed=(3, 4)))
    assert out["sample/samples"].shape == (6,) + SHAPE
    if not model.has_density:
        return
    expected = model.log_likelihood(x, LL_SAMPLES, chunk_size=export_lib.LOG_LIKELIHOOD_CHUNK_SIZE,
                                    seed=(7, 8))
    # log p(x|z) sums 784 pixel terms of total size ~|log p(x)|, by the XLA-fused kernel here and by
    # plain TF ops in the SavedModel: blocked sums in different orders, ~log2(784) = 10 roundings
    # of partial sums up to |log p(x)| on each side, so ops=16 (not 8)
    np.testing.assert_allclose(out["log_likelihood/log_likelihood"], expected, rtol=0,
                               atol=float32_tolerance(expected, ops=16))
    expected_big = model.log_likelihood(x_big, LL_SAMPLES,
                                        chunk_size=export_lib.LOG_LIKELIHOOD_CHUNK_SIZE, seed=(7, 8))
    np.testing.assert_allclose(out["log_likelihood_big/log_likelihood"], expected_big, rtol=0,
                               atol=float32_tolerance(expected_big, ops=16))


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_clean_process_seeds(name, clean_outputs):
    out = clean_outputs[name]
    np.testing.assert_array_equal(out["sample/samples"], out["sample_again/samples"])
    assert not np.allclose(out["sample/samples"], out["sample_other/samples"])
    np.testing.assert_array_equal(out["reconstruct/reconstruction"],
                                  out["reconstruct_again/reconstruction"])
    if CLASS_NAMES[name] in DETERMINISTIC_RECONSTRUCTION:  # the seed is taken and ignored
        np.testing.assert_array_equal(out["reconstruct/reconstruction"],
                                      out["reconstruct_other/reconstruction"])
    else:  # the seed draws the code
        assert not np.allclose(out["reconstruct/reconstruction"],
                               out["reconstruct_other/reconstruction"])


def test_signatures_have_named_inputs_and_outputs(exported):
    _, path = exported["vae"]
    signatures = tf.saved_model.load(str(path)).signatures
    for name in ENDPOINTS:
        inputs = signatures[name].structured_input_signature[1]
        assert sorted(inputs) == INPUTS[name], name
        assert sorted(signatures[name].structured_outputs) == OUTPUTS[name], name
    x_spec = signatures["encode"].structured_input_signature[1]["x"]
    assert x_spec.shape.as_list() == [None, *SHAPE] and x_spec.dtype == tf.float32
    seed_spec = signatures["sample"].structured_input_signature[1]["seed"]
    assert seed_spec.shape.as_list() == [2] and seed_spec.dtype == tf.int32


def _xla_functions(function_defs):
    return [f.signature.name for f in function_defs if f.attr["_XlaMustCompile"].b]


def test_saved_model_holds_standard_ops_only(exported):
    """Training uses XLA-fused likelihood kernels; the exported graphs must not (any TF runtime
    can serve them). The first check shows the detector finds such a kernel when one is traced."""
    model, path = exported["iwae"]
    traced = tf.function(lambda x: model.log_importance_weights(x, 2, tf.constant([1, 2]))).get_concrete_function(
        tf.TensorSpec([None, *SHAPE], tf.float32))
    assert _xla_functions(traced.graph.as_graph_def().library.function)
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((path / "saved_model.pb").read_bytes())
    library = saved.meta_graphs[0].graph_def.library.function
    assert library and not _xla_functions(library)


def _saved_model_cli():
    for candidate in (Path(sys.executable).parent / "saved_model_cli", shutil.which("saved_model_cli")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.skip("saved_model_cli not found next to the Python executable or on PATH")


def test_saved_model_cli_show_and_run(exported, tmp_path):
    cli = _saved_model_cli()
    model, path = exported["vae"]
    env = subprocess_env()
    show = subprocess.run([cli, "show", "--all", "--dir", str(path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert show.returncode == 0, show.stderr[-3000:]
    for name in ENDPOINTS + ("serving_default",):
        assert f"signature_def['{name}']" in show.stdout
    for name, keys in INPUTS.items():
        for key in keys:
            assert f"inputs['{key}']" in show.stdout
    for name, keys in OUTPUTS.items():
        for key in keys:
            assert f"outputs['{key}']" in show.stdout
    assert "tensorflow/serving/predict" in show.stdout

    # --input_exprs takes Python literals only (saved_model_cli evaluates them "safely").
    run = subprocess.run(
        [cli, "run", "--dir", str(path), "--tag_set", "serve", "--signature_def", "sample",
         "--input_exprs", "num_samples=3;seed=[1,2]", "--outdir", str(tmp_path), "--overwrite"],
        env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "samples.npy"), model.sample(3, seed=(1, 2)), rtol=0,
                               atol=decoder_tolerance(model, model.prior().sample(1000, seed=(0, 0))))


@pytest.fixture(scope="module")
def loaded_vae(exported):
    return tf.saved_model.load(str(exported["vae"][1]))


def test_wrong_shape_names_the_input_and_both_shapes(loaded_vae):
    sigs = loaded_vae.signatures
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"Shape of tensor x \[2,28,28\] is not compatible with expected "
                             r"shape \[\?,28,28,1\]"):
        sigs["encode"](x=tf.zeros([2, 28, 28]))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"Shape of tensor z \[2,5\] is not compatible with expected shape \[\?,4\]"):
        sigs["decode"](z=tf.zeros([2, 5]))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"Shape of tensor seed \[3\] is not compatible with expected shape \[2\]"):
        sigs["sample"](num_samples=tf.constant(2), seed=tf.constant([1, 2, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"Shape of tensor num_samples \[1\] is not compatible with expected "
                             r"shape \[\]"):
        sigs["sample"](num_samples=tf.constant([2]), seed=tf.constant([1, 2]))
    # The restored tf.function (not the signature) refuses it before running.
    with pytest.raises(TypeError, match=r"Can not cast TensorSpec\(shape=\(2, 28, 28\)"):
        loaded_vae.encode(tf.zeros([2, 28, 28]))


def test_wrong_dtype_names_both_dtypes(loaded_vae):
    sigs = loaded_vae.signatures
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"input #0\(zero-based\) was expected to be a float tensor but is a "
                             r"double tensor"):
        sigs["encode"](x=tf.zeros([2, *SHAPE], tf.float64))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"was expected to be a int32 tensor but is a int64 tensor"):
        sigs["sample"](num_samples=tf.constant(2), seed=tf.constant([1, 2], tf.int64))
    with pytest.raises(TypeError, match=r"Can not cast TensorSpec\(.*dtype=tf.float64"):
        loaded_vae.decode(tf.zeros([2, LATENT], tf.float64))


def test_values_outside_the_support_are_refused(loaded_vae):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"VAE: expected x in \[0.0, 1.0\] for its Bernoulli likelihood"):
        loaded_vae.signatures["encode"](x=2.0 * tf.ones([2, *SHAPE]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_samples must be at least 1"):
        loaded_vae.signatures["log_likelihood"](x=tf.zeros([2, *SHAPE]), num_samples=tf.constant(0),
                                                seed=tf.constant([1, 2]))


def test_empty_request(loaded_vae):
    values = loaded_vae.signatures["log_likelihood"](
        x=tf.zeros([0, *SHAPE]), num_samples=tf.constant(5), seed=tf.constant([1, 2]))
    assert values["log_likelihood"].shape == (0,)
    assert loaded_vae.signatures["encode"](x=tf.zeros([0, *SHAPE]))["mean"].shape == (0, LATENT)


def test_fixed_batch_size(tmp_path):
    model = small(tfvae.VAE)
    path = export_lib.export_model(model, tmp_path / "fixed", batch_size=3)
    sigs = tf.saved_model.load(str(path)).signatures
    assert sigs["encode"].structured_input_signature[1]["x"].shape.as_list() == [3, *SHAPE]
    assert sigs["decode"].structured_input_signature[1]["z"].shape.as_list() == [3, LATENT]
    assert sigs["sample"].structured_input_signature[1]["seed"].shape.as_list() == [2]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"Shape of tensor x \[2,28,28,1\] is not compatible with expected "
                             r"shape \[3,28,28,1\]"):
        sigs["encode"](x=tf.zeros([2, *SHAPE]))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        export_lib.export_model(model, tmp_path / "bad", batch_size=0)


class CustomEndpoints(tfvae.VAE):
    """A model that chooses its own endpoints and its serving_default."""

    serving_default = "double_code"

    def serving_endpoints(self):
        x_spec = tf.TensorSpec((None,) + self.data_shape, tf.float32, name="x")

        def double_code(x):
            return {"double": 2.0 * self.encode(x)}

        def prior_mean(x):  # a lone tensor is named after its endpoint
            return tf.zeros([tf.shape(x)[0], self.latent_dim])

        return {"prior_mean": (prior_mean, [x_spec]), "double_code": (double_code, [x_spec])}


def test_models_choose_their_endpoints_and_default(tmp_path):
    model = small(CustomEndpoints)
    path = export_lib.export_model(model, tmp_path / "custom", batch_size=2)
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"double_code", "prior_mean", "serving_default"}
    x = binary(2, 5)
    np.testing.assert_allclose(loaded.signatures["serving_default"](x=tf.constant(x))["double"],
                               2.0 * model.encode(x), rtol=0,
                               atol=2.0 * float32_tolerance(mlp_partial_sums(model.encoder, x)))
    out = loaded.signatures["prior_mean"](x=tf.constant(x))
    assert list(out) == ["prior_mean"] and out["prior_mean"].shape == (2, LATENT)
    assert loaded.signatures["prior_mean"].structured_input_signature[1]["x"].shape[0] == 2

    model.serving_default = "nope"
    with pytest.raises(ValueError, match="serving_default is 'nope'"):
        export_lib.export_model(model, tmp_path / "bad")



def test_code_spec_is_read_from_encode_without_latent_dim():
    """decode's input takes the shape and dtype of what encode returns (a VQ-VAE's int codes)."""
    class CodesOnly:
        latent_dim = None

        def encode(self, x):
            return tf.zeros([tf.shape(x)[0], 7, 3], tf.int32)

    spec = tf.TensorSpec((None,) + SHAPE, tf.float32, name="x")
    code = export_lib._code_spec(CodesOnly(), spec, 5)
    assert (tuple(code.shape), code.dtype, code.name) == ((5, 7, 3), tf.int32, "z")


@pytest.mark.parametrize("num_samples", [0, -3])
def test_sample_refuses_fewer_than_one_sample(loaded_vae, num_samples):
    """As `model.sample` does: the endpoint used to return an empty batch for 0. The status text
    (what TF Serving returns) starts with the message; Python adds TensorFlow's header above it."""
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        loaded_vae.signatures["sample"](num_samples=tf.constant(num_samples), seed=tf.constant([1, 2]))
    lines = info.value.message.splitlines()
    refusal = [line for line in lines if line.startswith("assertion failed:")]
    assert refusal == [f"assertion failed: [sample: num_samples must be at least 1; got] "
                       f"[{num_samples}]"], lines
