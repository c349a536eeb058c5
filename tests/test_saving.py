""".keras saving: config, weights, optimizer state, seeded outputs, and resuming training.

Resuming needs the state of the model's `keras.random.SeedGenerator` (the training noise) in the
file: Keras does not save SeedGenerator states by itself (`Layer.save_own_variables` covers only
`_trainable_variables` and `_non_trainable_variables`), so `GenerativeModel` tracks it as a
variable. Without it, a loaded model replays the noise of its first epochs and
`test_seed_generator_state_is_saved` and `test_training_resumes_exactly` fail.
"""
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import tfvae
from scripts._common import FAMILIES, architecture_kwargs

SHAPE = (28, 28, 1)

CASES = {
    **{name.lower(): (getattr(tfvae, name), config) for name, config in FAMILIES.items()},
    "gaussian_learnable_prior": (tfvae.VAE, {"likelihood": "gaussian",
                                             "prior": "learnable_gaussian"}),
}


def make(case, weights_from=None):
    cls, kwargs = CASES[case]
    model = cls(input_shape=SHAPE, **architecture_kwargs(cls, 4, 32), seed=0, **kwargs)
    if weights_from is not None:  # `seed` seeds the training noise, not the initializers
        model.set_weights(weights_from.get_weights())
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


@pytest.fixture(scope="module")
def data():
    return (np.random.RandomState(0).rand(16, *SHAPE) > 0.5).astype("float32")


def fit(model, data, epochs=1):
    model.fit(data, batch_size=8, epochs=epochs, shuffle=False, verbose=0)  # 2 steps an epoch


def save_and_load(model, path):
    model.save(path)
    return keras.models.load_model(path, safe_mode=True)


def as_json(config):
    """A config as its .keras file stores it (tuples become lists)."""
    return json.loads(json.dumps(config))


def unique(variables):
    seen, result = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            result.append(v)
    return result


def assert_same_state(a, b, atol=0.0):
    """The same variables (weights, the seed state) and optimizer variables (iterations too)."""
    variables_a, variables_b = unique(a.variables), unique(b.variables)
    assert len(variables_a) == len(variables_b)
    # Nested layers get fresh unique names on load (mlp_2 -> mlp_4): compare in order.
    for u, v in zip(variables_a, variables_b):
        assert u.shape == v.shape and u.dtype == v.dtype, (u.path, v.path)
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=atol, rtol=0, err_msg=u.path)
    assert any("seed_generator_state" in v.path for v in variables_a)
    # every optimizer: Keras' own and the extra ones of adversarial models (optimizer_names)
    assert len(a.all_optimizers()) == len(b.all_optimizers()) == len(a.optimizer_names)
    for opt_a, opt_b in zip(a.all_optimizers(), b.all_optimizers()):
        assert opt_a.variables and len(opt_a.variables) == len(opt_b.variables)
        for u, v in zip(opt_a.variables, opt_b.variables):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=atol, rtol=0, err_msg=u.path)
        assert int(opt_a.iterations) == int(opt_b.iterations)


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip(case, data, tmp_path):
    model = make(case)
    fit(model, data)
    loaded = save_and_load(model, tmp_path / "m.keras")
    assert type(loaded) is type(model)
    assert as_json(loaded.get_config()) == as_json(model.get_config())
    assert_same_state(model, loaded)
    assert int(loaded.optimizer.iterations) == 2
    if case == "gaussian_learnable_prior":  # the prior's weights were trained and came back
        prior = [v for v in loaded.trainable_weights if "learnable_gaussian" in v.path]
        assert len(prior) == 2 and not np.allclose(np.asarray(prior[0]), 0.0)
    if case == "vqvae":  # the EMA cluster sizes and the counts of unused steps, not all zero
        assert np.any(np.asarray(loaded.quantizer.cluster_size) > 0)
        assert np.any(np.asarray(loaded.quantizer.steps_unused) > 0)
        np.testing.assert_array_equal(loaded.encode(data), model.encode(data))
    np.testing.assert_array_equal(loaded.sample(8, seed=3), model.sample(8, seed=3))
    np.testing.assert_array_equal(loaded.reconstruct(data, seed=(1, 2)),
                                  model.reconstruct(data, seed=(1, 2)))


