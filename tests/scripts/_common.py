"""Helpers shared by the scripts that tests launch as subprocesses.

Nothing here imports TensorFlow: a script that needs logical devices or a multi-worker strategy
must set them up before the first TensorFlow op, so each script imports TensorFlow itself, in
the order it needs, and calls these helpers only afterwards.
"""
import json
import os
from pathlib import Path

import numpy as np


def load_sample(num_examples=512):
    """The bundled real MNIST sample: float32 [N, 28, 28, 1] in [0, 1], the first N images."""
    import tfvae

    data = np.load(Path(tfvae.__file__).parent / "data" / "mnist_sample.npz")
    x = data["x_train"][:num_examples].astype("float32") / 255.0
    if len(x) < num_examples:
        raise SystemExit(f"the bundled sample has only {len(x)} training images")
    return x[..., None]


def load_labels(num_examples=512):
    """The digit labels (int64 [N]) of the images `load_sample(num_examples)` returns."""
    import tfvae

    data = np.load(Path(tfvae.__file__).parent / "data" / "mnist_sample.npz")
    return data["y_train"][:num_examples].astype("int64")


#: Every model family the shared production tests run on: class name -> its tiny configuration.
#: A new family adds one entry here and is then exported (test_export), saved and resumed
#: (test_saving) and trained on two replicas (test_distribute) like the others.
FAMILIES = {
    "VAE": {},
    "IWAE": {"num_samples": 3},
    # the gaussian posterior: its reconstruct(x, seed) draws, as the shared export tests expect
    "AdversarialAutoencoder": {"posterior": "gaussian"},
    # reconstruct(x, seed) draws the class from q(y|x); fit(x) alone: unsupervised clustering
    "SemiSupervisedAAE": {"num_classes": 3},
    "DimensionalityReductionAAE": {"num_clusters": 3},
}

#: The constructor argument that sizes a family's code, where it is not `latent_dim` (the
#: shared tests build every family with a code of the same size through `code_size_kwargs`).
CODE_SIZE_ARGUMENT = {"SemiSupervisedAAE": "style_dim"}


def code_size_kwargs(cls, latent_dim):
    """{argument: latent_dim} for the model class (or class name) `cls`: `style_dim` for the
    semi-supervised AAE, whose code is a class and a style, `latent_dim` for the others."""
    name = cls if isinstance(cls, str) else cls.__name__
    return {CODE_SIZE_ARGUMENT.get(name, "latent_dim"): latent_dim}


def tiny_model(cls_name="VAE", seed=0, hidden=16, latent_dim=4, **kwargs):
    """A tfvae model small enough for a 2-core CI machine (one hidden layer each side)."""
    import tfvae

    if isinstance(cls_name, str):
        kwargs = {**FAMILIES.get(cls_name, {}), **kwargs}
        cls = getattr(tfvae, cls_name)
    else:
        cls = cls_name
    return cls(input_shape=(28, 28, 1), **code_size_kwargs(cls, latent_dim),
               encoder=tfvae.networks.mlp([hidden], activation="tanh"),
               decoder=tfvae.networks.mlp([hidden], activation="tanh"), seed=seed, **kwargs)


def named_weights(model):
    """{variable path: value} for every model variable (trainable, non-trainable, seed state)."""
    out = {}
    for variable in model.weights:
        path = getattr(variable, "path", variable.name)
        out[path] = np.asarray(variable)
    return out


def write_json(path, payload):
    """Write `payload` atomically, so a killed writer never leaves half a file behind."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


def save_npz(path, arrays):
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
