"""`GenerativeModel`: the one base class every tfvae model stands on.

What lives here, once for every family:
- the model contract: `prior()`, `posterior(x)`, `likelihood(z)` (TFP distributions), and
  `encode`, `decode`, `reconstruct`, `sample`, `log_likelihood` (tensors);
- `train_step` / `test_step` over *training phases*: a phase is (optimizer name, variables,
  loss function). Single-objective models have one phase; adversarial models (AAE, AVB, IAE)
  list several and name extra optimizers in `optimizer_names`, which `compile()` accepts,
  builds and keeps through `.keras` saving;
- Mean trackers named by `metric_names`, the input checks, the seeds, and the
  importance-sampled log-likelihood (Burda et al. 2016, Eq. 8 with k = 5000, chunked).
"""
import math
import re

import keras
import numpy as np
import tensorflow as tf

from tfvae import distributions, objectives, optimizers

__all__ = ["GenerativeModel", "TrainingPhase", "DecoderDensity", "check_count", "log_likelihood_progbar",
           "discriminator_terms", "noisy_discriminator_logits", "labelled_count",
           "labelled_classification_terms"]


def check_count(value, name, owner):
    """`value` as an int >= 1 when it is a Python/numpy number (tensors pass unchecked).

    A function, not only a method, so that constructors can check their arguments before the
    model exists: `check_count(latent_dim, "latent_dim", "VAE")`.
    """
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return value
    try:
        valid = not isinstance(value, bool) and float(value).is_integer() and int(value) >= 1
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{owner}: expected {name} as an integer >= 1; got {value!r}.")
    return int(value)


def _split_pair(x, y):
    """(x, y) from `fit((x, y))`: a pair of arrays given as x is images and labels."""
    if (y is None and isinstance(x, (tuple, list)) and len(x) == 2
            and all(hasattr(part, "shape") for part in x)):
        return x[0], x[1]
    return x, y


def log_likelihood_progbar(num_examples, num_samples, verbose=1):
    """The progress bar of `log_likelihood`: examples done / `num_examples` (None: unknown),
    labelled with the number of importance samples, e.g. "3s 30ms/example, k=5000"."""
    return keras.utils.Progbar(num_examples, verbose=verbose, unit_name=f"example, k={num_samples}")


def _copy_optimizer(optimizer):
    """A fresh optimizer of the same class and configuration (unwrapping a LossScaleOptimizer)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    config = optimizer.get_config()
    config.pop("name", None)
    return type(optimizer).from_config(config)


#: `compile()`'s `steps_per_execution` when none is given, on one device: train steps per call
#: into the graph. Fewer calls from Python cut `fit()`'s per-step dispatch, which dominates small
#: models' steps; callbacks still see every epoch, and batch-level ones every N-th batch (as
#: Keras documents). Under a tf.distribute strategy the default stays Keras' 1: in Keras 3.15 a
#: MirroredStrategy fit with more than one step per execution fails for any model ("must feed a
#: value for placeholder tensor 'while/cond/Placeholder'", a plain Dense model included).
DEFAULT_STEPS_PER_EXECUTION = 10


class FirstNonFiniteStep(keras.metrics.Metric):
    """The optimizer step (0-based: `iterations` before it) at which a training phase's loss was
    first non-finite since the last reset (each epoch), or -1. Kept out of the logs: with
    `steps_per_execution` N, Keras reports only every N-th step's logs, and this names the exact
    step for `callbacks.StopOnNonFiniteLoss`."""

    def __init__(self, name="first_nonfinite_step"):
        super().__init__(name=name, dtype="int64")
        self.step = self.add_variable(shape=(), initializer=keras.initializers.Constant(-1),
                                      dtype="int64", aggregation="only_first_replica", name="step")

    def update_state(self, loss, step):
        first = tf.logical_and(self.step < 0,
                               tf.logical_not(tf.reduce_all(tf.math.is_finite(loss))))
        self.step.assign(tf.where(first, tf.cast(step, "int64"), self.step))

    def result(self):
        return tf.convert_to_tensor(self.step)

    def reset_state(self):
        self.step.assign(-1)


#: What `GenerativeModel.phase_count` returns for a phase dropped from the traced step.
_SKIPPED = object()


def discriminator_terms(real_logits, fake_logits):
    """(loss, accuracy) `[B]` each of a discriminator phase of any adversarial family: the
    cross-entropy of its real side (label 1) against its fake side (label 0),
    `objectives.discriminator_loss`, and `objectives.discriminator_accuracy`."""
    return (objectives.discriminator_loss(real_logits, fake_logits),
            objectives.discriminator_accuracy(real_logits, fake_logits))


def noisy_discriminator_logits(network, inputs, noise, seed=None, training=False, condition=None):
    """A discriminator's logits `[B]` for inputs `[B, ...]`. In training with a `seed`, Gaussian
    noise of std `noise` is added to the inputs first (instance noise: the two sides' supports
    overlap, so D cannot win outright), not to `condition`, an extra input (a label one-hot)
    concatenated after them on the last axis."""
    inputs = tf.cast(inputs, tf.float32)
    if training and seed is not None and noise > 0:
        inputs = inputs + noise * tf.random.stateless_normal(tf.shape(inputs), seed)
    if condition is not None:
        inputs = tf.concat([inputs, tf.cast(condition, inputs.dtype)], axis=-1)
    logits = network(inputs, training=training)
    return tf.reshape(tf.cast(logits, tf.float32), [-1])


def labelled_count(x, y):
    """The labelled examples of a batch (y >= 0), a labelled phase's `count_fn`; a Python 0
    without labels (the phase drops out of the traced step)."""
    if y is None:
        return 0
    return tf.reduce_sum(tf.cast(y >= 0, tf.int32))


def labelled_classification_terms(logits, y):
    """A labelled phase's (per-example loss `[B]`, logs): -log q(y|x) from `logits` `[B, K]` on
    the labelled examples (y >= 0; 0 on the others, and for all when `y` is None), with the
    classification loss and error logged weighted by the labelled examples only."""
    if y is None:
        y = -tf.ones(tf.shape(logits)[:1], tf.int32)
    labelled = y >= 0
    loss = objectives.categorical_cross_entropy(y, logits, mask=labelled)
    weight = tf.cast(labelled, tf.float32)
    wrong = tf.cast(tf.not_equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
    return loss, {"classification_loss": (loss, weight), "classification_error": (wrong, weight)}


def _is_static_zero(count):
    """Whether a phase's count is a Python (or numpy) 0, known while tracing."""
    return isinstance(count, (int, np.integer)) and not isinstance(count, bool) and int(count) == 0


