"""SavedModel export: a tfvae model as a TF-Serving-ready SavedModel with named endpoints.

`export_model(model, filepath)` (also `model.export(filepath)`) writes one signature per endpoint.
Every input is named, every output is a dict entry, and all randomness is stateless: the caller
passes `seed`, an int32 pair, and the same seed gives the same numbers, equal to the model's own
methods called with that seed. The default endpoints (B is the batch, fixed by `batch_size`):

=================  ==============================================  ==============================
endpoint           inputs                                          outputs
=================  ==============================================  ==============================
``encode``         ``x`` float32 [B, *input_shape]                 ``mean``, ``stddev`` [B, D]
                                                                   (models with
                                                                   `posterior_parameters`), else
                                                                   ``code`` = `model.encode(x)`
``decode``         ``z`` float32 [B, D] (or what ``encode``'s      ``x_mean`` [B, *input_shape]
                   ``code`` is: a VQ-VAE's int32 [B, h, w])
``reconstruct``    ``x`` float32 [B, *input_shape],                ``reconstruction``
                   ``seed`` int32 [2]                              = `model.reconstruct(x, seed)`
``sample``         ``num_samples`` int32 [], ``seed`` int32 [2]    ``samples`` [N, *input_shape]
                                                                   = `model.sample(n, seed)`
``log_likelihood`` ``x`` float32 [B, *input_shape],                ``log_likelihood`` [B] (nats)
                   ``num_samples`` int32 [], ``seed`` int32 [2]    (models with `has_density`)
=================  ==============================================  ==============================

``serving_default`` (what TF Serving calls when no signature is named) is ``encode``: it is
deterministic and needs no seed, so a plain ``{"instances": [...]}`` request works; every other
endpoint is reached by its name. A model picks another default with a `serving_default`
attribute naming one of its endpoints.

``log_likelihood`` equals `model.log_likelihood(x, num_samples, chunk_size=100, seed=seed)` (the
importance-sampled estimate of Burda et al. 2016, Eq. 8): the request is split into batches of
100 examples and each batch draws its samples in chunks of 100, so memory does not grow with the
request size or with `num_samples`.

Models change the endpoint set by defining `serving_endpoints()`, returning
``{name: (fn, [tf.TensorSpec(..., name=...), ...])}``; it replaces the defaults. Each `fn` should
return a dict of named tensors (a lone tensor is returned under the endpoint's name).

The endpoints use core TensorFlow ops only: TFP distributions are built while the functions are
traced, so a SavedModel loads with `tf.saved_model.load` in a process without tfvae or TFP.

Bad requests: every signature fixes the dtype and shape of its inputs. Called through
``loaded.signatures[name](...)`` (TF Serving, `saved_model_cli run`):

- a wrong shape raises ``InvalidArgumentError`` naming the input and both shapes,
  "Shape of tensor x [2,28,28] is not compatible with expected shape [?,28,28,1]" (each endpoint
  starts with `tf.ensure_shape` on every input: the signatures of a loaded SavedModel do not
  check shapes themselves, and a wrong shape would otherwise fail deep in the graph);
- a wrong dtype raises ``InvalidArgumentError`` from TensorFlow, naming the input by its position
  in the signature (inputs sorted by name) and both dtypes: "input #0(zero-based) was expected
  to be a float tensor but is a double tensor";
- values are checked as the model checks them (`GenerativeModel.check_input`: NaN, and the
  support of the likelihood, e.g. [0, 1] for Bernoulli): ``InvalidArgumentError`` with the
  model's message; ``sample`` and ``log_likelihood`` with ``num_samples`` < 1 (which the model's
  methods refuse too) raise ``InvalidArgumentError`` "sample: num_samples must be at least 1".

What the client reads: a refused value is an ``Assert`` whose first item is the whole message, so
TensorFlow's own text of the error starts with it, followed by the offending values and the
node::

    assertion failed: [sample: num_samples must be at least 1; got] [0]
         [[{{node num_samples_at_least_1/Assert}}]]

That text is what TF Serving returns as the request's error (possibly after a
``{{function_node ...}}`` tag). Python clients put a header before it that no graph can change:
``loaded.signatures[name](...)`` raises "Graph execution error:", a blank line, "Detected at
node ... defined at (most recent call last):" and "<stack traces unavailable>" (a SavedModel keeps
no Python stack), then the text above; ``saved_model_cli run`` prints "Graph execution error:"
and the text. The message is therefore the first line that is not TensorFlow's. A wrong dtype
is refused before the graph runs, so its text is TensorFlow's alone (above).

Called as ``loaded.encode(x)`` (the restored `tf.function`), a wrong shape or dtype raises
``TypeError`` "Can not cast TensorSpec(shape=(2, 28, 28), ...) to TensorSpec(shape=(None, 28, 28,
1), ...)"; there, numpy inputs of another float dtype are converted.
"""
import functools

