"""The VQ-VAE's codebook on two logical CPU replicas, run as a subprocess by tests/test_vqvae.py.

    python vqvae_replicas.py --out result.json [--scenarios update fit restart]

The logical devices must be configured before the first TensorFlow op of the process (see
tests/test_distribute.py), which is why this runs in its own process. Each scenario records its
arrays (as lists) or its traceback; the test compares them.

* update: two EMA steps of a `VectorQuantizer` (`nearest_codes` then `update`) on a global batch
  split over two replicas, and the same two steps on one device with the whole batch; plus one
  step on replica 0's half alone (what a replica would compute without the all-reduce).
* fit: one `fit` step (SGD) of a tiny EMA VQ-VAE on 16 images, mirrored and on one device.
* restart: one step with `restart_after=1` where one code is far from every vector: the
  restarted code on two replicas, and the global batch's vectors it must come from.
"""
import argparse
import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

import tfvae  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

DEVICES = ["/cpu:0", "/cpu:1"]
NUM_CODES, CODE_DIM = 8, 3


def mirrored_strategy():
    """A MirroredStrategy on the two logical CPUs with collective keys of its own (see
    mirrored_train.py: each strategy of a process needs its own collective key group)."""
    tf.distribute.MirroredStrategy._collective_key_base += 1000
    return tf.distribute.MirroredStrategy(DEVICES)


def copies(variable):
    """The per-device copies of a (mirrored) variable as numpy arrays."""
    values = getattr(getattr(variable, "value", variable), "values", None)
    return [np.asarray(variable)] if values is None else [v.numpy() for v in values]


def copies_equal(variables):
    return all(all(np.array_equal(c[0], other) for other in c[1:])
               for c in (copies(v) for v in variables))


def state(quantizer):
    names = ["codebook", "steps_unused"] + (["cluster_size", "cluster_sum"] if quantizer.uses_ema else [])
    return {name: np.asarray(getattr(quantizer, name)).tolist() for name in names}


def vectors(seed):
    """A global batch [4, 3, 3, D] (36 vectors), two replicas' halves of [2, 3, 3, D]."""
    rng = np.random.RandomState(seed)
    return (rng.randn(4, 3, 3, CODE_DIM) * 1.5).astype("float32")


def distribute(strategy, z):
    halves = np.split(z, strategy.num_replicas_in_sync)
    return strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(halves[context.replica_id_in_sync_group]))


def quantizer_step(quantizer, restart_after=None):
    def step(z):
        indices, _ = quantizer.nearest_codes(z)
        quantizer.update(z, indices, restart_after=restart_after, seed=tf.constant([3, 4]))
    return tf.function(step)


def scenario_update(epsilon=1e-3):
    rng = np.random.RandomState(0)
    codebook = (rng.randn(NUM_CODES, CODE_DIM) * 1.5).astype("float32")
    codebook[-1] = 50.0  # never the nearest: an unseen code keeps its vector
    batches = [vectors(1), vectors(2)]

    def make():
        quantizer = tfvae.VectorQuantizer(NUM_CODES, CODE_DIM, ema_decay=0.9, epsilon=epsilon)
        quantizer.codebook.assign(codebook)
        return quantizer

    single = make()
    step = quantizer_step(single)
    for z in batches:
        step(tf.constant(z))
    half = make()  # one step on replica 0's half alone: what no all-reduce would give
    quantizer_step(half)(tf.constant(np.split(batches[0], 2)[0]))

    strategy = mirrored_strategy()
    with strategy.scope():
        mirrored = make()
    step = quantizer_step(mirrored)
    for z in batches:
        strategy.run(step, args=(distribute(strategy, z),))
    return {"num_replicas": strategy.num_replicas_in_sync, "batches": [z.tolist() for z in batches],
            "initial_codebook": codebook.tolist(), "single": state(single),
            "mirrored": state(mirrored), "half_batch_first_step": state(half),
            "replica_copies_equal": copies_equal(mirrored.weights)}


def tiny_vqvae():
    return tfvae.VQVAE((28, 28, 1), num_codes=NUM_CODES, code_dim=CODE_DIM, ema_decay=0.9,
                       encoder=tfvae.networks.vq_encoder(filters=8, residual_blocks=1),
                       decoder=tfvae.networks.vq_decoder(filters=8, residual_blocks=1), seed=0)


def scenario_fit(x, learning_rate=0.01):
    keras.utils.set_random_seed(0)
    single = tiny_vqvae()
    single.compile(optimizer=keras.optimizers.SGD(learning_rate))
    initial = single.get_weights()
    strategy = mirrored_strategy()
    with strategy.scope():
        mirrored = tiny_vqvae()
        mirrored.compile(optimizer=keras.optimizers.SGD(learning_rate))
    mirrored.set_weights(initial)
    for model in (single, mirrored):
        model.fit(x, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return {"num_replicas": strategy.num_replicas_in_sync,
            "single": state(single.quantizer), "mirrored": state(mirrored.quantizer),
            "max_trainable_difference": max(
                float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in zip(single.trainable_weights, mirrored.trainable_weights)),
            "max_trainable_weight": max(float(np.max(np.abs(np.asarray(w))))
                                        for w in single.trainable_weights),
            "replica_copies_equal": copies_equal(mirrored.quantizer.weights)
            and copies_equal(mirrored.trainable_weights)}


def scenario_restart():
    rng = np.random.RandomState(5)
    codebook = (rng.randn(NUM_CODES, CODE_DIM)).astype("float32")
    codebook[-1] = 50.0  # unused: restarted after one step
    z = vectors(3)
    results = {"batch": z.tolist(), "initial_codebook": codebook.tolist()}
    for ema in (None, 0.9):
        strategy = mirrored_strategy()
        with strategy.scope():
            quantizer = tfvae.VectorQuantizer(NUM_CODES, CODE_DIM, ema_decay=ema)
            quantizer.codebook.assign(codebook)
        strategy.run(quantizer_step(quantizer, restart_after=1), args=(distribute(strategy, z),))
        results["ema" if ema else "plain"] = {"state": state(quantizer),
                                              "replica_copies_equal": copies_equal(quantizer.weights)}
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--scenarios", nargs="+", default=["update", "fit", "restart"])
    args = parser.parse_args()
    results = {"logical_devices": [d.name for d in tf.config.list_logical_devices("CPU")]}
    for name in args.scenarios:
        try:
            if name == "update":
                results[name] = scenario_update()
            elif name == "fit":
                results[name] = scenario_fit(_common.load_sample(16))
            elif name == "restart":
                results[name] = scenario_restart()
            else:
                raise ValueError(f"unknown scenario {name!r}")
        except Exception:  # recorded for the test to show; the other scenarios still run
            results[name] = {"error": traceback.format_exc()}
    _common.write_json(args.out, results)


if __name__ == "__main__":
    main()
