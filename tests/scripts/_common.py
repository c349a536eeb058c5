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
#: (test_saving) and trained on two replicas (test_distribute) like the others. Its code and
#: networks are sized by `architecture_kwargs` (a builder in `ARCHITECTURES` where the family
#: is not built from encoder and decoder bodies).
FAMILIES = {
    "VAE": {},
    "IWAE": {"num_samples": 3},
    # the gaussian posterior: its reconstruct(x, seed) draws, as the shared export tests expect
    "AdversarialAutoencoder": {"posterior": "gaussian"},
    # reconstruct(x, seed) draws the class from q(y|x); fit(x) alone: unsupervised clustering
    "SemiSupervisedAAE": {"num_classes": 3},
    "DimensionalityReductionAAE": {"num_clusters": 3},
    # two stochastic layers (see `_hierarchical`), batch norm on as by default: the shared
    # tests see moving statistics saved, exported and mirrored
    "LadderVAE": {},
    # bottom-up inference, with batch norm for the same reason (its default is off)
    "HierarchicalVAE": {"batch_norm": True},
    # integer codes on a grid (see `_vector_quantized`); the EMA codebook, whose non-trainable
    # cluster sizes and sums must be saved, resumed and reduced over replicas; dead codes
    # restarted after 3 steps: resumed and mirrored training draw the restarts' seeded picks,
    # and a code unused through test_saving's 2-step epoch is restarted in the next step only
    # if its count of unused steps was saved
    "VQVAE": {"ema_decay": 0.99, "dead_code_restart": 3},
    # adaptive contrast: its moments come from 4 draws of the black-box posterior per example,
    # so the shared tests see the contrast's draws seeded, resumed and mirrored too
    "AVB": {"adaptive_contrast": True, "contrast_samples": 4},
    # local noise and a Gaussian posterior: reconstruct(x, seed) and decode(z, seed) draw, and
    # its four optimizers (the two discriminators' and the autoencoder's, and the classifier's
    # of a categorical code, see test_iae) are saved, resumed and mirrored
    "ImplicitAutoencoder": {"local_dim": 3, "posterior": "gaussian"},
}

#: Families whose `reconstruct(x, seed)` is deterministic whatever their configuration: the
#: seed is accepted (the common signature) and changes nothing (a VQ-VAE's nearest codes).
DETERMINISTIC_RECONSTRUCTION = {"VQVAE"}

#: The constructor argument that sizes a family's code, where it is not `latent_dim` (the
#: shared tests build every family with a code of the same size through `architecture_kwargs`).
CODE_SIZE_ARGUMENT = {"SemiSupervisedAAE": "style_dim"}


def _bodies(name, latent_dim, hidden, activation):
    """A code of `latent_dim` units, and an encoder and a decoder of one hidden layer each."""
    import tfvae

    options = {} if activation is None else {"activation": activation}
    return {CODE_SIZE_ARGUMENT.get(name, "latent_dim"): latent_dim,
            "encoder": tfvae.networks.mlp([hidden], **options),
            "decoder": tfvae.networks.mlp([hidden], **options)}


def _hierarchical(name, latent_dim, hidden, activation):
    """Two stochastic layers whose top one, the code `sample` draws and `decode` takes, has
    `latent_dim` units (the bottom one twice as many), over deterministic blocks of `hidden`
    and `hidden // 2` units (their own leaky ReLU: `activation` does not apply)."""
    return {"latent_dims": (2 * latent_dim, latent_dim),
            "hidden_units": (hidden, max(1, hidden // 2))}


def _vector_quantized(name, latent_dim, hidden, activation):
    """Code vectors of `latent_dim` units, 8 of them (few enough that unused codes and their
    restarts show within a few steps), and the paper's convolutional networks (4x down- and
    upsampling: a 7x7 grid of codes for 28x28 images) with `hidden // 2` filters and one
    residual block each (their own ReLU: `activation` does not apply). Convolutions are cheap in
    parameters but not in time: half the width keeps a training step near the MLPs' (a
    4-epoch mirrored fit: 6 s against the VAE's 11 s)."""
    import tfvae

    filters = max(1, hidden // 2)
    return {"num_codes": 8, "code_dim": latent_dim,
            "encoder": tfvae.networks.vq_encoder(filters=filters, residual_blocks=1),
            "decoder": tfvae.networks.vq_decoder(filters=filters, residual_blocks=1)}


def _with_discriminator(name, latent_dim, hidden, activation):
    """`_bodies`, and a discriminator T(x, z) of one hidden layer of `hidden` units."""
    import tfvae

    options = {} if activation is None else {"activation": activation}
    return {**_bodies(name, latent_dim, hidden, activation),
            "discriminator": tfvae.networks.mlp([hidden], **options)}


def _implicit(name, latent_dim, hidden, activation):
    """A global code of `latent_dim` units, and an encoder, a decoder and two discriminators
    (on (x, z) pairs and on z) of one hidden layer of `hidden` units each."""
    import tfvae

    options = {} if activation is None else {"activation": activation}
    return {"global_dim": latent_dim,
            **{role: tfvae.networks.mlp([hidden], **options)
               for role in ("encoder", "decoder", "reconstruction_discriminator",
                            "regularization_discriminator")}}


#: How `architecture_kwargs` sizes a family that is not built from encoder and decoder bodies:
#: class name -> builder(name, latent_dim, hidden, activation) -> constructor arguments.
ARCHITECTURES = {"LadderVAE": _hierarchical, "HierarchicalVAE": _hierarchical,
                 "VQVAE": _vector_quantized, "AVB": _with_discriminator,
                 "ImplicitAutoencoder": _implicit}


def architecture_kwargs(cls, latent_dim=4, hidden=16, activation=None):
    """The constructor arguments that size the model class (or class name) `cls` in the shared
    tests: a code of `latent_dim` units (`style_dim` for the semi-supervised AAE, whose code is
    a class and a style; the top layer for the hierarchical models, whose `sample` and `decode`
    work on it; each code vector of the VQ-VAE, whose `decode` takes a grid of code indices)
    and networks of `hidden` units (`activation`: the MLPs' own default if None)."""
    name = cls if isinstance(cls, str) else cls.__name__
    return ARCHITECTURES.get(name, _bodies)(name, latent_dim, hidden, activation)


def tiny_model(cls_name="VAE", seed=0, hidden=16, latent_dim=4, **kwargs):
    """A tfvae model small enough for a 2-core CI machine (one tanh hidden layer each side, two
    small stochastic layers, or narrow convolutions around a small codebook; see
    `architecture_kwargs`)."""
    import tfvae

    if isinstance(cls_name, str):
        kwargs = {**FAMILIES.get(cls_name, {}), **kwargs}
        cls = getattr(tfvae, cls_name)
    else:
        cls = cls_name
    return cls(input_shape=(28, 28, 1), **architecture_kwargs(cls, latent_dim, hidden, "tanh"),
               seed=seed, **kwargs)


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
