"""The `tfvae` command: train / evaluate / sample / train-prior end to end on the bundled MNIST
sample.

One tiny in-process training run (module fixture) serves every artifact test; usage errors need
no training; one subprocess test runs `python -m tfvae` as a user would.
"""
import contextlib
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tolerances import float32_tolerance, float64_tolerance, layer_partial_sums
from tfvae import cli

TINY = ["--dataset", "sample", "--latent-dim", "4", "--hidden", "32", "--eval-samples", "20",
        "--eval-examples", "50"]
ENDPOINTS = {"serving_default", "encode", "decode", "reconstruct", "sample", "log_likelihood"}
TRAIN_OPTIONS = ["--dataset", "--epochs", "--out", "--batch-size", "--latent-dim", "--num-samples",
                 "--beta", "--likelihood", "--prior", "--network", "--hidden", "--activation",
                 "--learning-rate", "--binarize", "--kl-warmup", "--seed", "--strategy",
                 "--jit-compile", "--steps-per-execution", "--eval-samples", "--eval-examples",
                 "--validation-split", "--validation-fraction", "--train-split", "--verbose",
                 "--latent-dims", "--hidden-units", "--batch-norm", "--no-batch-norm",
                 "--num-codes", "--code-dim", "--filters", "--commitment-cost", "--ema-decay",
                 "--dead-code-restart", "--noise-dim", "--adaptive-contrast",
                 "--discriminator-steps", "--global-dim", "--local-dim",
                 "--code-reconstruction-weight"]
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


def run_main(argv):
    """(exit status, stdout, stderr) of `cli.main(argv)` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def grid_size(num_images, columns, height=28, width=28, padding=2):
    """(width, height) of a `tfvae.plotting.image_grid` image."""
    rows = math.ceil(num_images / columns)
    return columns * (width + padding) + padding, rows * (height + padding) + padding


def png(path):
    return np.asarray(Image.open(path))


def assert_one_error_line(err, code, expected_code, *fragments):
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("tfvae: error: ")]
    assert len(errors) == 1, lines
    assert all(line.startswith("tfvae: ") for line in lines), lines  # warnings at most, no trace
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny training run: (run dir, exit status, stdout, stderr)."""
    out = tmp_path_factory.mktemp("cli") / "tmp"
    code, stdout, stderr = run_main(["train", "vae", "--epochs", "2", "--out", out] + TINY)
    return out, code, stdout, stderr


# --------------------------------------------------------------------------- train artifacts
def test_train_writes_every_artifact_and_a_summary(run):
    out, code, stdout, stderr = run
    assert code == 0, stderr
    for name in ("model.keras", "checkpoint.keras", "metrics.json", "samples.png",
                 "reconstructions.png", "saved_model/saved_model.pb"):
        assert (out / name).is_file(), name
    assert zipfile.is_zipfile(out / "checkpoint.keras")
    assert not (out / "backup").exists()  # BackupAndRestore cleans up after a finished fit
    assert "Traceback" not in stderr
    nll = json.loads((out / "metrics.json").read_text())["nll"]
    assert f"{nll:.3f} nats" in stdout
    for name in ("model.keras", "saved_model", "metrics.json", "samples.png", "reconstructions.png"):
        assert str(out / name) in stdout
    assert "Epoch 2/2" in stdout  # Keras' per-epoch lines (verbose 2 when stdout is no tty)
    # no silent minutes: the test NLL announces itself and shows its progress
    assert "test NLL by importance sampling: k=20 samples on 50 examples" in stdout
    assert "50/50" in stdout.split("test NLL by importance sampling")[1]


def test_model_keras_loads_in_safe_mode_and_reproduces_samples_png(run):
    import keras

    from tfvae import plotting

    out = run[0]
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert type(model).__name__ == "VAE" and model.latent_dim == 4
    assert model.encoder.hidden_units == (32,)
    grid = plotting.image_grid(model.sample(64, seed=0)).astype(np.uint8)  # --seed 0
    assert np.abs(grid.astype(int) - png(out / "samples.png").astype(int)).max() <= 1


def test_metrics_json(run):
    import keras

    out = run[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(metrics["nll"]) and metrics["nll"] > 0
    assert metrics["test"] == {
        "split": "test", "nll": metrics["nll"], "num_samples": 20, "num_examples": 50,
        "binarize": "static", "dequantized": False,
        # float64 on both sides: a few roundings at the size of the value
        "bits_per_dim": pytest.approx(metrics["nll"] / (784 * math.log(2)), rel=0,
                                      abs=float64_tolerance(metrics["nll"] / (784 * math.log(2)))),
        "meaning": "negative log-probability (nats per image) of the binarized test images"}
    # validation: the last 10 % of the training split, never the test split
    assert metrics["validation"] == {"split": "train (held out)", "num_examples": 200}
    assert set(metrics["final"]["train"]) >= {"loss", "elbo", "reconstruction", "kl"}
    assert set(metrics["final"]["validation"]) >= {"loss", "elbo", "reconstruction", "kl"}
    assert len(metrics["history"]["loss"]) == 2 and len(metrics["history"]["val_loss"]) == 2
    assert metrics["final"]["train"]["loss"] == metrics["history"]["loss"][-1]
    assert 0 <= metrics["active_units"] <= 4
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert metrics["num_parameters"] == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert metrics["train_steps"] == 2 * 18  # 2000 sample images less 200 held out, batches of 100
    assert metrics["examples_per_s"] > 0 and metrics["wall_time_s"] >= metrics["fit_seconds"] > 0
    assert metrics["config"]["latent_dim"] == 4
    assert metrics["args"]["epochs"] == 2 and metrics["args"]["binarize"] == "dynamic"


def test_pngs_have_the_expected_size(run):
    out = run[0]
    samples, reconstructions = Image.open(out / "samples.png"), Image.open(out / "reconstructions.png")
    samples.verify()
    assert samples.size == grid_size(cli.NUM_IMAGE_SAMPLES, 8)
    assert reconstructions.size == grid_size(2 * cli.NUM_RECONSTRUCTIONS, 8)
    array = png(out / "samples.png")
    assert array.dtype == np.uint8 and array.std() > 0


def test_saved_model_has_the_endpoint_signatures(run):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(run[0] / "saved_model"))
    assert set(loaded.signatures) >= ENDPOINTS
    samples = loaded.signatures["sample"](num_samples=tf.constant(3), seed=tf.constant([1, 2]))
    assert samples["samples"].shape == (3, 28, 28, 1)
    assert 0.0 <= float(tf.reduce_min(samples["samples"])) <= float(tf.reduce_max(samples["samples"])) <= 1.0


