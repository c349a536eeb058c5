"""tfvae.optimizers.Adam: Keras' Adam equations in one fused kernel, and compile()'s use of it."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tolerances import float32_tolerance

STEPS = 5


def gradients(shape, seed=0):
    return np.random.default_rng(seed).normal(size=(STEPS,) + shape).astype(np.float32)


def adam_reference(theta, grads, learning_rate, beta_1, beta_2, epsilon):
    """Kingma & Ba (2015), Algorithm 1, as Keras writes it (ε outside the root), in float64."""
    theta = theta.astype(np.float64)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads.astype(np.float64), start=1):
        m += (1 - beta_1) * (g - m)
        v += (1 - beta_2) * (g * g - v)
        alpha = learning_rate * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        theta -= alpha * m / (np.sqrt(v) + epsilon)
    return theta


def run(optimizer, theta, grads, jit_compile=False):
    variable = keras.Variable(theta)
    optimizer.build([variable])

    @tf.function(jit_compile=jit_compile)
    def step(g):
        optimizer.apply_gradients([(g, variable)])

    for g in grads:
        step(tf.constant(g))
    return np.asarray(variable), optimizer


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fused_adam_follows_algorithm_1(jit_compile):
    theta = np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32)
    grads = gradients(theta.shape)
    settings = dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-4)
    fused, optimizer = run(tfvae.optimizers.Adam(**settings), theta, grads, jit_compile)
    expected = adam_reference(theta, grads, **settings)
    # each step rounds θ (|θ| ≤ max|θ|) and an update of size ≤ lr·(1 + a few eps): a handful of
    # float32 roundings at the magnitude of θ per step
    np.testing.assert_allclose(fused, expected, rtol=0,
                               atol=float32_tolerance(theta, expected, ops=4 * STEPS))
    assert int(optimizer.iterations) == STEPS
    # it moved: the test would fail for an update that did nothing
    assert np.max(np.abs(fused - theta)) > 0.5 * settings["learning_rate"]


def test_fused_adam_agrees_with_keras_adam():
    theta = np.random.default_rng(2).normal(size=(13,)).astype(np.float32)
    grads = gradients(theta.shape, seed=3)
    fused, fused_optimizer = run(tfvae.optimizers.Adam(1e-3, epsilon=1e-4), theta, grads)
    plain, plain_optimizer = run(keras.optimizers.Adam(1e-3, epsilon=1e-4), theta, grads)
    np.testing.assert_allclose(fused, plain, rtol=0, atol=float32_tolerance(theta, ops=4 * STEPS))
    for a, b in zip(fused_optimizer.variables, plain_optimizer.variables):  # m, v, iterations
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0,
                                   atol=float32_tolerance(np.asarray(b), grads, ops=4 * STEPS))


def test_amsgrad_takes_keras_path_exactly():
    theta = np.linspace(-1, 1, 6).astype(np.float32)
    grads = gradients(theta.shape, seed=4)
    fused, _ = run(tfvae.optimizers.Adam(1e-2, amsgrad=True), theta, grads)
    plain, _ = run(keras.optimizers.Adam(1e-2, amsgrad=True), theta, grads)
    np.testing.assert_array_equal(fused, plain)


def test_compile_fuses_a_plain_adam_in_place_and_leaves_others_alone():
    model = tfvae.VAE((4,), 2, likelihood="gaussian", seed=0)
    adam = keras.optimizers.Adam(3e-4, epsilon=1e-4)
    model.compile(optimizer=adam)
    assert model.optimizer is adam and type(adam) is tfvae.optimizers.Adam
    assert float(adam.learning_rate) == pytest.approx(3e-4) and adam.epsilon == 1e-4

    model = tfvae.VAE((4,), 2, likelihood="gaussian", seed=0)
    model.compile(optimizer="adam")
    assert type(model.optimizer) is tfvae.optimizers.Adam

    model = tfvae.VAE((4,), 2, likelihood="gaussian", seed=0)
    sgd = keras.optimizers.SGD(0.1)
    model.compile(optimizer=sgd)
    assert model.optimizer is sgd and type(sgd) is keras.optimizers.SGD

    aae = tfvae.AdversarialAutoencoder((4,), 2, likelihood="gaussian", seed=0)
    aae.compile(optimizer=keras.optimizers.Adam(1e-3),
                discriminator_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    assert all(type(o) is tfvae.optimizers.Adam for o in aae.all_optimizers())
    assert aae.get_optimizer("discriminator_optimizer").beta_1 == 0.5


def test_fused_adam_round_trips_through_keras_serialization():
    optimizer = tfvae.optimizers.Adam(2e-3, beta_2=0.95, epsilon=1e-5)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(optimizer), safe_mode=True)
    assert type(restored) is tfvae.optimizers.Adam
    assert restored.get_config() == optimizer.get_config()
