"""Keras callbacks for tfvae models: KL warm-up, a NaN guard, TensorBoard image summaries and
the history of every epoch."""
import inspect
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
        """β at the start of `epoch`: the model's β times min(1, epoch / epochs)."""
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
    """Writes samples and reconstructions of fixed examples to TensorBoard (images `samples` and
    `reconstructions`, each example beside its reconstruction), at the end of every `every`-th
    epoch and of the last one.

    Works with every tfvae model: it calls `model.sample(num_samples, seed=seed)` and
    `model.reconstruct(examples)`, and adapts to what a model's methods take, not to its class:

    - a model with classes (a `num_classes` and a `labels` argument to `sample`: an
      `AdversarialAutoencoder` with a `label_mode`, the semi-supervised and
      dimensionality-reduction AAEs) draws its samples class by class, labels 0, 1, ...,
      num_classes - 1, 0, 1, ..., so every class shows;
    - a model whose `reconstruct` needs the examples' labels (an `AdversarialAutoencoder` with
      `label_mode="decoder"`) gets `labels`; without them `fit()` stops at its start with a
      ValueError saying so. Models that do not need them reconstruct without them;
    - a model without `sample` or `reconstruct` (NotImplementedError) writes only the other.

    Args:
        log_dir: the TensorBoard log folder the images are written to.
        examples: `[N, *input_shape]` observations, reconstructed each time (the same ones).
        num_samples: images drawn each time.
        seed: the stateless seed of the samples: the same draws every time, so the images show
            training's progress, not new noise.
        every: log after epochs `every`, 2·`every`, ... (counted from 1) and after the last
            epoch of `fit()`.
        labels: optional int `[N]`, the labels of `examples`, for models whose `reconstruct`
            needs them.
    """

    def __init__(self, log_dir, examples, num_samples=16, seed=0, every=1, labels=None):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"ImageSummaries: expected every, the epochs between summaries, as "
                             f"an int >= 1; got {every!r}.")
        self.examples = np.asarray(examples)
        self.labels = None if labels is None else np.asarray(labels)
        if self.labels is not None and self.labels.shape != (len(self.examples),):
            raise ValueError(f"ImageSummaries: expected one label per example, shape "
                             f"({len(self.examples)},); got labels of shape {self.labels.shape}.")
        self.num_samples, self.seed, self.every = int(num_samples), seed, int(every)
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self._sample_kwargs = self._reconstruct_kwargs = None

    def on_train_begin(self, logs=None):
        # Pick how this model samples and reconstructs, on a few inputs, before any training:
        # a model that cannot be summarized stops fit() now, not after its first epoch.
        self._sample_kwargs = self._choose_sample_kwargs()
        self._reconstruct_kwargs = self._choose_reconstruct_kwargs()

    def on_epoch_end(self, epoch, logs=None):
        last = self.params.get("epochs") if self.params else None
        if (epoch + 1) % self.every and epoch + 1 != last:
            return
        if self._sample_kwargs is None and self._reconstruct_kwargs is None:
            self.on_train_begin()  # called outside fit()
        with self.writer.as_default(step=epoch):
            if self._sample_kwargs is not False:
                samples = self.model.sample(self.num_samples, seed=self.seed,
                                            **self._sample_kwargs)
                tf.summary.image("samples", _displayable(samples), max_outputs=self.num_samples)
            if self._reconstruct_kwargs is not False:
                reconstructions = self.model.reconstruct(self.examples, **self._reconstruct_kwargs)
                pairs = tf.concat([tf.cast(self.examples, tf.float32),
                                   tf.cast(reconstructions, tf.float32)], axis=2)
                tf.summary.image("reconstructions", _displayable(pairs),
                                 max_outputs=len(self.examples))
        self.writer.flush()

    def _choose_sample_kwargs(self):
        """`sample`'s extra arguments: class-by-class labels for a model with classes, none
        otherwise; False for a model that cannot sample."""
        model = self.model
        num_classes = getattr(model, "num_classes", None)
        attempts = [{}]
        if num_classes and _takes_argument(model.sample, "labels"):
            labels = np.arange(self.num_samples, dtype=np.int32) % int(num_classes)
            attempts.insert(0, {"labels": labels})
        for kwargs in attempts:
            try:
                model.sample(self.num_samples, seed=self.seed, **kwargs)
                return kwargs
            except NotImplementedError:
                return False
            except (ValueError, TypeError):
                if kwargs is attempts[-1]:
                    raise
        return False  # pragma: no cover

    def _choose_reconstruct_kwargs(self):
        """`reconstruct`'s extra arguments: none when it works on the examples alone, the
        examples' labels when it needs them; False for a model that cannot reconstruct."""
        model, x = self.model, self.examples[:2]
        try:
            model.reconstruct(x)
            return {}
        except NotImplementedError:
            return False
        except (ValueError, TypeError) as error:
            if self.labels is None or not _takes_argument(model.reconstruct, "labels"):
                hint = (" Pass ImageSummaries(..., labels=...), the examples' labels."
                        if _takes_argument(model.reconstruct, "labels") else "")
                raise ValueError(f"ImageSummaries: {type(model).__name__}.reconstruct(examples) "
                                 f"failed: {error}{hint}") from error
        model.reconstruct(x, labels=self.labels[:2])
        return {"labels": self.labels}


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


def _takes_argument(method, name):
    """Whether `method` takes an argument `name` (or any keyword argument)."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind == p.VAR_KEYWORD for p in parameters)


def _displayable(images):
    """Images `[N, H, W(, C)]` of any float dtype as float32 `[N, H, W, C]` in [0, 1]."""
    images = tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0)
    return images if images.shape.rank == 4 else images[..., None]
