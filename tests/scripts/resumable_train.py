"""A small VAE fit that can be killed with a real SIGKILL and resumed, run as a subprocess by
tests/test_fault_tolerance.py.

    python resumable_train.py --epochs 4 --backup DIR --out weights.npz \
        [--kill-after-epoch 2] [--epoch-log epochs.txt]

Fits with `keras.callbacks.BackupAndRestore(DIR)`. With `--kill-after-epoch N` the process
SIGKILLs itself at the end of epoch N (1-based), after BackupAndRestore has written its backup
for that epoch. Every epoch actually run is appended (1-based, one per line, fsynced) to
`--epoch-log`, so a test can see where a resumed run started. Data are numpy arrays fitted with
`shuffle=False`; weights are seeded with `keras.utils.set_random_seed` and the training noise
with the model's `seed=`, so two runs differ only through what the backup restores.

The npz holds the final `model.weights` (w000, ...), the optimizer variables (opt000, ...),
the model's SeedGenerator state (`seed_state`) and the loss history of this process's fit.
"""
import argparse
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


class EpochLog(keras.callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_begin(self, epoch, logs=None):
        if self.path:
            with open(self.path, "a") as f:
                f.write(f"{epoch + 1}\n")
                f.flush()
                os.fsync(f.fileno())


class KillAfterEpoch(keras.callbacks.Callback):
    """SIGKILLs this process at the end of epoch `epoch` (1-based): no cleanup, no atexit."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.epoch is not None and epoch + 1 == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--backup", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--kill-after-epoch", type=int, default=None)
    parser.add_argument("--epoch-log", default=None)
    parser.add_argument("--examples", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="VAE")
    args = parser.parse_args()

    x = _common.load_sample(args.examples)
    keras.utils.set_random_seed(0)
    model = _common.tiny_model(args.model, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    # BackupAndRestore refuses an unbuilt model, and a tfvae model is only marked built by
    # fit() itself (PLATFORM_NOTES: "Build the model ... before fit()").
    model.build((None,) + x.shape[1:])
    # Callback order matters: the backup of an epoch is written before the kill at its end.
    callbacks = [keras.callbacks.BackupAndRestore(args.backup), EpochLog(args.epoch_log),
                 KillAfterEpoch(args.kill_after_epoch)]
    history = model.fit(x, batch_size=args.batch_size, epochs=args.epochs, shuffle=False,
                        callbacks=callbacks, verbose=0)
    arrays = {f"w{i:03d}": np.asarray(w) for i, w in enumerate(model.weights)}
    arrays.update({f"opt{i:03d}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)})
    arrays["seed_state"] = np.asarray(model.seed_generator.state)
    arrays["loss"] = np.asarray(history.history.get("loss", []), dtype="float64")
    _common.save_npz(args.out, arrays)


if __name__ == "__main__":
    main()