import keras
import tensorflow as tf

from tfvae import likelihoods

__all__ = ["export_model", "default_endpoints", "LOG_LIKELIHOOD_CHUNK_SIZE",
           "LOG_LIKELIHOOD_BATCH_SIZE", "DEFAULT_SERVING_ENDPOINT"]

#: Importance samples drawn at once by the `log_likelihood` endpoint.
LOG_LIKELIHOOD_CHUNK_SIZE = 100
#: Examples evaluated at once by the `log_likelihood` endpoint.
LOG_LIKELIHOOD_BATCH_SIZE = 100
#: The endpoint served as `serving_default` unless the model names another.
DEFAULT_SERVING_ENDPOINT = "encode"


def export_model(model, filepath, *, batch_size=None, verbose=False):
    """Write `model` as a SavedModel with named endpoints (see the module docstring).

    Args:
        model: a built tfvae model (`GenerativeModel`).
        filepath: the SavedModel directory to write.
        batch_size: fixes the batch (leading) dimension of every batched input; None (default)
            accepts any batch.
        verbose: print the endpoints Keras writes.

    Returns:
        `filepath`.
    """
    if batch_size is not None:
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer or None; got {batch_size}.")
    if hasattr(model, "serving_endpoints"):
        endpoints = {name: (fn, [_with_batch(spec, batch_size) for spec in specs])
                     for name, (fn, specs) in dict(model.serving_endpoints()).items()}
    else:
        endpoints = default_endpoints(model, batch_size=batch_size)
    if not endpoints:
        raise ValueError(f"{type(model).__name__} defines no serving endpoints.")
    default = getattr(model, "serving_default", None)
    if default is None:
        default = DEFAULT_SERVING_ENDPOINT if DEFAULT_SERVING_ENDPOINT in endpoints else next(iter(endpoints))
    if default not in endpoints:
        raise ValueError(f"{type(model).__name__}.serving_default is {default!r}, which is not one "
                         f"of its endpoints {sorted(endpoints)}.")

    if not model.built:  # tfvae models create their variables in __init__; nothing to infer
        model.build((None,) + tuple(model.data_shape))
    archive = keras.export.ExportArchive()
    archive.track(model)
    # Standard TensorFlow ops only (no XLA kernels), so any TensorFlow runtime can serve it.
    with likelihoods.fused_kernels(False):
        # Keras serves the first endpoint added as `serving_default`.
        for name in [default] + [n for n in endpoints if n != default]:
            fn, specs = endpoints[name]
            archive.add_endpoint(name, _endpoint_function(fn, name, specs), input_signature=list(specs))
        archive.write_out(str(filepath), verbose=verbose)
    return filepath


def default_endpoints(model, *, batch_size=None):
    """{name: (fn, [TensorSpec, ...])}: the endpoints tfvae writes for `model` by default."""
    data_shape = tuple(model.data_shape)
    x_spec = tf.TensorSpec((batch_size,) + data_shape, tf.float32, name="x")
    seed_spec = tf.TensorSpec([2], tf.int32, name="seed")
    count_spec = tf.TensorSpec([], tf.int32, name="num_samples")
    z_spec = _code_spec(model, x_spec, batch_size)

    if hasattr(model, "posterior_parameters"):
        def encode(x):
            params = model.posterior_parameters(x)
            return {"mean": params["mean"], "stddev": params["stddev"]}
    else:
        def encode(x):
            return {"code": model.encode(x)}

    def decode(z):
        return {"x_mean": model.decode(z)}

    def reconstruct(x, seed):
        return {"reconstruction": model.reconstruct(x, seed=seed)}

    def sample(num_samples, seed):
        return {"samples": model.sample(_at_least_one(num_samples, "sample"), seed=seed)}

    endpoints = {
        "encode": (encode, [x_spec]),
        "decode": (decode, [z_spec]),
        "reconstruct": (reconstruct, [x_spec, seed_spec]),
        "sample": (sample, [count_spec, seed_spec]),
    }
    if getattr(model, "has_density", False):
        def log_likelihood(x, num_samples, seed):
            return {"log_likelihood": _batched_log_likelihood(model, x, num_samples, seed)}

        endpoints["log_likelihood"] = (log_likelihood, [x_spec, count_spec, seed_spec])
    return endpoints


