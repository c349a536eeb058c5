"""One worker of a MultiWorkerMirroredStrategy fit, run as a subprocess by tests/test_distribute.py.

    TF_CONFIG='{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": I}}' \
        python multiworker_train.py --out worker_I.npz [--epochs 2]

Every worker loads the same numpy data and calls `fit()` with a global batch size; Keras
distributes the dataset and shards it across workers by data (each worker trains on its own
half of every global batch), so the workers only end identical if gradients are all-reduced.
The strategy is created first: it must exist before any other TensorFlow op of the process.
Writes the final weights (in `model.weights` order, as w000, w001, ...) and the loss history.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch size")
    parser.add_argument("--with-labels", action="store_true",
                        help="fit on (image, label) pairs, as from a supervised tfds split")
    parser.add_argument("--build", action="store_true", help="call model.build() before fit()")
    args = parser.parse_args()
    task = json.loads(os.environ["TF_CONFIG"])["task"]

    x = _common.load_sample(args.examples)
    with STRATEGY.scope():
        keras.utils.set_random_seed(0)
        model = _common.tiny_model("VAE", seed=0)
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        if args.build:
            model.build((None,) + x.shape[1:])
    data = {"x": x}
    if args.with_labels:
        data["y"] = _common.load_labels(args.examples)
    initial = [np.asarray(w) for w in model.weights]
    start = time.time()
    history = model.fit(**data, batch_size=args.batch_size, epochs=args.epochs, shuffle=False, verbose=0)
    arrays = {f"w{i:03d}": np.asarray(w) for i, w in enumerate(model.weights)}
    arrays.update({f"init{i:03d}": w for i, w in enumerate(initial)})
    arrays["loss"] = np.asarray(history.history["loss"], dtype="float64").reshape(-1, )
    arrays["steps"] = np.asarray(model.optimizer.iterations.numpy())
    arrays["num_replicas"] = np.asarray(STRATEGY.num_replicas_in_sync)
    arrays["task_index"] = np.asarray(task["index"])
    arrays["seconds"] = np.asarray(time.time() - start)
    _common.save_npz(args.out, arrays)


if __name__ == "__main__":
    main()