class TrainingPhase:
    """One gradient step of a train_step: minimize `loss_fn` over `variables` with an optimizer.

    `loss_fn(x, y, seed, training)` returns `(per_example_loss [B], logs)`, where `logs` maps
    tracker names to per-example or scalar tensors, or to `(values, sample_weight)` pairs.
    `regularization`: whether the phase adds the model's regularization losses (`self.losses`);
    a phase that updates variables another phase already regularizes (the AAE's generator phase
    on the encoder) sets it False, so that each penalty is applied once per step.

    `count_fn`: None (the phase learns from every example of the batch), or
    `count_fn(x, y) -> int scalar`, the number of examples of this replica's batch the phase
    learns from (the semi-supervised AAE's labelled phase: the labelled ones, whose
    `per_example_loss` is 0 elsewhere). Then the phase averages its loss over that count summed
    across replicas (not over the global batch), and a step in which the sum is 0 leaves the
    phase's variables and its optimizer's state (slots, `iterations`) exactly as they were. A
    Python 0, known while tracing (no labels in the data at all), drops the phase from the
    traced step. See `GenerativeModel.apply_gradients_if`.
    """

    def __init__(self, optimizer_name, variables, loss_fn, regularization=True, count_fn=None):
        self.optimizer_name = optimizer_name
        self.variables = variables
        self.loss_fn = loss_fn
        self.regularization = bool(regularization)
        self.count_fn = count_fn


