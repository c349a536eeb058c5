"""tfvae models under tf.distribute: MirroredStrategy on two logical CPUs, global-batch loss
scaling, and MultiWorkerMirroredStrategy with two real worker processes.

Why subprocesses: two logical CPU devices only exist if
`tf.config.set_logical_device_configuration` runs before the first TensorFlow op of the
process, and it cannot be undone. Under pytest (and pytest-xdist, where one worker runs many
test modules in one process) some other module has usually run TensorFlow ops already, so
configuring devices here would either raise ("Virtual devices cannot be modified after being
initialized") or silently change the device topology for every module that runs after this
one. A MultiWorkerMirroredStrategy also has to be created before any other op, and needs one
process per worker anyway. So every multi-device scenario runs in `tests/scripts/*.py`, in a
fresh interpreter, and reports JSON / npz that the tests below assert on. This module itself
imports neither TensorFlow nor tfvae.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tolerances import float32_tolerance  # TF-free too
from scripts._common import FAMILIES  # TF-free: the registry of model families

SCRIPTS = Path(__file__).resolve().parent / "scripts"
REPO = Path(__file__).resolve().parents[1]
#: A bound on a hang, not a speed target: one process trains every family of the registry on two
#: replicas (238 s for all eleven on this 2-core machine while a benchmark ran beside it).
TIMEOUT_S = 600


def script_env(**extra):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def tail(path, chars=4000):
    try:
        return Path(path).read_text(errors="replace")[-chars:]
    except OSError:
        return "<no output>"


@pytest.fixture(scope="module")
def mirrored_results(tmp_path_factory):
    """One run of scripts/mirrored_train.py (all scenarios: one TensorFlow import, not three)."""
    tmp = tmp_path_factory.mktemp("mirrored")
    out, log = tmp / "result.json", tmp / "log.txt"
    with open(log, "w") as log_file:
        proc = subprocess.Popen([sys.executable, str(SCRIPTS / "mirrored_train.py"), "--out", str(out)],
                                cwd=tmp, env=script_env(), stdout=log_file, stderr=subprocess.STDOUT)
        try:
            returncode = proc.wait(timeout=TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert returncode == 0, f"mirrored_train.py exited with {returncode}:\n{tail(log)}"
    results = json.loads(out.read_text())
    assert results["logical_devices"] == ["/device:CPU:0", "/device:CPU:1"]
    return results


def scenario(results, name):
    result = results[name]
    assert "error" not in result, f"scenario {name} failed in the subprocess:\n{result['error']}"
    return result


@pytest.mark.slow
@pytest.mark.parametrize("model", list(FAMILIES))
def test_mirrored_fit_on_two_replicas_learns(mirrored_results, model):
    """fit() with model and compile inside MirroredStrategy(['/cpu:0', '/cpu:1']) on 512 real
    MNIST images: both replicas hold identical copies and the loss goes down every epoch."""
    result = scenario(mirrored_results, f"fit-{model}")
    assert result["num_replicas"] == 2
    assert result["replica_copies_equal"], "the mirrored copies of the weights diverged"
    loss = result["loss"]
    assert len(loss) == 4 and all(np.isfinite(loss)), loss
    assert all(later < earlier for earlier, later in zip(loss, loss[1:])), loss
    # Every family's Bernoulli decoder starts near 540 nats on MNIST; a working fit goes well
    # below that.
    assert loss[-1] < 0.8 * loss[0], loss


@pytest.mark.slow
def test_one_step_on_two_replicas_equals_one_step_on_one(mirrored_results):
    """Global-batch scaling: with a deterministic objective (z = posterior mean, analytic KL)
    and SGD, one step on a 64-example batch split over 2 replicas updates the weights exactly
    as one step on the whole batch on 1 replica. Averaging per replica instead of over the
    global batch would double the update (Keras sums replica gradients)."""
    result = scenario(mirrored_results, "global-batch")
    assert result["num_replicas"] == 2
    assert result["steps"] == [1, 1]
    assert result["replica_copies_equal"]
    # Equal up to float32 rounding: w - lr·g with g summed over 64 examples in one batch or in two
    # halves, so eps times |w| and times Σ_i |lr·∂loss_i/∂w| / 64, which bounds every partial sum
    # of that reduction however it is split (both measured by the script).
    tolerance = float32_tolerance(result["max_weight"], result["update_terms"])
    # The comparison is only meaningful if the step moved the weights far beyond it.
    assert result["max_update"] > 1e-2 > 1000 * tolerance, result
    assert result["max_difference"] <= tolerance, result
    # the loss: a mean of per-example losses, rounded at their size
    single_loss, mirrored_loss = result["loss"]
    assert mirrored_loss == pytest.approx(single_loss, rel=0,
                                          abs=float32_tolerance(result["max_example_loss"]))


@pytest.mark.slow
def test_labelled_phase_on_two_replicas(mirrored_results):
    """The semi-supervised AAE's labelled phase (`TrainingPhase.count_fn`, base.py) under
    MirroredStrategy: with labels split 3 + 1 over the replicas, one step equals one step on one
    device (the loss averages over the 4 labelled examples of the global batch); a batch with no
    label on any replica leaves the weights and the optimizer's velocity and iterations as they
    were (the update is computed and undone by selection, since `apply_gradients` cannot run in
    a tf.cond there); labels on one replica only update both copies alike."""
    result = scenario(mirrored_results, "phase-skip")
    assert result["num_replicas"] == 2
    assert result["iterations_after_labelled_step"] == [1, 1]
    tolerance = float32_tolerance(result["max_weight"], result["update_terms"])
    assert result["max_update"] > 1e-2 > 1000 * tolerance, result
    assert result["max_difference"] <= tolerance, result
    # the label-free step: the other phases stepped, the labelled one changed nothing
    assert result["iterations"] == {"optimizer": 2, "discriminator_optimizer": 2,
                                    "generator_optimizer": 2, "classifier_optimizer": 1}
    assert result["velocity_moved"]  # without the skip, momentum would have moved the encoder
    assert result["optimizer_state_unchanged"] and result["weights_unchanged"], result
    assert result["replica_copies_equal_after_skip"]
    assert result["one_replica_labelled"] == {"iterations": 2, "weights_moved": True,
                                              "replica_copies_equal": True}


@pytest.mark.slow
def test_batch_norm_on_two_replicas_uses_the_global_batch(mirrored_results):
    """Batch norm (LadderVAE, HierarchicalVAE) under MirroredStrategy: one step on a 64-example
    batch split over 2 replicas moves the moving statistics of the deterministic bottom-up
    blocks (functions of x alone) as one step on the whole batch on 1 device, and the mirrored
    copies of every variable, those statistics included, stay identical. Unsynchronized batch
    norm normalizes by each replica's half of the batch and keeps one copy of the statistics per
    replica (found 2e-3 apart after one step)."""
    result = scenario(mirrored_results, "batch-norm")
    assert result["num_replicas"] == 2 and result["num_statistics"] == 8  # 2 blocks × 2 × 2
    assert result["replica_copies_equal"]
    # moving = 0.99 moving + 0.01 batch statistic: rounding at the size of the statistics
    tolerance = float32_tolerance(result["max_value"])
    assert result["max_change"] > 100 * tolerance, result
    assert result["max_difference"] <= tolerance, result


def wait_for_workers(procs, grace_s=30):
    """Return codes of all workers ("timeout" for one still running at the deadline). Once one
    worker fails, the others (likely blocked in a collective) get `grace_s`, not TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        codes = [proc.poll() for proc in procs]
        if all(code is not None for code in codes):
            return codes
        if any(code not in (None, 0) for code in codes):
            deadline = min(deadline, time.monotonic() + grace_s)
        time.sleep(0.2)
    return [proc.poll() if proc.poll() is not None else "timeout" for proc in procs]