def _batched_log_likelihood(model, x, num_samples, seed):
    """`model.log_likelihood(x, num_samples, chunk_size=100, seed=seed)` as one graph.

    Mirrors the model's batching exactly (batches of min(100, B) examples, the last one padded
    by repeating its last example, the seed folded with the batch's first index), so the
    endpoint gives the model's numbers for any request size.
    """
    x = model.check_input(x)
    seed = tf.cast(seed, tf.int32)
    num_samples = _at_least_one(num_samples, "log_likelihood")
    num_examples = tf.shape(x)[0]
    batch = tf.maximum(tf.minimum(LOG_LIKELIHOOD_BATCH_SIZE, num_examples), 1)

    def body(start, results):
        chunk = x[start:start + batch]
        size = tf.shape(chunk)[0]
        chunk = tf.concat([chunk, tf.repeat(chunk[-1:], batch - size, axis=0)], axis=0)
        values = model.log_likelihood_batch(chunk, num_samples, LOG_LIKELIHOOD_CHUNK_SIZE,
                                            tf.random.experimental.stateless_fold_in(seed, start))
        return start + batch, results.write(start // batch, values[:size])

    results = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False,
                             element_shape=tf.TensorShape([None]))
    _, results = tf.while_loop(lambda start, _: start < num_examples, body,
                               (tf.constant(0, tf.int32), results))
    return tf.ensure_shape(results.concat(), x.shape[:1])


def _at_least_one(num_samples, endpoint):
    """`num_samples`, refused at run time when < 1 (the model's methods refuse it in Python).

    A plain `Assert` whose first item is the whole message, so that the status text a client
    gets starts with it: "assertion failed: [sample: num_samples must be at least 1; got] [0]"
    (`assert_positive` would follow it with "Condition x > 0 did not hold element-wise: ...").
    """
    check = tf.debugging.Assert(
        num_samples >= 1, [f"{endpoint}: num_samples must be at least 1; got", num_samples],
        name="num_samples_at_least_1")
    with tf.control_dependencies([check]):
        return tf.identity(num_samples)


def _code_spec(model, x_spec, batch_size):
    """The input `z` of `decode`: float32 `[B, latent_dim]`, or what `encode` returns (e.g. a
    VQ-VAE's int32 code indices `[B, h, w]`)."""
    if getattr(model, "latent_dim", None) is not None:
        return tf.TensorSpec((batch_size, int(model.latent_dim)), tf.float32, name="z")
    traced = tf.function(model.encode, autograph=False).get_concrete_function(x_spec)
    code = traced.structured_outputs
    return tf.TensorSpec((batch_size,) + tuple(code.shape[1:]), code.dtype, name="z")


def _with_batch(spec, batch_size):
    """`spec` with a leading None dimension fixed to `batch_size` (when given)."""
    if batch_size is None or spec.shape.rank in (None, 0) or spec.shape[0] is not None:
        return spec
    return tf.TensorSpec((batch_size,) + tuple(spec.shape[1:]), spec.dtype, name=spec.name)


def _endpoint_function(fn, name, specs):
    """`fn` with its inputs' shapes checked at run time and its outputs in a dict.

    A signature of a loaded SavedModel does not check the shapes it is fed: a wrong shape would
    fail deep inside the graph ("Invalid reduction dimension ..."). `tf.ensure_shape` makes it
    fail first, naming the input: "Shape of tensor x [2,28,28] is not compatible with expected
    shape [?,28,28,1]". (A `tf.debugging.Assert` on `tf.shape(x)` would not do: Grappler folds
    it away using the signature's static shape.)
    """
    def endpoint(*args):
        args = [tf.ensure_shape(arg, spec.shape) for arg, spec in zip(args, specs)]
        outputs = fn(*args)
        return dict(outputs) if isinstance(outputs, dict) else {name: outputs}

    # Without TensorSpec names the signature names its inputs after the arguments: keep fn's.
    functools.update_wrapper(endpoint, fn)
    return endpoint
