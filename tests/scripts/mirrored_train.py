"""Multi-replica scenarios on two logical CPU devices, run as a subprocess by tests/test_distribute.py.

    python mirrored_train.py --out result.json [--scenarios fit-VAE fit-IWAE global-batch]

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


def replica_copies_equal(model):
    """Whether every variable is mirrored on both devices, with identical copies."""
    for variable in model.trainable_variables:
        values = getattr(variable.value, "values", None)
        if values is None or len(values) != len(DEVICES):
            return False
        first = values[0].numpy()
        if not all(np.array_equal(first, v.numpy()) for v in values[1:]):
            return False
    return True


def scenario_fit(model_name, x, epochs=4):
    strategy = tf.distribute.MirroredStrategy(DEVICES)
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

    strategy = tf.distribute.MirroredStrategy(DEVICES)
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--scenarios", nargs="+",
                        default=[f"fit-{name}" for name in _common.FAMILIES] + ["global-batch"])
    args = parser.parse_args()
    x = _common.load_sample(512)
    results = {"logical_devices": [d.name for d in tf.config.list_logical_devices("CPU")]}
    for name in args.scenarios:
        try:
            if name.startswith("fit-"):
                results[name] = scenario_fit(name[len("fit-"):], x)
            elif name == "global-batch":
                results[name] = scenario_global_batch(x)
            else:
                raise ValueError(f"unknown scenario {name!r}")
        except Exception:  # recorded for the test to show; the other scenarios still run
            results[name] = {"error": traceback.format_exc()}
    _common.write_json(args.out, results)


if __name__ == "__main__":
    main()