def test_seed_generator_state_is_saved(data, tmp_path):
    model = make("vae")
    fit(model, data)
    assert np.any(np.asarray(model.seed_generator.state) != 0)
    loaded = save_and_load(model, tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(loaded.seed_generator.state),
                                  np.asarray(model.seed_generator.state))


@pytest.mark.parametrize("case", list(CASES))
def test_training_resumes_exactly(case, data, tmp_path):
    """fit 2 epochs == fit 1 epoch, save, load, fit 1 epoch (shuffle=False, same seed)."""
    straight = make(case)
    resumed = make(case, weights_from=straight)
    fit(straight, data, epochs=2)
    fit(resumed, data, epochs=1)
    resumed = save_and_load(resumed, tmp_path / "m.keras")
    fit(resumed, data, epochs=1)
    # the same computation on the same inputs and machine, split by a save/load: bit for bit
    assert_same_state(straight, resumed)


def fit_prior(model, data, prior, epochs):
    model.fit_prior(data, epochs=epochs, prior=prior, batch_size=8, shuffle=False, verbose=0)


def test_vqvae_code_prior_is_saved_and_its_training_resumes(data, tmp_path):
    """A VQ-VAE's PixelCNN prior over codes (attached by fit_prior) is part of the .keras file,
    with its optimizer's state: training it for 2 epochs equals 1 epoch, save, load, 1 more
    epoch of the loaded model's prior, and samples (drawn from it) come back."""
    straight = make("vqvae")
    resumed = make("vqvae", weights_from=straight)
    fit(straight, data)
    fit(resumed, data)  # the same VQ-VAE, bit for bit: the same codes to train the priors on
    priors = [tfvae.PixelCNNPrior(straight.grid_shape, straight.num_codes, num_layers=2, filters=8)
              for _ in range(2)]
    priors[1].set_weights(priors[0].get_weights())
    fit_prior(straight, data, priors[0], epochs=2)
    fit_prior(resumed, data, priors[1], epochs=1)
    resumed = save_and_load(resumed, tmp_path / "m.keras")
    assert type(resumed.code_prior) is tfvae.PixelCNNPrior
    fit_prior(resumed, data, resumed.code_prior, epochs=1)  # compiled: its optimizer goes on
    # the VQ-VAE and the prior's weights (model variables), then the prior's optimizer
    assert_same_state(straight, resumed)
    a, b = straight.code_prior.optimizer, resumed.code_prior.optimizer
    assert int(a.iterations) == int(b.iterations) == 4  # 2 batches of 8 grids, 2 epochs
    assert len(a.variables) == len(b.variables)
    for u, v in zip(a.variables, b.variables):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=u.path)
    np.testing.assert_array_equal(resumed.sample(8, seed=3), straight.sample(8, seed=3))


LOADER = textwrap.dedent('''
    import sys
    import numpy as np
    import tfvae  # registers the tfvae classes; nothing else is imported from the tests
    import keras

    path, x_file, out_file = sys.argv[1:]
    model = keras.models.load_model(path, safe_mode=True)
    x = np.load(x_file)
    np.savez(out_file, sample=model.sample(8, seed=3), reconstruct=model.reconstruct(x, seed=(1, 2)),
             iterations=int(model.optimizer.iterations), name=type(model).__name__)
''')


def test_load_in_a_fresh_process(data, tmp_path):
    model = make("gaussian_learnable_prior")
    fit(model, data)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", data)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", LOADER, str(tmp_path / "m.keras"),
                           str(tmp_path / "x.npy"), str(tmp_path / "out.npz")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    assert str(out["name"]) == "VAE" and int(out["iterations"]) == 2
    np.testing.assert_array_equal(out["sample"], model.sample(8, seed=3))
    np.testing.assert_array_equal(out["reconstruct"], model.reconstruct(data, seed=(1, 2)))
