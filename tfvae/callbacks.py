"""Keras callbacks for tfvae models: KL warm-up, a NaN guard, and TensorBoard image summaries."""
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

__all__ = ["KLWarmup", "NonFiniteLossError", "StopOnNonFiniteLoss", "ImageSummaries",
           "EpochHistory"]


class KLWarmup(keras.callbacks.Callback):
    """Raises the KL weight linearly from 0 to the model's β over `epochs` epochs.

    Sønderby et al. (2016), Section 2.3 ("warm-up"): epoch e (from 0) trains with weight
    β·min(1, e / epochs), so the first epoch is a plain autoencoder and epoch `epochs` onwards
    optimizes the full bound. The model must have `kl_weight` (a variable) and `beta`.
    """

    def __init__(self, epochs):
        super().__init__()
        if epochs < 1:
            raise ValueError(f"warm-up epochs must be >= 1; got {epochs}.")
        self.epochs = int(epochs)

    def weight_at(self, epoch):
        return self.model.beta * min(1.0, epoch / self.epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.kl_weight.assign(self.weight_at(epoch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["kl_weight"] = float(np.asarray(self.model.kl_weight))


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit()` at the first non-finite loss with an error naming the epoch and step (the
    exact one for tfvae models, also when `steps_per_execution` runs several steps per call).

    It raises inside the batch, before `on_epoch_end`, so checkpoint callbacks never write the
    broken weights: the last checkpoint written stays the last good state.
    """

    def __init__(self, checkpoint_hint=None):
        super().__init__()
        self.checkpoint_hint = checkpoint_hint
        self.epoch, self.epoch_start = 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_start = int(np.asarray(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(np.asarray(loss).ravel()[0])):
            step = int(np.asarray(self.model.optimizer.iterations))
            # With steps_per_execution N the logs come every N-th batch; a tfvae model records
            # the step whose loss first went non-finite (1-based below, as `iterations` after it).
            record = getattr(self.model, "first_nonfinite_step", None)
            first = int(np.asarray(record.result())) if record is not None else -1
            if first >= 0:
                step, batch = first + 1, first - self.epoch_start
            hint = (f" The last good checkpoint is {self.checkpoint_hint}."
                    if self.checkpoint_hint and os.path.exists(self.checkpoint_hint) else "")
            raise NonFiniteLossError(
                f"training stopped: the loss became {float(np.asarray(loss).ravel()[0])} at epoch "
                f"{self.epoch + 1}, batch {batch + 1} (optimizer step {step}).{hint}")


class ImageSummaries(keras.callbacks.Callback):
    """Writes samples and reconstructions of fixed examples to TensorBoard after each epoch."""

    def __init__(self, log_dir, examples, num_samples=16, seed=0):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self.examples = np.asarray(examples)
        self.num_samples, self.seed = num_samples, seed

    def on_epoch_end(self, epoch, logs=None):
        samples = self.model.sample(self.num_samples, seed=self.seed)
        reconstructions = self.model.reconstruct(self.examples)
        with self.writer.as_default(step=epoch):
            tf.summary.image("samples", _displayable(samples), max_outputs=self.num_samples)
            tf.summary.image("reconstructions", _displayable(
                tf.concat([self.examples, reconstructions], axis=2)), max_outputs=len(self.examples))
        self.writer.flush()


class EpochHistory(keras.callbacks.Callback):
    """Keeps every epoch's logs in a JSON file, `{metric: [value per epoch]}`, across restarts.

    The file is rewritten atomically after each epoch. A `fit()` resumed at epoch e (by
    `keras.callbacks.BackupAndRestore`, listed before this callback) keeps the file's first e
    epochs and continues from there, so the file always holds the whole run, while Keras'
    own `History` holds only the epochs of the last `fit()` call.
    """

    def __init__(self, path):
        super().__init__()
        self.path = str(path)
        self.history = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.history is None:  # the first epoch of this fit(): the one it starts (or resumes) at
            previous = {}
            if os.path.exists(self.path):
                with open(self.path) as f:
                    previous = json.load(f)
            self.history = {name: values[:epoch] for name, values in previous.items()}

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            values = self.history.setdefault(name, [])
            values.extend([None] * (epoch - len(values)))  # a metric that appeared late
            values.append(float(np.asarray(value, dtype="float64").ravel()[0]))
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.history, f)
        os.replace(tmp, self.path)


def _displayable(images):
    images = tf.clip_by_value(tf.convert_to_tensor(images, tf.float32), 0.0, 1.0)
    return images if images.shape.rank == 4 else images[..., None]
