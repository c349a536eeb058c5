"""Fault tolerance: resuming after a real SIGKILL, stopping cleanly on a NaN loss, and
bitwise-reproducible training on CPU.

The kill-and-resume runs are subprocesses (`tests/scripts/resumable_train.py`): a SIGKILL has
to hit a real process, and each run must start from a fresh interpreter exactly as a restarted
job would. The NaN and reproducibility tests run in-process with tiny models.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import tfvae
from tfvae.callbacks import NonFiniteLossError, StopOnNonFiniteLoss

SCRIPTS = Path(__file__).resolve().parent / "scripts"
REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240
EPOCHS = 4
KILL_AFTER = 2


# ----------------------------------------------------------------- kill and resume
def run_resumable(tmp, name, *args):
    """Start scripts/resumable_train.py; returns (Popen, log path)."""
    log = tmp / f"{name}.log"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with open(log, "w") as log_file:
        proc = subprocess.Popen([sys.executable, str(SCRIPTS / "resumable_train.py"),
                                 "--epochs", str(EPOCHS), *map(str, args)],
                                cwd=tmp, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    return proc, log


def wait_all(runs):
    """Wait for every (proc, log); kill whatever is left on timeout or error."""
    try:
        return [proc.wait(timeout=TIMEOUT_S) for proc, _ in runs]
    finally:
        for proc, _ in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def kill_and_resume(tmp_path_factory):
    """Run 1 is SIGKILLed at the end of epoch 2; run 2 resumes from its backup; an
    uninterrupted run with the same seeds (and its own backup dir) runs beside run 1."""
    tmp = tmp_path_factory.mktemp("resume")
    backup, fresh_backup = tmp / "backup", tmp / "fresh_backup"
    epoch_log = tmp / "epochs.txt"
    killed = run_resumable(tmp, "killed", "--backup", backup, "--out", tmp / "killed.npz",
                           "--kill-after-epoch", KILL_AFTER, "--epoch-log", epoch_log)
    uninterrupted = run_resumable(tmp, "uninterrupted", "--backup", fresh_backup,
                                  "--out", tmp / "uninterrupted.npz")
    killed_code, uninterrupted_code = wait_all([killed, uninterrupted])
    epochs_before_resume = epoch_log.read_text().split() if epoch_log.exists() else []
    backup_after_kill = sorted(p.name for p in backup.iterdir()) if backup.exists() else []
    resumed = run_resumable(tmp, "resumed", "--backup", backup, "--out", tmp / "resumed.npz",
                            "--epoch-log", epoch_log)
    (resumed_code,) = wait_all([resumed])
    return {
        "codes": {"killed": killed_code, "uninterrupted": uninterrupted_code,
                  "resumed": resumed_code},
        "logs": {"killed": killed[1], "uninterrupted": uninterrupted[1], "resumed": resumed[1]},
        "epochs_before_resume": [int(e) for e in epochs_before_resume],
        "epochs_all": [int(e) for e in epoch_log.read_text().split()],
        "backup_after_kill": backup_after_kill,
        "backup": backup, "tmp": tmp,
    }


def load_outputs(run, *names):
    for name in names:
        code = run["codes"][name]
        assert code == 0, f"the {name} run exited with {code}:\n{run['logs'][name].read_text()[-4000:]}"
    return [np.load(run["tmp"] / f"{name}.npz") for name in names]


@pytest.mark.slow
def test_sigkilled_run_resumes_at_the_next_epoch(kill_and_resume):
    run = kill_and_resume
    assert run["codes"]["killed"] == -9, (
        f"expected death by SIGKILL, got {run['codes']['killed']}:\n"
        f"{run['logs']['killed'].read_text()[-4000:]}")
    assert not (run["tmp"] / "killed.npz").exists(), "the killed run got to the end of fit()"
    assert run["epochs_before_resume"] == [1, 2]
    assert "latest.weights.h5" in run["backup_after_kill"], run["backup_after_kill"]
    (resumed,) = load_outputs(run, "resumed")
    # The resumed process ran epochs 3 and 4 only, and fit() cleaned its backup up at the end.
    assert run["epochs_all"] == [1, 2, 3, 4]
    assert resumed["loss"].shape == (EPOCHS - KILL_AFTER,) and np.all(np.isfinite(resumed["loss"]))
    assert not run["backup"].exists()


@pytest.mark.slow
def test_resumed_run_restores_the_optimizer_state(kill_and_resume):
    resumed, uninterrupted = load_outputs(kill_and_resume, "resumed", "uninterrupted")
    # opt000 is the optimizer's iteration count: 128 examples / 32 per batch = 4 steps per epoch.
    assert int(resumed["opt000"]) == int(uninterrupted["opt000"]) == 4 * EPOCHS
    opt_names = sorted(k for k in resumed.files if k.startswith("opt"))
    assert opt_names == sorted(k for k in uninterrupted.files if k.startswith("opt"))


@pytest.mark.slow
def test_resumed_run_ends_with_the_uninterrupted_weights(kill_and_resume):
    """Killed at epoch 2 and resumed, the run ends exactly where an uninterrupted run with the
    same seeds ends: weights, optimizer state and the state of the model's noise stream."""
    resumed, uninterrupted = load_outputs(kill_and_resume, "resumed", "uninterrupted")
    np.testing.assert_array_equal(resumed["seed_state"], uninterrupted["seed_state"])
    names = sorted(k for k in uninterrupted.files if k.startswith(("w", "opt")))
    assert names == sorted(k for k in resumed.files if k.startswith(("w", "opt")))
    # the same computation on the same inputs and machine, split by a kill: bit for bit
    for name in names:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name],
                                      err_msg=f"{name} differs after resuming")
    np.testing.assert_array_equal(resumed["loss"], uninterrupted["loss"][KILL_AFTER:])