def test_tensorboard_logs(run):
    out, _, _, stderr = run
    events = sorted(p.relative_to(out / "logs").parts[0]
                    for p in (out / "logs").rglob("events.out.tfevents.*")) if HAS_TENSORBOARD else []
    if HAS_TENSORBOARD:
        import tensorflow as tf

        assert {"train", "validation", "images"} <= set(events), events

        def tags(folder):
            return {value.tag for path in (out / "logs" / folder).glob("events.out.tfevents.*")
                    for event in tf.compat.v1.train.summary_iterator(str(path))
                    for value in event.summary.value}

        assert {"epoch_loss", "epoch_kl"} <= tags("train")
        assert "epoch_loss" in tags("validation")
        assert {"samples", "reconstructions"} <= tags("images")
    else:  # TensorFlow >= 2.21 does not install tensorboard: the run says so and goes on
        assert "tfvae: warning: the tensorboard package is not installed" in stderr


# --------------------------------------------------------------------------- evaluate, sample
def test_evaluate_writes_evaluation_json(run):
    out = run[0]
    # --dataset defaults to the one the run was trained on
    code, stdout, stderr = run_main(["evaluate", out, "--num-samples", "2", "--examples", "10"])
    assert code == 0, stderr
    assert json.loads((out / "evaluation.json").read_text())["dataset"] == "sample"
    code, stdout, stderr = run_main(["evaluate", out, "--dataset", "sample", "--num-samples", "10",
                                     "--examples", "40"])
    assert code == 0, stderr
    result = json.loads((out / "evaluation.json").read_text())
    assert math.isfinite(result["nll"]) and result["nll"] > 0
    assert result["num_examples"] == 40 and result["num_samples"] == 10
    assert result["binarize"] == "static"  # as the run was trained (dynamic → fixed draws)
    assert set(result["metrics"]) >= {"loss", "elbo", "reconstruction", "kl"}
    assert all(math.isfinite(v) for v in result["metrics"].values())
    assert 0 <= result["active_units"] <= 4
    assert f"{result['nll']:.3f} nats" in stdout


def test_sample_command_matches_the_run_and_depends_on_the_seed(run, tmp_path):
    out = run[0]
    code, stdout, stderr = run_main(["sample", out, "-n", "64", "--out", tmp_path / "a.png",
                                     "--seed", "0"])
    assert code == 0, stderr
    assert str(tmp_path / "a.png") in stdout
    assert np.abs(png(tmp_path / "a.png").astype(int) - png(out / "samples.png").astype(int)).max() <= 1
    code, _, stderr = run_main(["sample", out, "-n", "9", "--out", tmp_path / "b" / "b.png",
                                "--seed", "1"])
    assert code == 0, stderr
    assert Image.open(tmp_path / "b" / "b.png").size == grid_size(9, 3)


