"""Optimizers: Keras' Adam with one fused kernel per variable.

Keras 3 writes Adam's update (Kingma & Ba 2015, Algorithm 1) as seven element-wise ops and
three assignments per variable, each a pass over the weights; for the small MLPs of the papers
that is about 30 % of a training step on CPU (`benchmarks/README.md`). `Adam` computes the same
equations,

    m ← m + (1 - β1)(g - m),   v ← v + (1 - β2)(g² - v),
    θ ← θ - α_t · m / (√v + ε),   α_t = lr · √(1 - β2^t) / (1 - β1^t),

in TensorFlow's fused `ResourceApplyAdam` kernel (one pass; XLA compiles it too).
`GenerativeModel.compile` uses it for every plain `keras.optimizers.Adam` it is given (see
`fused`), so `compile(optimizer=keras.optimizers.Adam(1e-3))` gets the fast path as it is.
"""
import keras
import tensorflow as tf

__all__ = ["Adam", "fused"]


def _handle(variable):
    """The resource handle of a Keras (or tf) variable, for raw training ops."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


@keras.saving.register_keras_serializable(package="tfvae")
class Adam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (same arguments, state, configuration and equations) whose update
    runs as one fused kernel per variable. AMSGrad and sparse (`IndexedSlices`) gradients take
    Keras' own path. Results agree with Keras' Adam to float32 rounding, not bit for bit (the
    kernel orders the arithmetic its own way)."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]), beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype), beta1=beta_1,
            beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype),
            use_locking=False)


def fused(optimizer):
    """`optimizer` with the fused update where it is a plain `keras.optimizers.Adam` (also inside a
    `LossScaleOptimizer`): the same object, its class changed to `tfvae.optimizers.Adam`, so the
    caller's reference, configuration and state all stay what they were. Any other optimizer is
    returned as it is."""
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:
        fused(inner)
    elif type(optimizer) is keras.optimizers.Adam:
        optimizer.__class__ = Adam
    return optimizer