# ----------------------------------------------------------------- helpers for in-process tests
@pytest.fixture(scope="module")
def x_small():
    data = np.load(Path(tfvae.__file__).parent / "data" / "mnist_sample.npz")
    return (data["x_train"][:96].astype("float32") / 255.0)[..., None]


def tiny(seed=0, **kwargs):
    return tfvae.VAE(input_shape=(28, 28, 1), latent_dim=4,
                     encoder=tfvae.networks.mlp([16], activation="tanh"),
                     decoder=tfvae.networks.mlp([16], activation="tanh"), seed=seed, **kwargs)


def test_backup_and_restore_accepts_a_freshly_compiled_model(x_small, tmp_path):
    """Every variable of a tfvae model exists after __init__; BackupAndRestore (which checks
    `model.built` in on_train_begin) must not need an explicit build() first."""
    model = tiny()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x_small[:32], batch_size=32, epochs=1, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])
    assert model.built


# ----------------------------------------------------------------- NaN
class PoisonWeight(keras.callbacks.Callback):
    """Writes a NaN into the encoder's first kernel just before global step `at_step` (1-based)."""

    def __init__(self, at_step):
        super().__init__()
        self.at_step = at_step
        self.steps = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.steps += 1
        if self.steps == self.at_step:
            kernel = self.model.encoder.trainable_weights[0]
            value = np.asarray(kernel).copy()
            value.flat[0] = np.nan
            kernel.assign(value)


class ExplodeLearningRate(keras.callbacks.Callback):
    """Sets an absurd learning rate from epoch `epoch` (1-based) on."""

    def __init__(self, epoch, learning_rate=1e30):
        super().__init__()
        self.epoch, self.learning_rate = epoch, learning_rate

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            self.model.optimizer.learning_rate.assign(self.learning_rate)


class RememberEpochWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch + 1] = [np.asarray(w).copy() for w in self.model.weights]


