"""The fused likelihood kernels against plain TensorFlow ops, on the IWAE k=50 training shapes.

    python benchmarks/kernels.py            # best-of-5 milliseconds per call, both paths

Times `Bernoulli.log_prob` (value, and value + gradient) for k·B = 50·100 rows of 784 logits, and
the paper decoder followed by the log-likelihood per row for 41,700 rows (one evaluation chunk),
with `tfvae.likelihoods.fused_kernels(True)` and `(False)`; each path is traced in its own
`tf.function`. Figures depend on the machine and its load: compare the two columns of one run.
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def best_ms(fn, *args, calls=10, repeats=5):
    """Fastest mean time of `calls` back-to-back calls over `repeats` tries, in milliseconds."""
    import tensorflow as tf

    fn(*args)  # trace and compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            out = fn(*args)
        tf.nest.flatten(out)[0].numpy()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def main():
    import keras
    import tensorflow as tf

    import tfvae

    bernoulli = tfvae.likelihoods.Bernoulli()
    logits = tf.random.stateless_normal([50, 100, 784], seed=[0, 1]) * 3
    x = tf.cast(tf.random.stateless_uniform([100, 784], seed=[0, 2]) < 0.3, tf.float32)
    upstream = tf.random.stateless_normal([50, 100], seed=[0, 3])

    def value(l, x):
        return bernoulli.log_prob(l, x, 1)

    def value_and_gradient(l, x, g):
        with tf.GradientTape() as tape:
            tape.watch(l)
            y = bernoulli.log_prob(l, x, 1)
        return y, tape.gradient(y, l, output_gradients=g)

    keras.utils.set_random_seed(0)
    decoder = tfvae.networks.mlp([200, 200], activation="tanh").with_target_shape((784,))
    z = tf.random.stateless_normal([41_700, 50], seed=[0, 4])
    x_rows = tf.cast(tf.random.stateless_uniform([41_700, 784], seed=[0, 5]) < 0.3, tf.float32)
    decoder(z[:1])

    def decode_and_score(z, x):
        return bernoulli.log_prob(decoder(z), x, 1)

    rows = [("log_prob, 50x100x784 logits", value, (logits, x), 1),
            ("log_prob + gradient, 50x100x784", value_and_gradient, (logits, x, upstream), 1),
            ("decoder + log_prob per row, 41,700 rows (us)", decode_and_score, (z, x_rows), 41_700)]
    print(f"{'':48s} {'fused ms':>10s} {'plain ms':>10s} {'plain/fused':>12s}")
    for name, fn, args, per in rows:
        times = []
        for fused in (True, False):
            with tfvae.likelihoods.fused_kernels(fused):
                times.append(best_ms(tf.function(fn), *args) * (1e3 / per if per > 1 else 1))
        print(f"{name:48s} {times[0]:10.2f} {times[1]:10.2f} {times[1] / times[0]:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
