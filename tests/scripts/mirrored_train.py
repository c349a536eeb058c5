"""Multi-replica scenarios on two logical CPU devices, run as a subprocess by tests/test_distribute.py.

    python mirrored_train.py --out result.json [--scenarios fit-VAE fit-IWAE global-batch phase-skip batch-norm]

The logical devices must be configured before the first TensorFlow op of the process, which is
why this runs in its own process. Each scenario runs in a try block and records either its
measurements or its traceback, so one broken scenario fails one test, not all of them.
"""
import argparse
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import tfvae  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

tfd = tfp.distributions
DEVICES = ["/cpu:0", "/cpu:1"]


class DeterministicVAE(tfvae.VAE):
    """Test double: the VAE objective with z = E_q[z] and the analytic KL, so one train step
    has no randomness and a 1-replica step and a 2-replica step can be compared exactly.
    The rest (train_step, the loss scaling, the trackers) is the real GenerativeModel code."""

    def compute_losses(self, x, y=None, seed=None, training=False):
        q = self.posterior(x)
        log_px_given_z = self.likelihood(q.mean()[None]).log_prob(x)[0]   # [B]
        kl = tfd.kl_divergence(q, self.prior())                            # [B]
        loss = kl - log_px_given_z
        return loss, {"loss": loss}


def mirrored_strategy():
    """A MirroredStrategy on the two logical CPUs with collective keys of its own. Every
    MirroredStrategy of a process numbers its all-reduces from the same keys, and the runtime
    keeps the shape a key was first used with: a second strategy whose all-reduces differ in
    shape (another family's gradients) fails with "Shape mismatch in the collective instance".
    `_collective_key_base` (TensorFlow: "only set this in tests") gives each its own group."""
    tf.distribute.MirroredStrategy._collective_key_base += 1000
    return tf.distribute.MirroredStrategy(DEVICES)


def replica_copies_equal(model):
    """Whether every variable is mirrored on both devices, with identical copies: the weights,
    and the non-trainable state (batch norm's moving statistics, the seed state, kl_weight)."""
    for variable in model.variables:
        values = getattr(variable.value, "values", None)
        if values is None or len(values) != len(DEVICES):
            return False
        first = values[0].numpy()
        if not all(np.array_equal(first, v.numpy()) for v in values[1:]):
            return False
    return True