@pytest.mark.parametrize("fault", ["nan_weight", "exploding_learning_rate"])
def test_non_finite_loss_stops_with_the_epoch_and_step_and_a_loadable_checkpoint(
        x_small, tmp_path, fault):
    steps_per_epoch = 3                                       # 96 examples, batches of 32
    path = str(tmp_path / "last_good.keras")
    keras.utils.set_random_seed(0)
    model = tiny()
    # PoisonWeight acts between batches, so it needs every batch's callback; the other fault
    # runs at tfvae's default steps_per_execution (one call for the epoch's 3 steps)
    model.compile(optimizer=keras.optimizers.SGD(1e-3),
                  steps_per_execution=1 if fault == "nan_weight" else None)
    if fault == "nan_weight":
        injector = PoisonWeight(at_step=steps_per_epoch + 2)  # epoch 2, batch 2
    else:
        injector = ExplodeLearningRate(epoch=2)
    remember = RememberEpochWeights()
    callbacks = [injector, StopOnNonFiniteLoss(checkpoint_hint=path),
                 keras.callbacks.ModelCheckpoint(path), remember]
    with pytest.raises(NonFiniteLossError) as raised:
        model.fit(x_small, batch_size=32, epochs=5, shuffle=False, verbose=0, callbacks=callbacks)

    message = str(raised.value)
    match = re.search(r"epoch (\d+), batch (\d+) \(optimizer step (\d+)\)", message)
    assert match, message
    epoch, batch, step = map(int, match.groups())
    assert epoch == 2, message
    assert step == steps_per_epoch + batch, message
    if fault == "nan_weight":
        assert batch == 2, message
    assert path in message, "the error should point at the last good checkpoint"

    # The checkpoint is the state after epoch 1, finite, and loads in safe mode.
    assert list(remember.weights) == [1]
    restored = keras.models.load_model(path, safe_mode=True)
    assert isinstance(restored, tfvae.VAE)
    restored_weights = [np.asarray(w) for w in restored.weights]
    assert all(np.all(np.isfinite(w)) for w in restored_weights)
    assert len(restored_weights) == len(remember.weights[1])
    for saved, expected in zip(restored_weights, remember.weights[1]):
        np.testing.assert_array_equal(saved, expected)
    assert np.all(np.isfinite(restored.reconstruct(x_small[:4])))


def non_finite_report(x, steps_per_execution):
    keras.utils.set_random_seed(0)
    model = tiny()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), steps_per_execution=steps_per_execution)
    with pytest.raises(NonFiniteLossError) as raised:
        model.fit(x, batch_size=32, epochs=5, shuffle=False, verbose=0,
                  callbacks=[ExplodeLearningRate(epoch=2), StopOnNonFiniteLoss()])
    match = re.search(r"epoch (\d+), batch (\d+) \(optimizer step (\d+)\)", str(raised.value))
    assert match, str(raised.value)
    return model, tuple(map(int, match.groups()))


def test_several_steps_per_execution_still_name_the_exact_non_finite_step(x_small):
    """With 3 steps per epoch run in one call (tfvae's default), Keras reports only the third
    step's logs; the step named must still be the one whose loss went non-finite first."""
    model, chunked = non_finite_report(x_small, None)
    assert model.steps_per_execution == tfvae.models.base.DEFAULT_STEPS_PER_EXECUTION > 3
    _, single = non_finite_report(x_small, 1)
    assert chunked == single
    epoch, batch, step = single
    assert epoch == 2 and 1 <= batch < 3, single  # not the last batch of the call: a real check


# ----------------------------------------------------------------- reproducibility
def train_once(global_seed, model_seed, x):
    keras.utils.set_random_seed(global_seed)
    model = tiny(seed=model_seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x, batch_size=32, epochs=2, shuffle=True, verbose=0)
    return [np.asarray(w) for w in model.weights]


@pytest.mark.parametrize("model_seed", [0, None], ids=["model_seed", "global_seed_only"])
def test_same_seeds_give_bitwise_identical_weights_on_cpu(x_small, model_seed):
    """Same seeds, same data: identical weights, bit for bit (shuffle=True included, since
    set_random_seed also seeds the data order). With `seed=None` the model's SeedGenerator
    must draw its seed from the seeded global state too."""
    first = train_once(0, model_seed, x_small)
    second = train_once(0, model_seed, x_small)
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # The seed must matter, or the comparison above proves nothing.
    other = train_once(1, None if model_seed is None else model_seed + 1, x_small)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))