class GenerativeModel(keras.Model):
    """Base class. Subclasses set `metric_names` and implement `compute_losses` (or
    `training_phases`), `prior`, `encode` and `decode`; models with densities also implement
    `posterior` and `likelihood`, which gives them `log_likelihood` for free. A subclass creates
    every variable in `__init__` and ends it with `self.build()`.

    Args:
        input_shape: shape of one observation, e.g. `(28, 28, 1)`.
        seed: seeds the Keras `SeedGenerator` that draws all training noise (weights are
            initialized by Keras: `keras.utils.set_random_seed` makes them reproducible too).
        validate_inputs: check every batch for shape, dtype, NaN and range (cheap; off under XLA).
    """

    #: Optimizers `compile()` takes, in phase order. The first is Keras' own `optimizer`.
    optimizer_names = ("optimizer",)
    #: Mean trackers, shown by fit() and evaluate() in this order.
    metric_names = ("loss",)
    #: Whether `posterior(x)` and `likelihood(z)` have densities (enables `log_likelihood`).
    has_density = True
    #: Metrics of a labelled phase, left out of a step's logs when its data has no labels.
    label_metric_names = ()

    def __init__(self, input_shape, *, seed=None, validate_inputs=True, **kwargs):
        super().__init__(**kwargs)
        self.data_shape = tuple(int(d) for d in input_shape)
        self.seed = seed
        self.validate_inputs = bool(validate_inputs)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}
        self.first_nonfinite_step = FirstNonFiniteStep()
        self.extra_optimizers = {}
        # Keras does not save a SeedGenerator's state; tracking it puts it in every checkpoint,
        # so a resumed or reloaded model continues the noise sequence instead of replaying it.
        self._track_variable(self.seed_generator.state)

    # ----------------------------------------------------------------- Keras plumbing
    def build(self, input_shape=None):
        """Marks the model built: every variable is created in `__init__` (and `compile`)."""
        # Every variable is created in __init__, so there is nothing left to build.
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values()) + self.logged_metrics() + [self.first_nonfinite_step]

    def logged_metrics(self):
        """Metrics beside the Mean trackers whose `result()` is a dict of logs, e.g. a VQ-VAE's
        codebook usage over the epoch (perplexity and codes used); reset with the others."""
        return []

    def compile(self, optimizer="adam", steps_per_execution=None, **kwargs):
        """Keras `compile`, plus one optimizer per extra name in `optimizer_names`.

        Optimizers are built here, outside any replica context, so that they work under
        MirroredStrategy and round-trip through `.keras` files. An extra optimizer that is not
        given (or None) is a fresh copy of `optimizer`: same class and configuration, its own
        state. Under a `mixed_float16` policy each extra optimizer is wrapped in a
        `LossScaleOptimizer`, as Keras wraps `optimizer` (unless `auto_scale_loss=False`).
        A plain `keras.optimizers.Adam` (the default "adam" too) becomes, in place, a
        `tfvae.optimizers.Adam`: the same object and equations, one fused kernel per variable.
        `steps_per_execution` defaults to `DEFAULT_STEPS_PER_EXECUTION` (10), not Keras' 1, on
        one device (under a tf.distribute strategy, 1; see the constant): epoch callbacks,
        history and validation are unchanged, batch-level callbacks run every 10th batch, and
        `callbacks.StopOnNonFiniteLoss` still names the exact step. Pass
        `steps_per_execution=1` for a callback that must see every batch.
        """
        if not self.built:
            self.build()
        optimizer = optimizers.fused(keras.optimizers.get(optimizer))
        extras = {name: kwargs.pop(name, None) for name in self.optimizer_names[1:]}
        if steps_per_execution is None:
            distributed = self._distribute_strategy is not None or tf.distribute.has_strategy()
            steps_per_execution = 1 if distributed else DEFAULT_STEPS_PER_EXECUTION
        super().compile(optimizer=optimizer, steps_per_execution=steps_per_execution, **kwargs)
        scale = kwargs.get("auto_scale_loss", True) and self.dtype_policy.name == "mixed_float16"
        self.extra_optimizers = {}
        for name, extra in extras.items():
            extra = (_copy_optimizer(optimizer) if extra is None
                     else optimizers.fused(keras.optimizers.get(extra)))
            if scale and not isinstance(extra, keras.optimizers.LossScaleOptimizer):
                extra = keras.optimizers.LossScaleOptimizer(extra, name=f"{name}_loss_scale")
            self.extra_optimizers[name] = extra
        for phase in self.training_phases():
            self.get_optimizer(phase.optimizer_name).build(phase.variables)

    def get_optimizer(self, name):
        """The optimizer named `name`: "optimizer" (`compile(optimizer=...)`) or an extra one of `compile`."""
        return self.optimizer if name == "optimizer" else self.extra_optimizers[name]

    def get_compile_config(self):
        config = super().get_compile_config() or {}
        config.update({name: keras.saving.serialize_keras_object(opt)
                       for name, opt in self.extra_optimizers.items()})
        return config

    def compile_from_config(self, config):
        config = dict(config)
        extras = {name: keras.saving.deserialize_keras_object(config.pop(name))
                  for name in self.optimizer_names[1:] if name in config}
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config, **extras)

    #: Constructor arguments that `get_config` serializes as Keras objects (networks, priors,
    #: likelihoods): `from_config` deserializes them before calling the constructor.
    nested_config_keys = ()

    @classmethod
    def from_config(cls, config):
        """The model `get_config` describes, its `nested_config_keys` deserialized."""
        config = dict(config)
        for key in cls.nested_config_keys:
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    def get_config(self):
        config = {"name": self.name, "input_shape": self.data_shape, "seed": self.seed,
                  "validate_inputs": self.validate_inputs}
        if self.dtype_policy.name != "float32":
            config["dtype"] = keras.saving.serialize_keras_object(self.dtype_policy)
        return config

    def export(self, filepath, format="tf_saved_model", verbose=None, **kwargs):
        """Write a SavedModel with the named serving endpoints of `tfvae.export.export_model`."""
        if format != "tf_saved_model":
            return super().export(filepath, format=format, verbose=verbose, **kwargs)
        from tfvae import export as export_lib  # the export layer sits above the models

        return export_lib.export_model(self, filepath, verbose=bool(verbose), **kwargs)

    # ----------------------------------------------------------------- fit, evaluate, predict
    # Bad input gets the one-line error of `check_input` here too, not a "Graph execution error"
    # with the message at the bottom of a long traceback: arrays are checked eagerly before
    # anything is traced, a Dataset's element_spec statically (no pass over the data), and the
    # graph assertions that catch bad values in later batches are re-raised as a short ValueError.
    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        """Keras `fit`, with bad input refused first by the model's one-line error, and the
        epoch of a `tfvae.datasets.load` pipeline kept in step with fit's epoch. Labels go in
        `y`, or with the images as `fit((x, y))` (tfvae models take one input, so a pair of
        arrays is images and labels, as in a Dataset of pairs)."""
        x, y = _split_pair(x, y)
        self.check_data(x)
        self.check_data_targets(y, x)
        if isinstance(validation_data, (tuple, list)):  # (x,), (x, y) or (x, y, weights)
            val_x, val_y, _ = keras.utils.unpack_x_y_sample_weight(tuple(validation_data))
            self.check_data(val_x, "validation x")
            self.check_data_targets(val_y, val_x)
        else:
            self.check_data(validation_data, "validation x")
        counter = getattr(x, "epoch_counter", None)  # a tfvae.datasets.load pipeline
        if counter is not None:
            # epoch e reads the data order and binarization noise of pass e, also when
            # BackupAndRestore resumes the run at e (see tfvae.datasets.EpochCounter)
            kwargs["callbacks"] = [keras.callbacks.LambdaCallback(
                on_epoch_begin=lambda epoch, logs=None: counter.set_epoch(epoch))] + list(
                    kwargs.get("callbacks") or [])
        try:
            return super().fit(x, y, *args, validation_data=validation_data, **kwargs)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            self.raise_clear_error(error)
            raise

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Keras `evaluate`, with bad input refused first by the model's one-line error; labels
        in `y` or as `evaluate((x, y))`."""
        x, y = _split_pair(x, y)
        if not kwargs.get("_use_cached_eval_dataset"):  # fit() checked its validation data
            self.check_data(x)
            self.check_data_targets(y, x)
        try:
            return super().evaluate(x, y, *args, **kwargs)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            self.raise_clear_error(error)
            raise

    def predict(self, x, *args, **kwargs):
        """Keras `predict`, with bad input refused first by the model's one-line error."""
        self.check_data(x)
        try:
            return super().predict(x, *args, **kwargs)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            self.raise_clear_error(error)
            raise

    def check_data(self, data, name="x"):
        """Check the x that fit/evaluate/predict were given before anything is traced: an array
        or eager tensor by `check_input`'s checks, a tf.data.Dataset of x or (x, y, ...) by its
        element_spec (dtype and shape only, no pass over the data). Anything else (generators,
        PyDatasets, None) is left to the checks in the traced step."""
        if isinstance(data, tf.data.Dataset):
            spec = data.element_spec
            if isinstance(spec, (tuple, list)):
                spec = keras.utils.unpack_x_y_sample_weight(tuple(spec))[0]
            if isinstance(spec, tf.TensorSpec):
                self.check_spec(spec.shape, spec.dtype, name)
        elif isinstance(data, np.ndarray):
            self.check_array(data, name)
        elif isinstance(data, tf.Tensor) and tf.executing_eagerly():
            self.check_input(data, name)

    def check_data_targets(self, y, x):
        """Check labels given as an array (or eager tensor) beside the x of fit/evaluate, before
        anything is traced, with the model's `check_targets` (unchanged by default: models
        without labels ignore them): so that labels of the wrong dtype, shape, length or range
        get the model's one-line error rather than Keras' "Data cardinality is ambiguous"."""
        if y is None or not (isinstance(y, (np.ndarray, list))
                             or (isinstance(y, tf.Tensor) and tf.executing_eagerly())):
            return
        self.check_targets(y, x if hasattr(x, "shape") else None)

    def raise_clear_error(self, error):
        """Raise the model's one-line message alone (`from None`: a short traceback) when `error`
        carries one: an assertion of `check_input` failed in a traced step (InvalidArgumentError
        "Graph execution error: ..." → ValueError), or a ValueError / TypeError of the checks was
        raised while tracing. Return (the caller re-raises `error`) for any other error."""
        prefix = f"{type(self).__name__}: "
        if type(error) in (ValueError, TypeError) and str(error).startswith(prefix):
            raise type(error)(str(error)) from None
        if not isinstance(error, tf.errors.InvalidArgumentError):
            return
        # TF writes an assertion as "assertion failed: [message] [data] [data]" on one line.
        match = re.search(r"assertion failed: \[(" + re.escape(prefix) + r".*)\]$",
                          error.message, re.MULTILINE)
        if match is None:
            return
        message, *data = match.group(1).split("] [")
        values = [" ".join(item.replace("[", " ").replace("]", " ").split()) for item in data]
        if len(data) == 1:  # one tensor: a scalar as is, a vector (a shape) as a tuple
            words = values[0].split()
            message += f" {words[0]}." if len(words) == 1 else f" ({', '.join(words)})."
        elif data:  # several scalars (the extremes) as an interval
            message += f" [{', '.join(values)}]."
        raise ValueError(message) from None

    # ----------------------------------------------------------------- training
    def training_phases(self):
        """The phases of one train_step; one phase over all weights unless overridden."""
        return [TrainingPhase("optimizer", self.trainable_variables, self.compute_losses)]

    def compute_losses(self, x, y=None, seed=None, training=False):
        """(per-example loss `[B]`, logs) for one batch. Implemented by each family."""
        raise NotImplementedError

    def train_step(self, data):
        """One step of `fit()`: each of `training_phases()` in order, one gradient update each; returns the trackers' results."""
        x, y = self._unpack(data)
        seed = self.step_seed()
        step = tf.convert_to_tensor(self.optimizer.iterations)  # before this step's updates
        for index, phase in enumerate(self.training_phases()):
            count = self.phase_count(phase, x, y)
            if count is _SKIPPED:
                continue
            optimizer = self.get_optimizer(phase.optimizer_name)
            with tf.GradientTape() as tape:
                per_example_loss, logs = phase.loss_fn(
                    x, y, seed=tf.random.experimental.stateless_fold_in(seed, index), training=True)
                # the mean over the global batch, or over the examples the phase learns from
                loss = tf.nn.compute_average_loss(per_example_loss, global_batch_size=count)
                if phase.regularization and self.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
                scaled_loss = optimizer.scale_loss(loss)  # loss scaling under mixed_float16
            self.first_nonfinite_step.update_state(loss, step)
            gradients = tape.gradient(scaled_loss, phase.variables)
            if count is None:
                optimizer.apply_gradients(zip(gradients, phase.variables))
            else:
                self.apply_gradients_if(count > 0, optimizer, gradients, phase.variables)
            self.update_trackers(logs)
        return self.tracker_results(with_labels=y is not None)

    def test_step(self, data):
        """One step of `evaluate()`: each phase's losses without updates; returns the trackers' results."""
        x, y = self._unpack(data)
        seed = self.step_seed()
        for index, phase in enumerate(self.training_phases()):
            if phase.count_fn is not None and _is_static_zero(phase.count_fn(x, y)):
                continue
            _, logs = phase.loss_fn(x, y, seed=tf.random.experimental.stateless_fold_in(seed, index),
                                    training=False)
            self.update_trackers(logs)
        return self.tracker_results(with_labels=y is not None)

    def phase_count(self, phase, x, y):
        """How many examples `phase` learns from this step: None for all of them (no
        `count_fn`); `_SKIPPED` when its `count_fn` gives a Python 0 while tracing; else its
        count summed over the replicas (int32 scalar tensor, the same on every replica)."""
        if phase.count_fn is None:
            return None
        count = phase.count_fn(x, y)
        if _is_static_zero(count):
            return _SKIPPED
        count = tf.cast(count, tf.int32)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        return count

    def apply_gradients_if(self, active, optimizer, gradients, variables):
        """`optimizer.apply_gradients(zip(gradients, variables))` where the scalar bool `active`
        is True; where it is False, the variables and every optimizer variable (slots,
        `iterations`, a loss scale) end the step bit for bit as they began it.

        No `tf.cond` around the update: under MirroredStrategy `apply_gradients` all-reduces the
        gradients and updates the mirrored variables in a `merge_call`, which cannot run inside
        a cond branch ("merge_call called while defining a new graph"). So the update always
        runs and is then undone by selection: each variable is read before it, and assigned
        `tf.where(active, new, old)` after it. `active` must be the same on every replica (the
        count all-reduced by `phase_count`), so the mirrored copies stay identical. The cost is
        one read, select and write of the phase's variables and optimizer state per step.
        """
        state = []
        for variable in list(variables) + list(optimizer.variables):
            if all(variable is not seen for seen in state):
                state.append(variable)
        before = [tf.identity(variable.value) for variable in state]
        optimizer.apply_gradients(zip(gradients, variables))
        for variable, old in zip(state, before):
            variable.assign(tf.where(active, variable.value, old))

    def tracker_results(self, with_labels=True):
        """{name: result} of every tracker, as `train_step` and `test_step` return it; without
        `label_metric_names` for a step whose data has no labels (`with_labels=False`).

        Under MultiWorkerMirroredStrategy Keras 3.15 cannot reduce scalar logs across workers
        (tensorflow#72388, keras#20585), so there each result is returned with shape [1].
        """
        results = {m.name: m.result() for m in self.trackers.values()
                   if with_labels or m.name not in self.label_metric_names}
        for metric in self.logged_metrics():
            results.update(metric.result())
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def _maybe_symbolic_build(self, *args, **kwargs):
        # Everything is built in __init__ and compile(); Keras' symbolic build would otherwise
        # feed a PerReplica batch to the model under MultiWorkerMirroredStrategy and fail.
        if self.built and all(opt.built for opt in self.all_optimizers()):
            return
        super()._maybe_symbolic_build(*args, **kwargs)

    def all_optimizers(self):
        """Every optimizer of the model: the main one first, then the extra ones `compile` named."""
        optimizers = [self.optimizer] if getattr(self, "optimizer", None) is not None else []
        return optimizers + list(self.extra_optimizers.values())

    def update_trackers(self, logs):
        """Update the tracker of each log: per-example values, a scalar, or a pair (values,
        sample_weight), e.g. a phase's loss weighted by the examples it learns from."""
        for name, value in logs.items():
            if name in self.trackers:
                if isinstance(value, tuple):
                    self.trackers[name].update_state(value[0], sample_weight=value[1])
                else:
                    self.trackers[name].update_state(value)

    def step_seed(self):
        """A fresh stateless seed pair for this step, distinct on every replica."""
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            seed = tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)
        return seed

    def _unpack(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = self.check_input(x)
        y = self.check_targets(y, x)
        if isinstance(y, tf.Tensor) and not tf.executing_eagerly():
            # in a graph, every phase's computation waits for the labels' checks: a batch with
            # bad labels changes no weight (only counters such as `iterations` may count it)
            with tf.control_dependencies([y]):
                x = tf.identity(x)
        return x, y

    def check_targets(self, y, x):
        """The targets `y` of a batch as the training phases receive them. Unchanged here: models
        without labels ignore them; labelled models check them with `check_labels`."""
        return y

    # ----------------------------------------------------------------- input checks
    def observation_support(self):
        """(low, high) the observations must lie in, or None."""
        return None

    def check_input(self, x, name="x"):
        """`x` as float32, after checking rank, shape, dtype and (if enabled) NaN and range.

        Raises ValueError / TypeError eagerly (and for numpy arrays, whose values are checked in
        numpy before conversion); in a graph the value checks of a tensor are assertions that
        raise InvalidArgumentError with the same message.
        """
        if getattr(x, "dtype", None) is None:
            x = np.asarray(x)
        if isinstance(x, np.ndarray):
            return tf.convert_to_tensor(self.check_array(x, name))
        model = type(self).__name__
        self.check_spec(None, x.dtype, name)
        x = tf.convert_to_tensor(x)
        rank = len(self.data_shape) + 1
        if x.shape.rank is None:  # a retraced graph function can lose the rank: check at run time
            expected = self._expected_shape()
            actual = tf.shape(x)
            padded = tf.concat([actual, tf.zeros([rank], tf.int32)], 0)[1:rank]
            ok = tf.logical_and(tf.equal(tf.size(actual), rank),
                                tf.reduce_all(tf.equal(padded, self.data_shape)))
            with tf.control_dependencies([tf.debugging.Assert(
                    ok, [f"{model}: expected {name} of shape {expected}; got shape", actual])]):
                x = tf.ensure_shape(tf.identity(x), (None,) + self.data_shape)
        self.check_spec(x.shape, x.dtype, name)
        x = tf.cast(x, tf.float32)
        if not self.validate_inputs:
            return x
        if tf.executing_eagerly():
            self._check_values(x.numpy(), name)
            return x
        support = self.observation_support()
        checks = [tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(x)),
                                      [f"{model}: {name} contains NaN or infinite values; expected "
                                       "finite values."])]
        if support is not None:
            low, high = tf.reduce_min(x), tf.reduce_max(x)
            checks.append(tf.debugging.Assert(
                tf.logical_and(low >= support[0], high <= support[1]),
                [f"{model}: expected {name} in [{support[0]}, {support[1]}] for its "
                 f"{self.observation_name()} likelihood; got values in", low, high]))
        with tf.control_dependencies(checks):
            return tf.identity(x)

    def check_array(self, x, name="x"):
        """A numpy batch as float32 numpy, checked like `check_input` without converting it to a
        tensor: one pass of min/max over the values (NaN and infinities show in the extremes)."""
        x = np.asarray(x)
        self.check_spec(x.shape, x.dtype, name)
        values = x.astype(np.float32, copy=False)
        if self.validate_inputs:
            self._check_values(values, name)
        return values

    def check_spec(self, shape, dtype, name="x"):
        """Check a batch's dtype and (when its rank is known) shape, without its values: for
        tensors, arrays and the `element_spec` of a tf.data.Dataset. `shape` None skips it."""
        model = type(self).__name__
        expected = self._expected_shape()
        dtype = tf.as_dtype(dtype)
        if not dtype.is_floating:
            raise TypeError(f"{model}: expected {name} as floating-point values (float32) of shape "
                            f"{expected}; got dtype {dtype.name}. Convert images with "
                            f"x.astype('float32') / 255.")
        shape = tf.TensorShape(shape)
        if shape.rank is None:
            return
        shape = tuple(shape)
        if len(shape) != len(self.data_shape) + 1 or any(
                got is not None and got != want for got, want in zip(shape[1:], self.data_shape)):
            got = ", ".join("?" if d is None else str(d) for d in shape)
            raise ValueError(f"{model}: expected {name} of shape {expected}; got shape ({got}).")

    def _expected_shape(self):
        return "(batch, " + ", ".join(str(d) for d in self.data_shape) + ")"

    def _check_values(self, values, name):
        """The eager value checks of `check_input` on a float32 numpy array."""
        if not values.size:
            return
        model = type(self).__name__
        low, high = values.min(), values.max()  # NaN propagates; ±inf shows as an extreme
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"{model}: {name} contains {np.sum(~np.isfinite(values))} NaN or "
                             f"infinite values; expected finite values.")
        support = self.observation_support()
        if support is not None and (low < support[0] or high > support[1]):
            raise ValueError(f"{model}: expected {name} in [{support[0]}, {support[1]}] for its "
                             f"{self.observation_name()} likelihood; got values in "
                             f"[{low:.4g}, {high:.4g}].")

    def observation_name(self):
        """What the model's inputs are called in error messages."""
        return "observation"

    def check_labels(self, y, num_classes, *, allow_unlabelled=True, x=None, name="y"):
        """`y` as int32 `[B]`, after checking that it holds integer class labels of shape
        `(batch,)` (the batch of `x` when given) with values in [0, num_classes), or -1 for an
        unlabelled example when `allow_unlabelled`.

        Shape and dtype are checked always; the values (and a batch size only known at run
        time) when `validate_inputs` is on: eagerly as ValueError, in a graph as assertions with
        the same text (`InvalidArgumentError`; XLA drops them).
        """
        model = type(self).__name__
        low = -1 if allow_unlabelled else 0
        expected = (f"integer class labels of shape (batch,) with values in [{low}, {num_classes})"
                    + (" (-1: unlabelled)" if allow_unlabelled else ""))
        if y is None:
            raise ValueError(f"{model}: expected labels with every batch, fit((x, {name})) with "
                             f"{name} as {expected}; got x alone.")
        dtype = getattr(y, "dtype", None)
        if dtype is None:
            y = np.asarray(y)
            dtype = y.dtype
        dtype = tf.as_dtype(dtype)
        shape = tf.TensorShape(getattr(y, "shape", None))
        if shape.rank is not None and shape.rank != 1:
            hint = ""
            if shape.rank == 2 and shape[-1] == num_classes and num_classes > 1:
                hint = (f" One-hot rows? Give class ids, {name}.argmax(-1)"
                        + (", with -1 for an unlabelled (all-zero) row." if allow_unlabelled
                           else "."))
            elif shape.rank == 2:
                hint = f" Flatten it with {name}.reshape(-1)."
            got = ", ".join("?" if d is None else str(d) for d in shape)
            raise ValueError(f"{model}: expected {name} as {expected}; got shape ({got}).{hint}")
        if not dtype.is_integer:
            values = y.numpy() if isinstance(y, tf.Tensor) and tf.executing_eagerly() else y
            if (allow_unlabelled and isinstance(values, np.ndarray) and dtype.is_floating
                    and np.isnan(values).any()):
                raise TypeError(
                    f"{model}: expected {name} as {expected}; got dtype {dtype.name} with "
                    f"{int(np.isnan(values).sum())} NaN values. Mark an unlabelled example with "
                    f"-1, not NaN: np.where(np.isnan({name}), -1, {name}).astype('int64').")
            unlabelled = " (-1 for an unlabelled example, not NaN)" if allow_unlabelled else ""
            raise TypeError(f"{model}: expected {name} as {expected}; got dtype {dtype.name}. "
                            f"Convert with {name}.astype('int64'){unlabelled}.")
        y = tf.ensure_shape(tf.convert_to_tensor(y), [None])
        batch = None if x is None else x.shape[0]
        if batch is not None and y.shape[0] is not None and batch != y.shape[0]:
            raise ValueError(f"{model}: expected {name} with one label per example of x ({batch}); "
                             f"got {y.shape[0]} labels.")
        y = tf.cast(y, tf.int32)
        if not self.validate_inputs:
            return y
        if tf.executing_eagerly():
            values = y.numpy()
            if values.size and (values.min() < low or values.max() >= num_classes):
                raise ValueError(f"{model}: expected {name} as {expected}; got values in "
                                 f"[{values.min()}, {values.max()}].")
            return y
        checks = [tf.debugging.Assert(
            tf.logical_and(tf.reduce_all(y >= low), tf.reduce_all(y < num_classes)),
            [f"{model}: expected {name} as {expected}; got values in", tf.reduce_min(y),
             tf.reduce_max(y)])]
        if x is not None:
            checks.append(tf.debugging.Assert(
                tf.equal(tf.shape(x)[0], tf.shape(y)[0]),
                [f"{model}: expected {name} with one label per example of x; got (labels, "
                 "examples) =", tf.stack([tf.shape(y)[0], tf.shape(x)[0]])]))
        with tf.control_dependencies(checks):
            return tf.identity(y)

    def check_count(self, value, name):
        """`value` as an int >= 1 when it is a Python/numpy number (tensors pass unchecked)."""
        return check_count(value, name, type(self).__name__)

    def check_codes(self, z, latent_dim):
        """`z` as float32 `[N, latent_dim]`, finite when checks are on (eagerly)."""
        z = tf.convert_to_tensor(z, tf.float32)
        if z.shape.rank != 2 or z.shape[-1] != latent_dim:
            raise ValueError(f"{type(self).__name__}.decode expects codes of shape (batch, "
                             f"{latent_dim}); got {tuple(z.shape)}.")
        if self.validate_inputs and tf.executing_eagerly() and not np.all(np.isfinite(z.numpy())):
            raise ValueError(f"{type(self).__name__}.decode: codes contain NaN or infinite values; "
                             "expected finite values.")
        return z

    # ----------------------------------------------------------------- the model contract
    def prior(self):
        """p(z) as a TFP distribution."""
        raise NotImplementedError(f"{type(self).__name__} has no prior density p(z).")

    def posterior(self, x):
        """q(z|x) as a TFP distribution with batch shape `[B]`."""
        raise NotImplementedError(f"{type(self).__name__} has no explicit posterior density.")

    def likelihood(self, z):
        """p(x|z) as a TFP distribution over observations, batch shape `z.shape[:-1]`."""
        raise NotImplementedError(f"{type(self).__name__} has no explicit likelihood.")

    def encode(self, x):
        """A deterministic code for each example (posterior mean, or discrete codes)."""
        raise NotImplementedError

    def decode(self, z):
        """The expected observation given codes `z`."""
        raise NotImplementedError

    def reconstruct(self, x, seed=None):
        """decode(encode(x)) when `seed` is None; a posterior sample decoded otherwise."""
        return self.decode(self.encode(x))

    def sample(self, num_samples, seed=None):
        """`num_samples` observations from p(x) = ∫ p(x|z) p(z) dz, returned as E[x|z]."""
        raise NotImplementedError

    def call(self, x, training=False):
        """The reconstruction of `x` (a tensor, so predict() and export work)."""
        return self.reconstruct(x)

    # ----------------------------------------------------------------- log-likelihood
    def log_importance_weights(self, x, num_samples, seed):
        """log p(x, z_k) - log q(z_k|x) for k draws z_k ~ q(z|x); shape `[num_samples, B]`."""
        z, log_qz = distributions.sample_and_log_prob(self.posterior(x), num_samples, seed)
        return objectives.log_importance_weights(
            self.conditional_log_prob(x, z), self.prior().log_prob(z), log_qz)

    def conditional_log_prob(self, x, z):
        """log p(x|z) for codes `z` with leading sample axes, `[..., B]`."""
        return self.likelihood(z).log_prob(x)

    # The generative model's joint density p(x, z) = p(z) p(x|z) over its latent state, which is
    # all that annealed importance sampling (`evaluation.ais_log_likelihood`) needs. The state
    # is one code tensor here; a model with several stochastic layers returns a list of them.
    def latent_prior_sample(self, sample_shape, seed):
        """Latent states drawn from the prior, `[*sample_shape, D]` (or a list of such)."""
        return self.prior().sample(sample_shape, seed=seed)

    def latent_log_prior(self, z):
        """log p(z) of latent states `[*S, D]` (or lists): `[*S]`."""
        return self.prior().log_prob(z)

    def latent_log_likelihood(self, x, z):
        """log p(x|z) for x `[B, ...]` and latent states `[S, B, D]` (or lists): `[S, B]`."""
        return self.conditional_log_prob(x, z)

    def log_likelihood(self, x, num_samples=5000, *, batch_size=100, chunk_size=None, seed=0,
                       verbose=0, progress=None):
        """Importance-sampled log p(x) per example, in nats (Burda et al. 2016, Eq. 8, k = num_samples).

        The k samples are drawn in chunks of `chunk_size` (default: about 128 MiB of decoder output
        per chunk) and combined by a running log-sum-exp, so memory does not grow with k. Stateless
        seeds make the estimate reproducible: the same `seed` gives the same numbers.

        `verbose=1` shows a `keras.utils.Progbar` of the examples done, labelled with k, updated
        after every batch (2: one line at the end; 0: silent). `progress`, a Progbar, is advanced
        instead (so a caller evaluating its data in several calls shows one bar).
        """
        if not self.has_density:
            raise NotImplementedError(f"{type(self).__name__} has no density to evaluate.")
        num_samples = self.check_count(num_samples, "num_samples")
        batch_size = self.check_count(batch_size, "batch_size")
        if chunk_size is not None:
            chunk_size = self.check_count(chunk_size, "chunk_size")
        x = self.check_input(x)
        num_examples = int(x.shape[0])
        batch_size = min(int(batch_size), num_examples)
        if chunk_size is None:
            chunk_size = self.default_chunk_size(num_samples, batch_size)
        seed = distributions.stateless_seed(seed)
        if progress is None and verbose:
            progress = log_likelihood_progbar(num_examples, num_samples, verbose)
        results = []
        for start in range(0, num_examples, batch_size):
            batch = x[start:start + batch_size]
            size = int(batch.shape[0])
            if size < batch_size:  # pad so that every batch reuses one compiled function
                batch = tf.concat([batch, tf.repeat(batch[-1:], batch_size - size, axis=0)], axis=0)
            batch_seed = tf.random.experimental.stateless_fold_in(seed, start)
            values = self._log_likelihood_fn(batch, tf.constant(num_samples, tf.int32),
                                             tf.constant(chunk_size, tf.int32), batch_seed)
            results.append(values[:size])
            if progress is not None:
                results[-1].numpy()  # wait for the batch (GPU ops run asynchronously)
                progress.add(size)
        return tf.concat(results, axis=0)

    def default_chunk_size(self, num_samples, batch_size):
        """Importance samples per chunk: about 128 MiB of decoder output, in equal chunks."""
        largest = max(1, (1 << 25) // (int(batch_size) * math.prod(self.data_shape)))
        chunks = -(-int(num_samples) // largest)
        return -(-int(num_samples) // chunks)

    @tf.function(reduce_retracing=True)
    def _log_likelihood_fn(self, x, num_samples, chunk_size, seed):
        return self.log_likelihood_batch(x, num_samples, chunk_size, seed)

    def log_likelihood_batch(self, x, num_samples, chunk_size, seed):
        """Graph-friendly body of `log_likelihood` for one batch; `num_samples` may be a tensor."""
        num_samples = tf.cast(num_samples, tf.int32)
        num_chunks = (num_samples + chunk_size - 1) // chunk_size
        batch = tf.shape(x)[0]

        def body(index, total):
            log_w = self.log_importance_weights(
                x, chunk_size, tf.random.experimental.stateless_fold_in(seed, index))
            position = index * chunk_size + tf.range(chunk_size)[:, None]
            log_w = tf.where(position < num_samples, log_w, -np.inf)  # mask the last chunk's excess
            return index + 1, tf.reduce_logsumexp(tf.stack([total, tf.reduce_logsumexp(log_w, 0)]), 0)

        _, total = tf.while_loop(lambda i, _: i < num_chunks, body,
                                 (tf.constant(0), tf.fill([batch], -np.inf)))
        return total - tf.math.log(tf.cast(num_samples, tf.float32))


class DecoderDensity:
    """p(x|z) from a `decoder` body and an `observation_model` (`tfvae.likelihoods`), for models
    with one code of `latent_dim` units (VAE, IWAE, AVB): mixed in before `GenerativeModel`."""

    def decoder_params(self, z):
        """Decoder output for codes with any leading shape `[..., D]` → `[..., *param_shape]`."""
        lead = tf.shape(z)[:-1]
        params = self.decoder(tf.reshape(z, [-1, self.latent_dim]))
        param_shape = self.observation_model.param_shape(self.data_shape)
        params = tf.reshape(params, tf.concat([lead, param_shape], axis=0))
        return tf.ensure_shape(params, z.shape[:-1].concatenate(param_shape))

    def likelihood(self, z):
        """p(x|z) as a TFP distribution, batch shape `z.shape[:-1]`."""
        return self.observation_model.distribution(self.decoder_params(z), len(self.data_shape))

    def conditional_log_prob(self, x, z):
        """log p(x|z) for codes with leading sample axes, `[..., B]` (the likelihood's exact formula)."""
        return self.observation_model.log_prob(self.decoder_params(z), x, len(self.data_shape))

    def observation_support(self):
        """The observations' support (what `check_input` enforces)."""
        return self.observation_model.support

    def observation_name(self):
        """The observation model's class name (e.g. "Bernoulli"), used in error messages."""
        return type(self.observation_model).__name__