def scenario_fit(model_name, x, epochs=4):
    strategy = mirrored_strategy()
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = _common.tiny_model(model_name, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
    start = time.time()
    history = model.fit(x, batch_size=64, epochs=epochs, shuffle=False, verbose=0)
    return {"num_replicas": strategy.num_replicas_in_sync,
            "loss": [float(v) for v in history.history["loss"]],
            "replica_copies_equal": replica_copies_equal(model),
            "seconds": time.time() - start}


def one_step(model, x, batch_size):
    history = model.fit(x, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return float(history.history["loss"][0]), [np.asarray(w) for w in model.trainable_weights]


def step_magnitudes(model, x, learning_rate):
    """The magnitudes one SGD step adds and subtracts, to size the comparison's tolerance: the
    terms lr·∂loss_i/∂w / B that the gradient sums over the batch (their absolute sum bounds every
    partial sum, however the batch is split over replicas), and the per-example losses."""
    sums = [np.zeros(w.shape) for w in model.trainable_weights]
    losses = []
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            loss, _ = model.compute_losses(x[i:i + 1])
        for total, grad in zip(sums, tape.gradient(loss, model.trainable_weights)):
            total += np.abs(np.asarray(grad, np.float64))
        losses.append(abs(float(loss[0])))
    return {"update_terms": learning_rate / len(x) * max(float(np.max(s)) for s in sums),
            "max_example_loss": max(losses)}


def scenario_global_batch(x, batch_size=64, learning_rate=0.05):
    x = x[:batch_size]
    keras.utils.set_random_seed(0)
    single = _common.tiny_model(DeterministicVAE, seed=0)
    single.compile(optimizer=keras.optimizers.SGD(learning_rate))
    initial = single.get_weights()
    initial_trainable = [np.asarray(w) for w in single.trainable_weights]

    strategy = mirrored_strategy()
    with strategy.scope():
        mirrored = _common.tiny_model(DeterministicVAE, seed=1)
        mirrored.compile(optimizer=keras.optimizers.SGD(learning_rate))
    mirrored.set_weights(initial)
    magnitudes = step_magnitudes(single, x, learning_rate)

    single_loss, single_weights = one_step(single, x, batch_size)
    mirrored_loss, mirrored_weights = one_step(mirrored, x, batch_size)
    return {
        "num_replicas": strategy.num_replicas_in_sync,
        "steps": [int(np.asarray(m.optimizer.iterations.numpy())) for m in (single, mirrored)],
        "loss": [single_loss, mirrored_loss],
        # How far one step moved the weights: the comparison below is only sharp if this is
        # much larger than its tolerance.
        "max_update": max(float(np.max(np.abs(a - b)))
                          for a, b in zip(single_weights, initial_trainable)),
        "max_difference": max(float(np.max(np.abs(a - b)))
                              for a, b in zip(single_weights, mirrored_weights)),
        # What the tolerance of that comparison scales with (see step_magnitudes).
        "max_weight": max(float(np.max(np.abs(w))) for w in initial_trainable + single_weights),
        **magnitudes,
        "replica_copies_equal": replica_copies_equal(mirrored),
    }


def moving_statistics(model, prefix):
    """{path: value} of the batch-norm moving statistics of the layers under `prefix`."""
    return {v.path: np.asarray(v) for v in model.non_trainable_variables
            if v.path.startswith(prefix) and "moving_" in v.path}


def scenario_batch_norm(x, batch_size=64):
    """Batch norm on two replicas: one step of a LadderVAE (batch norm on) on a 64-example batch
    split over 2 replicas moves the moving statistics of its bottom-up blocks, which see only x
    (no noise), as one step on the whole batch on 1 device does: the batch statistics are the
    global batch's, not each replica's half. Reports the statistics, the largest difference and
    whether the mirrored copies of every variable are identical."""
    x = x[:batch_size]
    keras.utils.set_random_seed(0)
    single = _common.tiny_model("LadderVAE", seed=0)
    single.compile(optimizer=keras.optimizers.SGD(0.01))
    initial = single.get_weights()
    before = moving_statistics(single, "bottom_up")
    strategy = mirrored_strategy()
    with strategy.scope():
        mirrored = _common.tiny_model("LadderVAE", seed=1)
        mirrored.compile(optimizer=keras.optimizers.SGD(0.01))
    mirrored.set_weights(initial)
    for model in (single, mirrored):
        model.fit(x, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    after_single, after_mirrored = (moving_statistics(m, "bottom_up") for m in (single, mirrored))
    return {
        "num_replicas": strategy.num_replicas_in_sync,
        "num_statistics": len(after_single),
        "max_change": max(float(np.max(np.abs(after_single[k] - before[k]))) for k in before),
        "max_difference": max(float(np.max(np.abs(after_single[k] - after_mirrored[k])))
                              for k in after_single),
        "max_value": max(float(np.max(np.abs(v))) for v in after_single.values()),
        "replica_copies_equal": replica_copies_equal(mirrored),
    }


def optimizer_state(optimizer):
    return [np.asarray(v) for v in optimizer.variables]


def scenario_phase_skip(x, labels, learning_rate=0.5):
    """The semi-supervised AAE's labelled phase (a `TrainingPhase` with a `count_fn`) on two
    replicas. Only that phase moves weights (the others have SGD(0)); its optimizer is SGD with
    momentum, so it has a slot (the velocity) that a label-free step must leave alone.

    Step 1, labels on both replicas but unequally (rows 0-2 and 9 of a 16-example batch: the
    replicas take rows 0-7 and 8-15): the update must equal one step on one device, which
    averages over the 4 labelled examples (averaging per replica would weight row 9 three
    times as much). Step 2, no label on any replica: nothing may change, neither the weights
    nor the optimizer's velocity and iterations. Step 3, labels on one replica only: the phase
    runs on both (it must: a replica that skipped would leave its copy behind)."""
    x = x[:16]
    partial = np.full(16, -1, "int64")
    partial[[0, 1, 2, 9]] = labels[[0, 1, 2, 9]] % _common.FAMILIES["SemiSupervisedAAE"]["num_classes"]
    unlabelled = np.full(16, -1, "int64")

    def build(seed):
        model = _common.tiny_model("SemiSupervisedAAE", seed=seed)
        model.compile(optimizer=keras.optimizers.SGD(0.0),
                      discriminator_optimizer=keras.optimizers.SGD(0.0),
                      generator_optimizer=keras.optimizers.SGD(0.0),
                      classifier_optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9))
        return model

    keras.utils.set_random_seed(0)
    single = build(0)
    initial = single.get_weights()
    initial_trainable = [np.asarray(w) for w in single.trainable_weights]
    strategy = mirrored_strategy()
    with strategy.scope():
        mirrored = build(1)
    mirrored.set_weights(initial)

    # the tolerance's magnitudes: lr/4 · Σ_i |∂CE_i/∂w| over the 4 labelled examples
    sums = [np.zeros(w.shape) for w in single.encoder.trainable_weights]
    for i in (0, 1, 2, 9):
        with tf.GradientTape() as tape:
            loss, _ = single.classification_losses(tf.constant(x[i:i + 1]),
                                                   tf.constant(partial[i:i + 1], tf.int32))
        for total, grad in zip(sums, tape.gradient(loss, single.encoder.trainable_weights)):
            total += np.abs(np.asarray(grad, np.float64))

    for model in (single, mirrored):
        model.fit(x, partial, batch_size=16, epochs=1, shuffle=False, verbose=0)
    single_weights = [np.asarray(w) for w in single.trainable_weights]
    mirrored_weights = [np.asarray(w) for w in mirrored.trainable_weights]
    classifier = mirrored.get_optimizer("classifier_optimizer")
    iterations_after_labelled_step = [
        int(single.get_optimizer("classifier_optimizer").iterations.numpy()),
        int(classifier.iterations.numpy())]
    velocity_moved = any(np.any(np.asarray(m) != 0) for m in classifier.momentums)
    before_state = optimizer_state(classifier)
    before_weights = [np.asarray(w) for w in mirrored.weights if "seed_generator" not in w.path]

    mirrored.fit(x, unlabelled, batch_size=16, epochs=1, shuffle=False, verbose=0)
    after_state = optimizer_state(classifier)
    after_weights = [np.asarray(w) for w in mirrored.weights if "seed_generator" not in w.path]
    copies_equal_after_skip = replica_copies_equal(mirrored) and all(
        replica_copies_equal_variables(classifier.variables))
    iterations_after_skip = {name: int(mirrored.get_optimizer(name).iterations.numpy())
                             for name in mirrored.optimizer_names}

    # step 3, labels on one replica only (rows 0-2): the other replica's count is 0, but the
    # phase runs on both (the count is all-reduced), so the mirrored copies stay identical
    one_replica = np.where(np.arange(16) < 3, partial, -1)
    mirrored.fit(x, one_replica, batch_size=16, epochs=1, shuffle=False, verbose=0)
    third_weights = [np.asarray(w) for w in mirrored.weights if "seed_generator" not in w.path]
    return {
        "num_replicas": strategy.num_replicas_in_sync,
        "max_update": max(float(np.max(np.abs(a - b)))
                          for a, b in zip(single_weights, initial_trainable)),
        "max_difference": max(float(np.max(np.abs(a - b)))
                              for a, b in zip(single_weights, mirrored_weights)),
        "max_weight": max(float(np.max(np.abs(w))) for w in initial_trainable + single_weights),
        "update_terms": learning_rate / 4 * max(float(np.max(s)) for s in sums),
        "iterations_after_labelled_step": iterations_after_labelled_step,
        "iterations": iterations_after_skip,
        "velocity_moved": velocity_moved,
        "optimizer_state_unchanged": all(np.array_equal(a, b)
                                         for a, b in zip(before_state, after_state)),
        "weights_unchanged": all(np.array_equal(a, b) for a, b in zip(before_weights, after_weights)),
        "replica_copies_equal_after_skip": copies_equal_after_skip,
        "one_replica_labelled": {
            "iterations": int(classifier.iterations.numpy()),
            "weights_moved": any(not np.array_equal(a, b)
                                 for a, b in zip(after_weights, third_weights)),
            "replica_copies_equal": replica_copies_equal(mirrored)
            and all(replica_copies_equal_variables(classifier.variables)),
        },
    }


def replica_copies_equal_variables(variables):
    """Per variable: whether its copies on the two devices are identical (True off-strategy)."""
    for variable in variables:
        values = getattr(getattr(variable, "value", variable), "values", None)
        yield values is None or all(np.array_equal(values[0].numpy(), v.numpy()) for v in values[1:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--scenarios", nargs="+",
                        default=[f"fit-{name}" for name in _common.FAMILIES]
                        + ["global-batch", "phase-skip", "batch-norm"])
    args = parser.parse_args()
    x = _common.load_sample(512)
    labels = _common.load_labels(512)
    results = {"logical_devices": [d.name for d in tf.config.list_logical_devices("CPU")]}
    for name in args.scenarios:
        try:
            if name.startswith("fit-"):
                results[name] = scenario_fit(name[len("fit-"):], x)
            elif name == "global-batch":
                results[name] = scenario_global_batch(x)
            elif name == "phase-skip":
                results[name] = scenario_phase_skip(x, labels)
            elif name == "batch-norm":
                results[name] = scenario_batch_norm(x)
            else:
                raise ValueError(f"unknown scenario {name!r}")
        except Exception:  # recorded for the test to show; the other scenarios still run
            results[name] = {"error": traceback.format_exc()}
    _common.write_json(args.out, results)


if __name__ == "__main__":
    main()