# --------------------------------------------------------------------------- usage and errors
def test_help_documents_every_option_with_its_default(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for option in TRAIN_OPTIONS:
        assert option in text, option
    for model in cli.MODELS:
        assert model in text
    assert "avb " in text and "four_points" in text  # AVB and its toy data set
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"train", "evaluate", "sample", "train-prior"}
    for name, parser in commands.items():
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert "default" in action.help or action.required, (name, action.dest)
    assert cli.main(["evaluate", "--help"]) == 0 and cli.main(["sample", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--split", "--num-samples", "--examples", "-n", "--out", "--seed", "--ais",
                   "--ais-steps", "--ais-chains", "--ais-examples"):
        assert option in text, option
    assert cli.main(["train-prior", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--epochs", "--num-layers", "--filters", "--dataset", "--train-split",
                   "--validation-fraction", "--binarize", "--batch-size", "--learning-rate",
                   "--eval-examples", "--seed", "--verbose"):
        assert option in text, option


@pytest.mark.parametrize("argv, fragment", [
    (["train", "gan", "--dataset", "sample", "--epochs", "1", "--out", "x"], "'gan'"),
    (["train", "vae", "--dataset", "nope", "--epochs", "1", "--out", "x"], "'nope'"),
    (["train", "vae", "--dataset", "sample", "--epochs", "1", "--out", "x", "--bogus"], "--bogus"),
    (["train", "vae", "--dataset", "sample", "--epochs", "0", "--out", "x"], "--epochs"),
    (["train", "vae", "--dataset", "sample", "--epochs", "1"], "--out"),
    (["train", "vae", "--dataset", "sample", "--epochs", "1", "--out", "x", "--hidden", "a,b"],
     "--hidden"),
    (["evaluate"], "DIR"),
    ([], "COMMAND"),
    (["train", "vqvae", "--dataset", "sample", "--epochs", "1", "--out", "x", "--ema-decay", "1"],
     "--ema-decay"),
    (["train-prior", "x"], "--epochs"),
    (["train", "avb", "--dataset", "sample", "--epochs", "1", "--out", "x", "--network", "conv"],
     "--network conv does not apply to avb"),
    (["evaluate", "x", "--ais-steps", "5"], "--ais-steps needs --ais"),
    (["evaluate", "x", "--ais", "--ais-chains", "0"], "--ais-chains"),
])
def test_bad_command_lines_exit_2_with_one_line(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert_one_error_line(captured.err, code, 2, fragment)
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_model_options_the_model_rejects_exit_2(tmp_path):
    code, _, err = run_main(["train", "vae", "--dataset", "sample", "--epochs", "1", "--out",
                             tmp_path / "run", "--prior", "no_such_prior"])
    assert_one_error_line(err, code, 2, "no_such_prior")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["evaluate", "{}", "--dataset", "sample"],
                                     ["sample", "{}", "--out", "x.png"],
                                     ["train-prior", "{}", "--epochs", "1"]])
def test_missing_run_dir_exits_1_with_one_line(tmp_path, command):
    missing = tmp_path / "no_such_run"
    code, out, err = run_main([c.format(missing) for c in command])
    assert_one_error_line(err, code, 1, str(missing))


def test_tpu_strategy_without_a_tpu_exits_1(tmp_path):
    code, _, err = run_main(["train", "vae", "--strategy", "tpu", "--epochs", "1", "--out",
                             tmp_path / "run"] + TINY)
    assert_one_error_line(err, code, 1, "no TPU")


def test_non_finite_loss_exits_1_naming_the_step(tmp_path):
    out = tmp_path / "run"
    code, _, err = run_main(["train", "vae", "--epochs", "1", "--out", out, "--learning-rate",
                             "1e38", "--verbose", "0", "--validation-split", "none"] + TINY)
    assert_one_error_line(err, code, 1, "training stopped: the loss became", "epoch 1")
    # no epoch ended, so no checkpoint exists and the message claims none
    assert "checkpoint" not in err and not (out / "checkpoint.keras").exists()
    assert not (out / "model.keras").exists()


# --------------------------------------------------------------------------- the real command
@pytest.mark.slow
def test_python_m_tfvae_trains_end_to_end(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "tfvae", "train", "iwae", "--dataset", "sample", "--epochs", "1",
         "--out", str(out), "--latent-dim", "2", "--hidden", "8", "--num-samples", "2",
         "--eval-samples", "5", "--eval-examples", "10", "--validation-split", "none"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "test NLL" in result.stdout and "20/20" in result.stdout  # Keras' epoch line
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "iwae" and metrics["config"]["num_samples"] == 2
    assert math.isfinite(metrics["nll"])
    for name in ("model.keras", "saved_model/saved_model.pb", "samples.png", "reconstructions.png"):
        assert (out / name).is_file(), name


def _tfvae_command():
    """The installed `tfvae` console script (what a user types), else `python -m tfvae_cli`."""
    import shutil

    script = Path(sys.executable).parent / "tfvae"
    script = str(script) if script.is_file() else shutil.which("tfvae")
    return [script] if script else [sys.executable, "-m", "tfvae_cli"]


def test_help_and_version_do_not_import_tensorflow():
    probe = ("import sys, tfvae_cli\n"
             "code = tfvae_cli.main(sys.argv[1:])\n"
             "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
             "sys.exit(code)\n")
    for argv in (["--help"], ["--version"], ["train", "--help"], ["evaluate", "--help"],
                 ["train-prior", "--help"]):
        result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
    import tfvae

    result = subprocess.run(_tfvae_command() + ["--version"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == f"tfvae {tfvae.__version__}"


def test_commands_that_load_tensorflow_print_no_startup_noise(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_bytes(b"not a keras file")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = _tfvae_command() + ["sample", str(run_dir), "--out", str(tmp_path / "x.png")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    # one line, ours: no cuInit / cpu_feature_guard / absl lines from TensorFlow's start-up
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if line.startswith("tfvae: error:")]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    # asked for, the messages are there again (whatever this machine's TensorFlow logs)
    loud = subprocess.run(_tfvae_command()[:1] + ["--verbose"] + command[len(_tfvae_command()):],
                          capture_output=True, text=True, env=env, timeout=300)
    assert loud.returncode == 1 and "tfvae: error:" in loud.stderr


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_a_sigkilled_run_resumes_bit_identical_to_an_uninterrupted_one(tmp_path):
    """The real command, SIGKILLed after epoch 2 and run again, ends where an uninterrupted run
    ends: same losses every epoch (shuffled, dynamically binarized tf.data pipeline), same weights."""
    import signal
    import time

    def command(out):
        return _tfvae_command() + [
            "train", "iwae", "--dataset", "sample", "--epochs", "5", "--out", str(out),
            "--batch-size", "20", "--latent-dim", "4", "--hidden", "32", "--num-samples", "2",
            "--eval-samples", "10", "--eval-examples", "20", "--verbose", "2"]

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    whole = subprocess.run(command(tmp_path / "whole"), capture_output=True, text=True, env=env,
                           timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    process = subprocess.Popen(command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env)
    metadata = out / "backup" / "training_metadata.json"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        try:
            if json.loads(metadata.read_text())["epoch"] >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = json.loads(metadata.read_text())["epoch"]
    assert 2 <= done < 5

    resumed = subprocess.run(command(out), capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {out / 'backup'} at epoch {done + 1}" in resumed.stdout
    assert f"Epoch {done + 1}/5" in resumed.stdout and f"Epoch {done}/5" not in resumed.stdout
    expected, got = _metrics(tmp_path / "whole"), _metrics(out)
    assert len(got["history"]["loss"]) == 5  # the whole run, not only the resumed epochs
    assert got["history"] == expected["history"]  # bit-identical, every epoch
    assert got["nll"] == expected["nll"]


def test_gaussian_runs_report_a_density_with_its_meaning_and_bits_per_dim(tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run_main(["train", "vae", "--epochs", "1", "--out", out,
                                     "--likelihood", "gaussian", "--verbose", "0"] + TINY)
    assert code == 0, stderr
    test = _metrics(out)["test"]
    assert test["binarize"] == "none" and test["dequantized"] is True
    assert "density" in test["meaning"] and "can be negative" in test["meaning"]
    dims = 784
    # float64: rounding at the size of the added terms (nll can nearly cancel D·ln 256), in bits
    assert test["bits_per_dim"] == pytest.approx(
        (test["nll"] + dims * math.log(256)) / (dims * math.log(2)), rel=0,
        abs=float64_tolerance(test["nll"] / (dims * math.log(2)), math.log(256) / math.log(2)))
    assert math.isfinite(test["bits_per_dim"])
    assert "bits/dim" in stdout and "can be negative" in stdout


def test_readme_documents_the_run_directory_files():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in ("evaluation.json", "history.json", "metrics.json", "--validation-fraction",
                 "--eval-samples"):
        assert name in readme, name


def test_adversarial_autoencoder_trains_and_reports_its_prior_mismatch(tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run_main(["train", "aae", "--epochs", "1", "--out", out,
                                     "--posterior", "gaussian", "--prior", "mixture_of_gaussians",
                                     "--verbose", "0"] + TINY)
    assert code == 0, stderr
    metrics = _metrics(out)
    assert metrics["nll"] is None and "no density" in metrics["test"]["meaning"]
    assert math.isfinite(metrics["prior_mismatch"]) and "prior mismatch" in stdout
    assert {"discriminator_loss", "generator_loss", "val_discriminator_accuracy"} <= set(
        metrics["history"])
    assert "log_likelihood" not in __import__("tensorflow").saved_model.load(
        str(out / "saved_model")).signatures


@pytest.mark.parametrize("model, option", [("aae", ["--beta", "2"]), ("aae", ["--kl-warmup", "3"]),
                                           ("vae", ["--posterior", "gaussian"])])
def test_options_of_another_family_exit_2(tmp_path, model, option):
    code, out, err = run_main(["train", model, "--epochs", "1", "--out", tmp_path / "run"]
                              + TINY + option)
    assert_one_error_line(err, code, 2, f"{option[0]} does not apply to {model}")
    assert not (tmp_path / "run").exists()


def test_semi_supervised_aae_trains_on_partly_labelled_data(tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run_main(["train", "ssaae", "--epochs", "1", "--out", out,
                                     "--labelled", "20", "--style-dim", "2", "--verbose", "0"]
                                    + TINY)
    assert code == 0, stderr
    metrics = _metrics(out)
    assert 0.0 <= metrics["classification_error"] <= 1.0 and "test error" in stdout
    assert "classification_loss" in metrics["history"]
    assert metrics["config"]["num_classes"] == 10 and metrics["config"]["style_dim"] == 2
    code, _, err = run_main(["train", "vae", "--epochs", "1", "--out", tmp_path / "v",
                             "--labelled", "20"] + TINY)
    assert_one_error_line(err, code, 2, "--labelled does not apply to vae")


# --------------------------------------------------------------------------- ladder and hvae
#: The hierarchical families' tiny run: two stochastic layers, no --latent-dim or --hidden.
HIERARCHICAL_TINY = ["--dataset", "sample", "--latent-dims", "4,2", "--hidden-units", "16,8",
                     "--eval-samples", "5", "--eval-examples", "20", "--validation-split",
                     "none", "--verbose", "0"]


def test_ladder_trains_with_warm_up_evaluates_and_reports_units_per_layer(tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run_main(["train", "ladder", "--epochs", "1", "--out", out,
                                     "--kl-warmup", "2"] + HIERARCHICAL_TINY)
    assert code == 0, stderr
    metrics = _metrics(out)
    assert metrics["model"] == "ladder" and math.isfinite(metrics["nll"]) and metrics["nll"] > 0
    config = metrics["config"]
    assert config["latent_dims"] == [4, 2] and config["hidden_units"] == [16, 8]
    assert config["batch_norm"] is True  # the ladder's default
    assert metrics["latent_dim"] == 2    # the top layer: what sample draws
    per_layer = metrics["active_units_per_layer"]
    assert len(per_layer) == 2 and 0 <= per_layer[0] <= 4 and 0 <= per_layer[1] <= 2
    assert metrics["active_units"] == sum(per_layer)
    assert f"active units     {sum(per_layer)} (per layer, bottom first: " in stdout
    assert {"kl", "kl_1", "kl_2", "kl_weight"} <= set(metrics["history"])
    assert metrics["history"]["kl_weight"] == [0.0]  # warm-up: epoch 1 of 2 trains with β = 0
    import tensorflow as tf

    encode = tf.saved_model.load(str(out / "saved_model")).signatures["encode"]
    assert set(encode.structured_outputs) == {"mean_1", "mean_2"}

    code, stdout, stderr = run_main(["evaluate", out, "--num-samples", "5", "--examples", "30"])
    assert code == 0, stderr
    result = json.loads((out / "evaluation.json").read_text())
    assert math.isfinite(result["nll"]) and result["nll"] > 0 and result["num_examples"] == 30
    assert len(result["active_units_per_layer"]) == 2
    assert result["active_units"] == sum(result["active_units_per_layer"])
    assert {"kl_1", "kl_2"} <= set(result["metrics"])
    assert f"{result['nll']:.3f} nats" in stdout and "per layer, bottom first" in stdout
    code, _, stderr = run_main(["sample", out, "-n", "4", "--out", tmp_path / "s.png"])
    assert code == 0, stderr


@pytest.mark.parametrize("model, options, config", [
    ("hvae", ["--batch-norm", "--num-samples", "2"], {"batch_norm": True, "num_samples": 2}),
    ("hvae", [], {"batch_norm": False, "num_samples": 1}),
    ("ladder", ["--no-batch-norm", "--beta", "0.5"], {"batch_norm": False, "beta": 0.5}),
])
def test_hierarchical_options_reach_the_model(tmp_path, model, options, config):
    out = tmp_path / "run"
    code, _, stderr = run_main(["train", model, "--epochs", "1", "--out", out] + options
                               + HIERARCHICAL_TINY)
    assert code == 0, stderr
    metrics = _metrics(out)
    assert {key: metrics["config"][key] for key in config} == config
    assert ("iwae_bound" in metrics["history"]) == (config.get("num_samples", 1) > 1)
    assert len(metrics["active_units_per_layer"]) == 2


@pytest.mark.parametrize("model, option", [
    # the hierarchical models' options, refused by the other families
    ("vae", ["--latent-dims", "4,2"]), ("aae", ["--hidden-units", "8"]),
    ("vae", ["--batch-norm"]), ("iwae", ["--no-batch-norm"]), ("vae", ["--labelled", "0"]),
    # the other families' options, refused by the hierarchical models
    ("ladder", ["--latent-dim", "4"]), ("hvae", ["--hidden", "32"]),
    ("ladder", ["--network", "conv"]), ("hvae", ["--activation", "relu"]),
    ("ladder", ["--prior", "mixture_of_gaussians"]), ("ladder", ["--posterior", "gaussian"]),
    ("hvae", ["--num-classes", "3"]),
    # the VQ-VAE's options, refused by the other families, and theirs by the VQ-VAE
    ("vae", ["--num-codes", "8"]), ("ladder", ["--code-dim", "4"]), ("aae", ["--filters", "8"]),
    ("iwae", ["--commitment-cost", "1"]), ("ssaae", ["--ema-decay", "0.99"]),
    ("hvae", ["--dead-code-restart", "10"]),
    ("vqvae", ["--latent-dim", "4"]), ("vqvae", ["--hidden", "32"]), ("vqvae", ["--beta", "2"]),
    ("vqvae", ["--kl-warmup", "2"]), ("vqvae", ["--latent-dims", "4,2"]),
    ("vqvae", ["--prior", "mixture_of_gaussians"]), ("vqvae", ["--num-samples", "2"]),
    # AVB's options, refused by the other families, and theirs by AVB
    ("vae", ["--adaptive-contrast"]), ("aae", ["--noise-dim", "3"]),
    ("iwae", ["--discriminator-steps", "2"]), ("ladder", ["--adaptive-contrast"]),
    ("vqvae", ["--noise-dim", "3"]),
    ("avb", ["--beta", "2"]), ("avb", ["--kl-warmup", "2"]), ("avb", ["--num-samples", "2"]),
    ("avb", ["--posterior", "universal"]), ("avb", ["--latent-dims", "4,2"]),
    ("avb", ["--num-codes", "8"]),
    # the IAE's options, refused by the other families, and theirs by the IAE
    ("vae", ["--global-dim", "4"]), ("avb", ["--local-dim", "3"]),
    ("aae", ["--code-reconstruction-weight", "1"]),
    ("iae", ["--latent-dim", "4"]), ("iae", ["--hidden", "32"]), ("iae", ["--beta", "2"]),
    ("iae", ["--noise-dim", "3"]), ("iae", ["--num-classes", "3"]),
])
def test_options_of_other_families_exit_2(tmp_path, model, option):
    sizes = {"ladder": HIERARCHICAL_TINY, "hvae": HIERARCHICAL_TINY, "vqvae": VQ_TINY,
             "iae": IAE_TINY}.get(model, TINY)
    code, _, err = run_main(["train", model, "--epochs", "1", "--out", tmp_path / "run"]
                            + sizes + option)
    assert_one_error_line(err, code, 2, f"{option[0]} does not apply to {model}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, fragment", [
    (["--latent-dims", "4,0"], "--latent-dims"),
    (["--hidden-units", "16,8,4"], "one hidden_units entry per stochastic layer"),
])
def test_bad_layer_sizes_exit_2(tmp_path, option, fragment):
    argv = ["train", "ladder", "--epochs", "1", "--out", tmp_path / "run"] + HIERARCHICAL_TINY
    argv[argv.index(option[0]) + 1] = option[1]
    code, _, err = run_main(argv)
    assert_one_error_line(err, code, 2, fragment)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- vqvae and its prior
#: The VQ-VAE's tiny run: 16 codes of 4 units, networks of 8 channels (a 7x7 grid of codes).
VQ_TINY = ["--dataset", "sample", "--num-codes", "16", "--code-dim", "4", "--filters", "8",
           "--eval-examples", "50", "--validation-split", "none", "--verbose", "0"]


def _test_images(n):
    """The first n test images of the bundled sample as `tfvae train` and `evaluate` binarize
    them for a Bernoulli run with --seed 0 (drawn once)."""
    from tfvae import datasets

    return datasets.load_arrays("sample", "test", binarize="static", seed=0, take=n)[0]


def _perplexity(codes, num_codes):
    """exp(H) of the empirical distribution of `codes` (numpy, float64), and the codes used."""
    counts = np.bincount(np.asarray(codes).ravel(), minlength=num_codes)
    p = counts[counts > 0] / counts.sum()
    return math.exp(-float(np.sum(p * np.log(p)))), int(np.sum(counts > 0))


def test_vqvae_trains_reports_its_codebook_and_its_prior_makes_it_sample(tmp_path):
    """train vqvae (its options reach the model; codebook use, not active units; no NLL before
    a prior), train-prior (the prior is trained on the run's images and saved in model.keras and
    saved_model/: `tfvae sample` and the sample endpoint draw from it), and evaluate (the
    paper's NLL estimate from the prior, and the codebook's use on the evaluated images)."""
    import keras
    import tensorflow as tf

    import tfvae

    out = tmp_path / "run"
    code, stdout, stderr = run_main(["train", "vqvae", "--epochs", "1", "--out", out,
                                     "--ema-decay", "0.99", "--dead-code-restart", "5",
                                     "--commitment-cost", "0.5"] + VQ_TINY)
    assert code == 0, stderr
    metrics = _metrics(out)
    config = metrics["config"]
    assert {key: config[key] for key in ("num_codes", "code_dim", "ema_decay",
                                         "dead_code_restart", "commitment_cost")} == {
        "num_codes": 16, "code_dim": 4, "ema_decay": 0.99, "dead_code_restart": 5,
        "commitment_cost": 0.5}
    assert config["encoder"]["config"]["filters"] == config["decoder"]["config"]["filters"] == 8
    assert metrics["nll"] is None and "train-prior" in stdout
    assert metrics["active_units"] is None and "active units" not in stdout
    assert {"perplexity", "codes_used", "commitment", "codebook"} <= set(metrics["history"])
    # codebook use on the 50 test images, against a count of the codes of the saved model
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert type(model).__name__ == "VQVAE" and model.code_prior is None
    perplexity, used = _perplexity(model.encode(_test_images(50)), 16)
    codebook = metrics["codebook"]
    assert codebook["codes_used_count"] == used and codebook["codes_used"] == used / 16
    # float64 on both paths: H sums at most 16 terms of size <= log 16, and exp turns H's
    # absolute error into a relative one
    assert codebook["perplexity"] == pytest.approx(perplexity, rel=0, abs=float64_tolerance(
        perplexity * math.log(16), ops=32))
    assert f"codebook use     perplexity {perplexity:.2f} of 16 codes, {used} used" in stdout
    encode = tf.saved_model.load(str(out / "saved_model")).signatures["encode"]
    assert encode.structured_outputs["code"].dtype == tf.int32
    uniform_samples = png(out / "samples.png")
    code, _, err = run_main(["evaluate", out, "--examples", "4", "--ais"])  # discrete codes
    assert_one_error_line(err, code, 1, "--ais: VQVAE has no joint density")

    code, stdout, stderr = run_main(["train-prior", out, "--epochs", "2", "--num-layers", "1",
                                     "--filters", "8", "--eval-examples", "20", "--verbose", "0"])
    assert code == 0, stderr
    prior_metrics = json.loads((out / "prior.json").read_text())
    assert prior_metrics["train_examples"] == 2000  # the run held nothing out (--validation-split none)
    assert len(prior_metrics["history"]["loss"]) == 2
    test = prior_metrics["test"]
    assert test["uniform_bits_per_code"] == 4.0 and 0 < test["bits_per_code"]
    assert test["approximate"] is True and math.isfinite(test["nll"])
    assert f"{test['bits_per_code']:.4f} bits per code" in stdout
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    prior = model.code_prior
    assert isinstance(prior, tfvae.PixelCNNPrior) and (prior.num_layers, prior.filters) == (1, 8)
    # the prior's NLL per code on the 20 test images, from the saved prior
    codes = model.encode(_test_images(20))
    nats = -float(np.mean(prior.log_prob(codes))) / 49
    assert test["bits_per_code"] == pytest.approx(nats / math.log(2), rel=0,
                                                  abs=float32_tolerance(nats / math.log(2)))
    # samples.png, `tfvae sample` and the exported sample endpoint draw from the learned prior
    learned = png(out / "samples.png")
    assert not np.array_equal(learned, uniform_samples)
    grid = tfvae.plotting.image_grid(model.sample(64, seed=0)).astype(np.uint8)
    assert np.abs(grid.astype(int) - learned.astype(int)).max() <= 1
    code, _, stderr = run_main(["sample", out, "-n", "64", "--out", tmp_path / "s.png"])
    assert code == 0, stderr
    assert np.abs(png(tmp_path / "s.png").astype(int) - learned.astype(int)).max() <= 1
    sample = tf.saved_model.load(str(out / "saved_model")).signatures["sample"]
    exported = sample(num_samples=tf.constant(3), seed=tf.constant([1, 2]))["samples"]
    np.testing.assert_allclose(exported, model.sample(3, seed=(1, 2)), rtol=0, atol=float32_tolerance(
        layer_partial_sums(model.sample, 3, seed=(1, 2))))

    code, stdout, stderr = run_main(["evaluate", out, "--examples", "40"])
    assert code == 0, stderr
    result = json.loads((out / "evaluation.json").read_text())
    assert result["approximate"] is True and result["num_examples"] == 40
    assert result["active_units"] is None
    # -log p(x|z_q(x)) (the model's own reconstruction metric on the same images) minus
    # log p(z_q(x)) under the prior: sums of 784 pixel terms and 49 codes in float32, in
    # different orders on the two paths (ops=16, as for the exported log-likelihood)
    x = _test_images(40)
    log_prior = float(np.mean(prior.log_prob(model.encode(x))))
    expected = result["metrics"]["reconstruction"] - log_prior
    assert result["nll"] == pytest.approx(expected, rel=0, abs=float32_tolerance(
        result["metrics"]["reconstruction"], log_prior, ops=16))
    perplexity, used = _perplexity(model.encode(x), 16)
    assert result["codebook"]["codes_used_count"] == used
    assert result["metrics"]["codes_used"] == used / 16  # the model's metric over the same images
    assert f"{result['nll']:.3f} nats" in stdout and "the VQ-VAE's estimate" in stdout
    assert "codebook use     perplexity" in stdout


def test_train_prior_refuses_a_run_without_codes(run):
    code, _, err = run_main(["train-prior", run[0], "--epochs", "1"])
    assert_one_error_line(err, code, 1, "holds a VAE", "train-prior is for 'tfvae train vqvae' runs")


# --------------------------------------------------------------------------- avb and AIS
#: AVB's tiny run: a 4-unit code, bodies of 32 units (the discriminator keeps its default).
AVB_TINY = ["--dataset", "sample", "--latent-dim", "4", "--hidden", "32", "--eval-examples", "50",
            "--validation-split", "none", "--verbose", "0"]


def test_avb_trains_with_its_options_and_evaluate_ais_gives_its_nll(tmp_path):
    """train avb (its options reach the model; no importance-sampled NLL, a pointer to --ais
    instead), and evaluate --ais: the AIS figure of `evaluation.ais_log_likelihood` on the
    run's test images, with its settings and time, in evaluation.json and the printed text."""
    import keras

    import tfvae
    from tfvae import evaluation

    out = tmp_path / "run"
    code, stdout, stderr = run_main(["train", "avb", "--epochs", "1", "--out", out,
                                     "--adaptive-contrast", "--noise-dim", "3",
                                     "--discriminator-steps", "2"] + AVB_TINY)
    assert code == 0, stderr
    metrics = _metrics(out)
    assert metrics["model"] == "avb" and metrics["nll"] is None
    assert "--ais" in metrics["test"]["note"] and "tfvae evaluate DIR --ais" in stdout
    config = metrics["config"]
    assert {key: config[key] for key in ("latent_dim", "noise_dim", "adaptive_contrast",
                                         "discriminator_steps")} == {
        "latent_dim": 4, "noise_dim": 3, "adaptive_contrast": True, "discriminator_steps": 2}
    assert {"elbo", "reconstruction", "kl", "discriminator_loss",
            "discriminator_accuracy"} <= set(metrics["history"])
    assert 0 <= metrics["active_units"] <= 4 and math.isfinite(metrics["prior_mismatch"])
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert isinstance(model, tfvae.AVB) and model.adaptive_contrast is True
    assert (model.latent_dim, model.noise_dim, model.discriminator_steps) == (4, 3, 2)

    code, stdout, stderr = run_main(["evaluate", out, "--examples", "20", "--ais",
                                     "--ais-steps", "5", "--ais-chains", "2",
                                     "--ais-examples", "8"])
    assert code == 0, stderr
    result = json.loads((out / "evaluation.json").read_text())
    assert result["nll"] is None and result["num_examples"] == 20  # no importance sampling
    ais = result["ais"]
    assert math.isfinite(ais["nll"]) and ais["nll"] > 0  # log p(x) < 0: binarized images
    assert (ais["num_steps"], ais["num_chains"], ais["num_examples"]) == (5, 2, 8)
    assert ais["seconds"] > 0 and 0 <= ais["acceptance_rate"] <= 1
    assert "annealed importance sampling" in ais["method"] and ais["dequantized"] is False
    assert f"AIS NLL          {ais['nll']:.3f} nats" in stdout
    assert "AIS: 5 steps x 2 chains, 8 examples" in stdout
    assert "elbo" in result["metrics"] and "an estimate, not a bound" in stdout  # T's ELBO
    # the figure is ais_log_likelihood on the first 8 test images as the run binarized them
    expected = -float(np.mean(evaluation.ais_log_likelihood(
        model, _test_images(8), num_steps=5, num_chains=2, seed=0)))
    # float32 sums of 784 pixel terms per code and 5 annealing terms, in the same order; the
    # traced loop may fuse differently between the two calls
    assert ais["nll"] == pytest.approx(expected, rel=0, abs=float32_tolerance(expected, ops=64))


def test_avb_trains_on_four_points_and_evaluate_points_to_ais(tmp_path):
    """The AVB paper's toy set: four images, none held out by the default
    --validation-fraction; evaluate without --ais reports no NLL and says how to get one."""
    out = tmp_path / "run"
    code, stdout, stderr = run_main(["train", "avb", "--dataset", "four_points", "--latent-dim",
                                     "2", "--hidden", "16", "--epochs", "1", "--out", out,
                                     "--verbose", "0"])
    assert code == 0, stderr
    metrics = _metrics(out)
    assert metrics["validation"]["num_examples"] is None
    assert not any(name.startswith("val_") for name in metrics["history"])
    assert metrics["test"]["num_examples"] == 4 and metrics["latent_dim"] == 2
    assert all(math.isfinite(v) for v in metrics["final"]["train"].values())
    code, stdout, stderr = run_main(["evaluate", out])
    assert code == 0, stderr
    result = json.loads((out / "evaluation.json").read_text())
    assert result["nll"] is None and result["ais"] is None and result["num_examples"] == 4
    assert "no density" in result["meaning"] and "--ais" in stdout
    assert all(math.isfinite(v) for v in result["metrics"].values())
    # a fraction that would hold out one of the four images is refused before anything trains
    code, stdout, stderr = run_main(["train", "avb", "--dataset", "four_points", "--latent-dim", "2",
                                     "--epochs", "1", "--out", tmp_path / "held", "--validation-fraction",
                                     "0.25", "--verbose", "0"])
    assert code == 2 and "would hold out 1 of the 4 images" in stderr, stderr
    assert not (tmp_path / "held" / "model.keras").exists()


def test_evaluate_ais_next_to_importance_sampling_for_a_vae(run):
    out = run[0]
    code, stdout, stderr = run_main(["evaluate", out, "--num-samples", "10", "--examples", "6",
                                     "--ais", "--ais-steps", "5", "--ais-chains", "2"])
    assert code == 0, stderr
    result = json.loads((out / "evaluation.json").read_text())
    ais = result["ais"]
    assert math.isfinite(result["nll"]) and math.isfinite(ais["nll"]) and ais["nll"] > 0
    assert ais["num_examples"] == result["num_examples"] == 6  # default: every evaluated one
    assert f"{result['nll']:.3f} nats" in stdout and f"{ais['nll']:.3f} nats" in stdout


# --------------------------------------------------------------------------- iae
#: The IAE's tiny run: a code of 10 units (the digits' classes, when categorical), 2 units of
#: local noise, the default conv networks on the sample's images in batches of 250.
IAE_TINY = ["--dataset", "sample", "--global-dim", "10", "--local-dim", "2", "--batch-size", "250",
            "--validation-split", "none", "--eval-examples", "20", "--verbose", "0"]


def test_iae_trains_semi_supervised_with_its_options(tmp_path):
    """train iae: its options reach the model, --labelled N trains the labelled phase of a
    categorical code on grey levels (no binarization by default), and the run has no NLL."""
    import keras

    import tfvae

    out = tmp_path / "run"
    code, stdout, stderr = run_main(["train", "iae", "--epochs", "1", "--out", out,
                                     "--prior", "categorical", "--labelled", "20",
                                     "--discriminator-steps", "2",
                                     "--code-reconstruction-weight", "0.5"] + IAE_TINY)
    assert code == 0, stderr
    metrics = _metrics(out)
    assert metrics["model"] == "iae" and metrics["nll"] is None
    assert metrics["args"]["binarize"] == "none"
    config = metrics["config"]
    assert {key: config[key] for key in ("global_dim", "local_dim", "discriminator_steps",
                                         "code_reconstruction_weight")} == {
        "global_dim": 10, "local_dim": 2, "discriminator_steps": 2, "code_reconstruction_weight": 0.5}
    assert {"reconstruction_discriminator_loss", "regularization_discriminator_loss",
            "code_reconstruction", "classification_error"} <= set(metrics["history"])
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert isinstance(model, tfvae.ImplicitAutoencoder) and model.categorical
    assert (model.global_dim, model.local_dim) == (10, 2)
    # the labelled phase ran in the steps whose batch held some of the 20 labelled images
    steps = model.optimizer.iterations.numpy()
    assert 0 < model.get_optimizer("classifier_optimizer").iterations.numpy() <= steps


def test_iae_labels_need_a_categorical_code(tmp_path):
    code, _, err = run_main(["train", "iae", "--epochs", "1", "--out", tmp_path / "run",
                             "--labelled", "10"] + IAE_TINY)
    assert_one_error_line(err, code, 2, "--labelled 10", "--prior categorical")
    assert not (tmp_path / "run").exists()


def test_iae_refuses_a_posterior_it_does_not_have(tmp_path):
    code, _, err = run_main(["train", "iae", "--epochs", "1", "--out", tmp_path / "run",
                             "--posterior", "universal"] + IAE_TINY)
    assert_one_error_line(err, code, 2, "cannot build iae", "posterior")