def free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("localhost", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# A Keras 3.15 bug under MultiWorkerMirroredStrategy that GenerativeModel._maybe_symbolic_build
# is meant to work around (PLATFORM_NOTES). The workaround only applies to a model marked built,
# and tfvae models stay unbuilt through __init__, compile() and fit(), so (x, y) batches still
# hit it. Seen as this message in the worker's log: the test reports it as a known failure.


@pytest.mark.slow
@pytest.mark.parametrize("batches", ["images", "image_label_pairs"])
def test_multiworker_mirrored_two_processes_end_identical(tmp_path, batches):
    """Two real worker processes on localhost under MultiWorkerMirroredStrategy fit the same
    tiny VAE for 2 epochs; Keras shards the data between them, so they only end with the
    same weights if the gradients were all-reduced. Both must finish, with finite loss.
    `image_label_pairs` feeds (image, label) batches, as a supervised tfds split does; the
    VAE ignores the labels."""
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    extra_args = ["--with-labels"] if batches == "image_label_pairs" else []
    procs, logs, outs = [], [], []
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            outs.append(tmp_path / f"worker{index}.npz")
            logs.append(tmp_path / f"worker{index}.log")
            with open(logs[-1], "w") as log_file:
                procs.append(subprocess.Popen(
                    [sys.executable, str(SCRIPTS / "multiworker_train.py"), "--out", str(outs[-1]),
                     "--epochs", "2", *extra_args],
                    cwd=tmp_path, env=script_env(TF_CONFIG=tf_config),
                    stdout=log_file, stderr=subprocess.STDOUT))
        returncodes = wait_for_workers(procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for index, code in enumerate(returncodes):
        assert code == 0, f"worker {index} exited with {code}:\n{tail(logs[index])}"

    results = [np.load(out) for out in outs]
    names = sorted(key for key in results[0].files if key.startswith("w"))
    assert names and names == sorted(key for key in results[1].files if key.startswith("w"))
    for index, result in enumerate(results):
        assert int(result["task_index"]) == index
        assert int(result["num_replicas"]) == 2
        # 256 examples, global batch 32: 8 steps per epoch, 16 in all, on every worker.
        assert int(result["steps"]) == 16
        assert result["loss"].shape == (2,) and np.all(np.isfinite(result["loss"]))
        assert result["loss"][1] < result["loss"][0]
    moved = max(float(np.max(np.abs(results[0][name] - results[0]["init" + name[1:]])))
                for name in names)
    assert moved > 1e-3, "training did not change the weights"
    for name in names:
        np.testing.assert_array_equal(results[0][name], results[1][name],
                                      err_msg=f"workers disagree on weight {name}")
    np.testing.assert_array_equal(results[0]["loss"], results[1]["loss"])
