"""The `tfvae` command: train, evaluate and sample tfvae models from the shell.

    tfvae train iwae --dataset mnist --epochs 100 --out runs/iwae-k5 --num-samples 5
    tfvae train ladder --dataset mnist --epochs 200 --out runs/lvae --kl-warmup 200
    tfvae evaluate runs/iwae-k5 --dataset mnist --num-samples 5000
    tfvae sample runs/iwae-k5 -n 64 --out grid.png --seed 1
    tfvae train vqvae --dataset mnist --epochs 30 --out runs/vq --ema-decay 0.99
    tfvae train-prior runs/vq --epochs 20      # the VQ-VAE's prior over codes: then it samples
    tfvae train avb --dataset four_points --latent-dim 2 --epochs 20 --out avb --adaptive-contrast
    tfvae train iae --dataset mnist --global-dim 10 --local-dim 100 --epochs 30 --out iae
    tfvae evaluate avb --ais --ais-steps 1000 --ais-chains 16   # AVB's log p(x) by AIS

This module only wires the layers below it (datasets, models, callbacks, evaluation, export,
plotting) to argparse; it holds no model logic. It sits outside the `tfvae` package, whose import
loads TensorFlow: the parser, `--help` and `--version` need none of it, and TensorFlow's C++
start-up messages are silenced before it loads (unless `--verbose` or TF_CPP_MIN_LOG_LEVEL is
given). `tfvae.cli` is the same module under the package's name. `main(argv)` returns the exit status:
0 on success, 1 for a user error found while running (a missing run directory, a non-finite
loss, no TPU), 2 for a bad command line (an unknown option, model or dataset). Every error is
one line on stderr, `tfvae: error: ...`, without a traceback.

The strategy is created before any TensorFlow op runs (importing TensorFlow, Keras and tfvae runs
none): MultiWorkerMirroredStrategy must exist before the first op of the process.
"""
import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

__all__ = ["main", "build_parser", "version", "MODELS", "ModelSpec", "CommandError", "UsageError"]

PROG = "tfvae"
NETWORKS = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian", "fixed_gaussian")
BINARIZE = ("dynamic", "static", "none")
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
NUM_IMAGE_SAMPLES = 64          # samples.png
NUM_RECONSTRUCTIONS = 32        # reconstructions.png: 4 row pairs of 8 examples
NUM_SUMMARY_EXAMPLES = 8        # TensorBoard reconstructions
AIS_STEPS, AIS_CHAINS = 1000, 16  # tfvae evaluate --ais


class UsageError(Exception):
    """A bad command line: exit status 2."""


class CommandError(Exception):
    """A user error found while running a command: exit status 1."""


# --------------------------------------------------------------------------- model registry
@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One entry of `MODELS`: how `tfvae train MODEL` builds and compiles a model.

    The model is `tfvae.<class_name>(input_shape=..., encoder=..., decoder=..., seed=--seed,
    **{option: value})`, with one keyword argument per name in `options` (a `train` option's
    destination: `latent_dim`, `prior`, ...) whose value was given or has a default. A family
    with `bodies=False` gets no encoder and decoder bodies and refuses the options of
    `BODY_OPTIONS`, saying which options size it (`sized_by`): the hierarchical VAEs size their
    own networks from `--latent-dims` and `--hidden-units`; a family with `networks` (the
    VQ-VAE) gets the encoder and decoder that `networks(args)` builds from its options in
    `NETWORK_OPTIONS` (its default networks where it returns none). The other families get the
    body options' defaults when not given, and take the `--network` kinds in `body_networks`
    (AVB's encoder sees x flattened next to its noise: mlp only). `nll_by_ais`: the family's
    q(z|x) has no density, so its NLL comes from `tfvae evaluate DIR --ais` only. Options of
    other families (`MODEL_OPTIONS`) given on the command line are refused. `labels` is None
    (trains on images) or "partial" (trains on (image, label) pairs, all but --labelled of them
    marked unlabelled with -1), or "optional" (pairs only when --labelled N > 0 is given). `binarize`:
    the default of --binarize (None: dynamic for the bernoulli likelihood, else none). Every model compiles with Adam(--learning-rate), which
    adversarial models copy for their extra optimizers.
    """

    description: str
    class_name: str
    options: tuple = ()
    labels: str = None
    bodies: bool = True
    sized_by: str = "--latent-dims and --hidden-units"
    networks: Callable = None
    body_networks: tuple = NETWORKS
    nll_by_ais: bool = False
    binarize: str = None

    def build(self, args, input_shape):
        import tfvae

        from tfvae import networks

        kwargs = {}
        for name in self.options:
            value = _body_option(args, name) if name in BODY_OPTIONS else getattr(args, name, None)
            if value is not None and name not in DATA_OPTIONS + NETWORK_OPTIONS:
                kwargs[name] = value
        kwargs = {**FAMILY_DEFAULTS.get(self.class_name, {}), **kwargs}
        if self.networks is not None:
            kwargs.update(self.networks(args))
        if self.bodies:
            hidden, activation = _body_option(args, "hidden"), _body_option(args, "activation")
            if _body_option(args, "network") == "conv":
                kwargs["encoder"] = networks.conv_encoder(dense_units=hidden[-1], activation=activation)
                kwargs["decoder"] = networks.conv_decoder(dense_units=hidden[-1], activation=activation)
            else:
                kwargs["encoder"] = networks.mlp(list(hidden), activation=activation)
                kwargs["decoder"] = networks.mlp(list(hidden), activation=activation)
        return getattr(tfvae, self.class_name)(input_shape=input_shape, seed=args.seed, **kwargs)

    def compile(self, model, args):
        import keras

        model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                      jit_compile=True if args.jit_compile else "auto",
                      steps_per_execution=args.steps_per_execution)


#: Options that shape the data, not the model's constructor.
DATA_OPTIONS = ("labelled",)
#: Options that size a family's own networks (`ModelSpec.networks`), not constructor arguments.
NETWORK_OPTIONS = ("filters",)
#: Constructor arguments a family needs that have no default in its class.
FAMILY_DEFAULTS = {"SemiSupervisedAAE": {"num_classes": 10, "style_dim": 10},
                   "ImplicitAutoencoder": {"global_dim": 10, "local_dim": 100}}
#: The options of the families built from encoder and decoder bodies (`ModelSpec.bodies`), with
#: their defaults (the parser's are None, so that a family without bodies can refuse them).
BODY_OPTIONS = {"latent_dim": 50, "prior": "standard_normal", "network": "mlp",
                "hidden": (200, 200), "activation": "tanh"}

_VAE_OPTIONS = ("latent_dim", "likelihood", "prior", "beta", "num_samples")
_HIERARCHICAL_OPTIONS = ("latent_dims", "hidden_units", "batch_norm", "likelihood", "beta",
                         "num_samples")
_VQ_OPTIONS = ("num_codes", "code_dim", "filters", "commitment_cost", "ema_decay",
               "dead_code_restart", "likelihood")
_AVB_OPTIONS = ("latent_dim", "likelihood", "prior", "noise_dim", "adaptive_contrast",
                "discriminator_steps")
_IAE_OPTIONS = ("global_dim", "local_dim", "posterior", "prior", "discriminator_steps",
                "code_reconstruction_weight", "labelled")


def _vq_networks(args):
    """The VQ-VAE paper's encoder and decoder with --filters channels (none given: the model's
    own defaults, 128 channels)."""
    if getattr(args, "filters", None) is None:
        return {}
    from tfvae import networks

    return {"encoder": networks.vq_encoder(filters=args.filters),
            "decoder": networks.vq_decoder(filters=args.filters)}


#: `tfvae train MODEL`: name -> ModelSpec. A new family adds one entry.
MODELS = {
    "vae": ModelSpec("variational autoencoder (Kingma & Welling 2013)", "VAE", _VAE_OPTIONS),
    "iwae": ModelSpec("importance-weighted autoencoder (Burda et al. 2016)", "IWAE",
                      _VAE_OPTIONS),
    "aae": ModelSpec("adversarial autoencoder (Makhzani et al. 2016)", "AdversarialAutoencoder",
                     ("latent_dim", "likelihood", "prior", "posterior")),
    "ssaae": ModelSpec("semi-supervised adversarial autoencoder and clustering (Makhzani et al. "
                       "2016)", "SemiSupervisedAAE",
                       ("num_classes", "style_dim", "likelihood", "labelled"), labels="partial"),
    "ladder": ModelSpec("ladder variational autoencoder (Sønderby et al. 2016)", "LadderVAE",
                        _HIERARCHICAL_OPTIONS, bodies=False),
    "hvae": ModelSpec("hierarchical VAE with bottom-up inference, the ladder VAE's baseline "
                      "(Sønderby et al. 2016)", "HierarchicalVAE", _HIERARCHICAL_OPTIONS,
                      bodies=False),
    "vqvae": ModelSpec("vector-quantized VAE, discrete codes; its prior over codes is trained "
                       "afterwards by 'tfvae train-prior' (van den Oord et al. 2017)", "VQVAE",
                       _VQ_OPTIONS, bodies=False, sized_by="--num-codes, --code-dim and --filters",
                       networks=_vq_networks),
    "avb": ModelSpec("adversarial variational Bayes: a black-box encoder z = f(x, noise) and a "
                     "discriminator for the KL; log p(x) by 'tfvae evaluate DIR --ais' "
                     "(Mescheder et al. 2017)", "AVB", _AVB_OPTIONS, body_networks=("mlp",),
                     nll_by_ais=True),
    "iae": ModelSpec("implicit autoencoder: a global code, an implicit decoder with local noise "
                     "and adversarial reconstruction on (x, z) pairs; --prior categorical "
                     "clusters, and with --labelled N classifies (Makhzani 2018)",
                     "ImplicitAutoencoder", _IAE_OPTIONS, labels="optional", bodies=False,
                     sized_by="--global-dim and --local-dim", binarize="none"),
}

#: Options that only some families take: given for another family, they are refused.
MODEL_OPTIONS = ("beta", "num_samples", "posterior", "kl_warmup", "num_classes", "style_dim",
                 "labelled", "latent_dims", "hidden_units", "batch_norm", "num_codes", "code_dim",
                 "filters", "commitment_cost", "ema_decay", "dead_code_restart", "noise_dim",
                 "adaptive_contrast", "discriminator_steps", "global_dim", "local_dim",
                 "code_reconstruction_weight")


def _option(name, value=None):
    """The command-line form of option `name` as given: --no-batch-norm for batch_norm False."""
    flag = name.replace("_", "-")
    return f"--no-{flag}" if value is False else f"--{flag}"


def _body_option(args, name):
    """The value of the body option `name` (`BODY_OPTIONS`): as given, else its default."""
    value = getattr(args, name, None)
    return BODY_OPTIONS[name] if value is None else value


def _check_model_options(spec, args):
    """UsageError for an option given on the command line that `spec`'s family does not take
    (every such option's parser default is None: given means not None)."""
    for name in MODEL_OPTIONS:
        value = getattr(args, name, None)
        if value is not None and name not in spec.options + (
                ("kl_warmup",) if "beta" in spec.options else ()):
            raise UsageError(f"{_option(name, value)} does not apply to {args.model} "
                             f"({spec.description})")
    if not spec.bodies:
        for name in BODY_OPTIONS:
            if getattr(args, name, None) is not None and name not in spec.options:
                raise UsageError(f"{_option(name)} does not apply to {args.model} "
                                 f"({spec.description}): it is sized by {spec.sized_by}")
    elif getattr(args, "network", None) not in (None,) + spec.body_networks:
        raise UsageError(f"--network {args.network} does not apply to {args.model} "
                         f"({spec.description}): it takes --network "
                         f"{' or '.join(spec.body_networks)}")


# --------------------------------------------------------------------------- argument parsing
class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become `UsageError` (one line, exit 2) instead of
    usage text and `sys.exit`."""

    def error(self, message):
        raise UsageError(message)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=100)


def _number(convert, minimum, strict, description):
    """An argparse type: `convert(text)`, finite and > `minimum` (strict) or >= `minimum`."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or math.isinf(value) or not (value > minimum if strict else value >= minimum):
            raise argparse.ArgumentTypeError(f"expected {description}; got {text!r}")
        return value

    return parse


_positive_int = _number(int, 0, True, "a positive integer")
_non_negative_int = _number(int, 0, False, "an integer >= 0")
_positive_float = _number(float, 0.0, True, "a positive number")
_non_negative_float = _number(float, 0.0, False, "a number >= 0")


def _fraction(text):
    value = _non_negative_float(text)
    if value >= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1); got {text!r}")
    return value


def _decay(text):
    value = _positive_float(text)
    if value >= 1.0:
        raise argparse.ArgumentTypeError(f"expected a decay in (0, 1) such as 0.99; got {text!r}")
    return value


def _int_list(text):
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 200,200; got {text!r}")
    return values


def _dataset_name(text):
    """A data set argument: checked for form here (no TensorFlow yet), for meaning in the command."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a data set name or a folder of IDX files")
    return text


DATASET_HELP = ("'sample' (the bundled MNIST subset: no download), 'four_points' (the toy set "
                "of adversarial variational Bayes: four 2x2 images with one pixel on each, "
                "repeated to fill an epoch; train and test hold the same four, and the "
                "default --validation-fraction holds none of them out), a tensorflow-datasets "
                "name (mnist, binarized_mnist, fashion_mnist, kmnist, omniglot, cifar10, ...; "
                "every name in tfvae.datasets.KNOWN_DATASETS, optionally name:version) or a "
                "folder of IDX files (idx:PATH)")


def _check_dataset(name):
    """UsageError (exit 2) unless `tfvae.datasets` understands `name`."""
    from tfvae.datasets import KNOWN_DATASETS

    if name.split(":")[0] in KNOWN_DATASETS or name.startswith("idx:") or os.path.isdir(name):
        return name
    raise UsageError(f"argument --dataset: unknown dataset {name!r}; expected one of "
                     f"{', '.join(KNOWN_DATASETS)}, or a folder of IDX files (optionally written "
                     "idx:PATH)")


def build_parser():
    """The `tfvae` argument parser (sub-commands train, evaluate, sample, train-prior)."""
    parser = _Parser(prog=PROG, formatter_class=_HelpFormatter,
                     description="Train, evaluate and sample variational autoencoders "
                                 "(tfvae: Keras 3 + TensorFlow Probability).")
    dataset_help = DATASET_HELP
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--verbose", dest="tensorflow_logs", action="store_true",
                        help="show TensorFlow's start-up and C++ log messages (hidden unless "
                             "this is given or TF_CPP_MIN_LOG_LEVEL is set)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)

    # ---- train
    models = "\n".join(f"  {name:6s} {spec.description}" for name, spec in MODELS.items())
    train = commands.add_parser(
        "train", help="train a model and write a run directory", formatter_class=_HelpFormatter,
        description="Train MODEL and write the run directory DIR (--out): model.keras,\n"
                    "saved_model/, metrics.json, samples.png, reconstructions.png,\n"
                    "checkpoint.keras (after every epoch), logs/ (TensorBoard) and backup/\n"
                    "(resumes an interrupted run; removed when training ends).",
        epilog=f"models:\n{models}")
    train.set_defaults(handler=cmd_train)
    train.add_argument("model", metavar="MODEL", choices=sorted(MODELS),
                       help=f"model family: {', '.join(MODELS)}")
    data = train.add_argument_group("data")
    data.add_argument("--dataset", required=True, type=_dataset_name, metavar="NAME",
                      help=f"data set (required): {dataset_help}")
    data.add_argument("--train-split", default="train", metavar="SPLIT",
                      help="split to train on: a split name, a tensorflow-datasets slice such as "
                           "train[:90%%], or an IDX file prefix such as train5k "
                           "(default: %(default)s)")
    data.add_argument("--batch-size", type=_positive_int, default=100, metavar="N",
                      help="global batch size, split across replicas (default: %(default)s)")
    data.add_argument("--binarize", choices=BINARIZE, default=None,
                      help="binarize pixels: 'dynamic' re-draws Bernoulli(intensity) every epoch, "
                           "'static' draws once with --seed, 'none' keeps intensities; validation "
                           "and test data are binarized once with --seed (default: dynamic for "
                           "the bernoulli likelihood, none otherwise)")
    data.add_argument("--validation-fraction", type=_fraction, default=0.1, metavar="F",
                      help="fraction of the training split held out (its last examples) and "
                           "evaluated after every epoch; the test split is kept for the final "
                           "NLL; 0 turns validation off (default: %(default)s)")
    data.add_argument("--validation-split", default=None, metavar="SPLIT",
                      help="evaluate this split after every epoch instead of a held-out part "
                           "of the training split, or 'none' (default: the held-out part)")
    model = train.add_argument_group("model")
    model.add_argument("--latent-dim", type=_positive_int, default=None, metavar="D",
                       help="number of latent units (default: 50)")
    model.add_argument("--num-samples", type=_positive_int, default=None, metavar="K",
                       help="samples per example in the training objective: L for vae, k for "
                            "iwae, and for ladder and hvae k > 1 trains with the importance-"
                            "weighted bound (default: the model's own, 5 for iwae, else 1)")
    model.add_argument("--beta", type=_non_negative_float, default=None, metavar="B",
                       help="weight of the KL term (beta-VAE; vae, iwae, ladder, hvae) (default: 1.0)")
    model.add_argument("--num-classes", type=_positive_int, default=None, metavar="K",
                       help="ssaae: classes (or clusters, with --labelled 0) (default: 10)")
    model.add_argument("--style-dim", type=_positive_int, default=None, metavar="D",
                       help="ssaae: size of the style code (default: 10)")
    model.add_argument("--labelled", type=_non_negative_int, default=None, metavar="N",
                       help="ssaae, iae (with --prior categorical): training examples that keep "
                            "their label, the same number per class; the others are unlabelled; "
                            "0 trains without labels (unsupervised clustering) (default: 100 for "
                            "ssaae, 0 for iae)")
    model.add_argument("--posterior", choices=("deterministic", "gaussian", "universal"),
                       default=None,
                       help="q(z|x) of the aae and iae: deterministic, gaussian (reparameterized) "
                            "or, aae only, universal (noise as an extra encoder input) (default: "
                            "deterministic)")
    model.add_argument("--likelihood", choices=LIKELIHOODS, default="bernoulli",
                       help="decoder observation model (default: %(default)s)")
    model.add_argument("--prior", default=None, metavar="NAME",
                       help="latent prior from tfvae.distributions, e.g. standard_normal, "
                            "mixture_of_gaussians, learnable_gaussian, learnable_mixture; the "
                            "aae also takes swiss_roll (2-D), the iae categorical (clusters) "
                            "(default: standard_normal)")
    model.add_argument("--network", choices=NETWORKS, default=None,
                       help="encoder and decoder bodies; conv uses the last --hidden value as its "
                            "dense layer (default: mlp)")
    model.add_argument("--hidden", type=_int_list, default=None, metavar="UNITS",
                       help="hidden layer sizes, comma-separated (default: 200,200)")
    model.add_argument("--activation", default=None, metavar="NAME",
                       help="activation of the hidden layers, any Keras name (default: tanh)")
    model.add_argument("--latent-dims", type=_int_list, default=None, metavar="UNITS",
                       help="ladder, hvae: units of each stochastic layer, bottom first, "
                            "comma-separated (default: 64,32,16,8,4, the paper's MNIST model)")
    model.add_argument("--hidden-units", type=_int_list, default=None, metavar="UNITS",
                       help="ladder, hvae: units of the deterministic block below each "
                            "stochastic layer, one per layer (default: 512,256,128,64,32)")
    model.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                       help="ladder, hvae: batch normalization in every deterministic block, "
                            "or not (--no-batch-norm) (default: on for ladder, off for hvae)")
    model.add_argument("--num-codes", type=_positive_int, default=None, metavar="K",
                       help="vqvae: codes in the codebook (default: 512)")
    model.add_argument("--code-dim", type=_positive_int, default=None, metavar="D",
                       help="vqvae: size of each code vector, the encoder's output channels "
                            "(default: 64)")
    model.add_argument("--filters", type=_positive_int, default=None, metavar="F",
                       help="vqvae: channels of the convolutional encoder and decoder (the "
                            "paper's: two strided 4x4 convolutions and two residual blocks, "
                            "mirrored) (default: 128)")
    model.add_argument("--commitment-cost", type=_non_negative_float, default=None, metavar="B",
                       help="vqvae: weight beta of the commitment loss (default: 0.25)")
    model.add_argument("--ema-decay", type=_decay, default=None, metavar="G",
                       help="vqvae: learn the codebook by exponential moving averages with this "
                            "decay, e.g. 0.99, instead of by its loss (default: off)")
    model.add_argument("--dead-code-restart", type=_positive_int, default=None, metavar="STEPS",
                       help="vqvae: re-initialize a code that no encoder output used for this "
                            "many training steps from one of the batch's outputs (default: off)")
    model.add_argument("--noise-dim", type=_positive_int, default=None, metavar="N",
                       help="avb: size of the noise the encoder takes next to x, "
                            "z = f(x, noise) (default: --latent-dim)")
    model.add_argument("--adaptive-contrast", action="store_true", default=None,
                       help="avb: adaptive contrast (Sec. 4 of the paper): the discriminator "
                            "tells q(z|x) from a Gaussian with q's own mean and variance instead "
                            "of from the prior, a much smaller KL to estimate (default: off)")
    model.add_argument("--discriminator-steps", type=_positive_int, default=None, metavar="N",
                       help="avb, iae: updates of the discriminator (iae: of the (x, z) "
                            "pairs) per train step, before the encoder and decoder's one "
                            "(default: 1)")
    model.add_argument("--global-dim", type=_positive_int, default=None, metavar="D",
                       help="iae: size of the global code z; with --prior categorical, the "
                            "number of clusters (default: 10)")
    model.add_argument("--local-dim", type=_non_negative_int, default=None, metavar="N",
                       help="iae: size of the decoder's local noise; 0 gives deterministic "
                            "reconstructions (default: 100)")
    model.add_argument("--code-reconstruction-weight", type=_non_negative_float, default=None,
                       metavar="W", help="iae: weight of the cycle term that asks the encoder "
                                         "to read z back from g(z, n) (default: the model's)")
    fit = train.add_argument_group("training")
    fit.add_argument("--epochs", type=_positive_int, required=True, metavar="N",
                     help="number of epochs (required)")
    fit.add_argument("--out", required=True, metavar="DIR",
                     help="run directory to write (required); rerunning the same command after "
                          "an interruption resumes from DIR/backup")
    fit.add_argument("--learning-rate", type=_positive_float, default=1e-3, metavar="LR",
                     help="Adam learning rate (default: %(default)s)")
    fit.add_argument("--kl-warmup", type=_non_negative_int, default=None, metavar="EPOCHS",
                     help="raise the KL weight linearly from 0 to --beta over this many epochs "
                          "(vae, iwae, ladder, hvae); 0 turns warm-up off (default: 0)")
    fit.add_argument("--seed", type=int, default=0,
                     help="seed of weights, data order, binarization, training noise, samples "
                          "and evaluation (default: %(default)s)")
    fit.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                     help="Keras fit() output: 0 silent, 1 progress bar, 2 one line per epoch "
                          "(default: 1 when stdout is a terminal, else 2)")
    speed = train.add_argument_group("distribution and speed")
    speed.add_argument("--strategy", choices=STRATEGIES, default="default",
                       help="tf.distribute strategy: default (one device), mirrored (all local "
                            "GPUs), multiworker (the cluster in TF_CONFIG), tpu "
                            "(default: %(default)s)")
    speed.add_argument("--jit-compile", action="store_true",
                       help="compile train steps with XLA (default: off; Keras' 'auto')")
    speed.add_argument("--steps-per-execution", type=_positive_int, default=None, metavar="N",
                       help="train steps run per call into the compiled graph (default: "
                            "tfvae's, 10)")
    evaluation = train.add_argument_group("final evaluation")
    evaluation.add_argument("--eval-samples", type=_positive_int, default=5000, metavar="K",
                            help="importance samples per example for the test NLL; its time "
                                 "grows with K x --eval-examples, so 500 is ten times cheaper "
                                 "(and a looser bound) (default: %(default)s)")
    evaluation.add_argument("--eval-examples", type=_positive_int, default=1000, metavar="N",
                            help="test examples for the test NLL and active units "
                                 "(default: %(default)s)")

    # ---- evaluate
    evaluate = commands.add_parser(
        "evaluate", help="evaluate a trained run directory", formatter_class=_HelpFormatter,
        description="Load DIR/model.keras, estimate the negative log-likelihood by importance\n"
                    "sampling, run the model's own metrics and count active units; print them\n"
                    "and write DIR/evaluation.json. A VQ-VAE reports its codebook's use\n"
                    "(perplexity, codes used) instead of active units, and its NLL only once\n"
                    "'tfvae train-prior' has given it a prior over codes (the paper's estimate\n"
                    "-log p(x|z_q(x)) - log p(z_q(x)), not importance-sampled). An AVB, whose\n"
                    "q(z|x) has no density, gets its NLL by annealed importance sampling (--ais).")
    evaluate.set_defaults(handler=cmd_evaluate)
    evaluate.add_argument("run_dir", metavar="DIR", help="a run directory written by 'tfvae train'")
    evaluate.add_argument("--dataset", type=_dataset_name, default=None, metavar="NAME",
                          help=f"data set: {dataset_help} (default: the one DIR was trained on)")
    evaluate.add_argument("--split", default="test",
                          help="split to evaluate (default: %(default)s)")
    evaluate.add_argument("--num-samples", type=_positive_int, default=5000, metavar="K",
                          help="importance samples per example (default: %(default)s)")
    evaluate.add_argument("--examples", type=_positive_int, default=None, metavar="N",
                          help="evaluate the first N examples of the split (default: all)")
    evaluate.add_argument("--binarize", choices=BINARIZE, default=None,
                          help="binarize the data once with --seed (default: as DIR was "
                               "trained, 'static' if it binarized, else none)")
    evaluate.add_argument("--batch-size", type=_positive_int, default=100, metavar="N",
                          help="examples per batch (default: %(default)s)")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="seed of the binarization and the importance samples "
                               "(default: %(default)s)")
    ais = evaluate.add_argument_group(
        "annealed importance sampling",
        "log p(x) by AIS (tfvae.evaluation.ais_log_likelihood: HMC from the prior to the\n"
        "posterior), for the models that importance sampling cannot evaluate (avb) and next\n"
        "to it for the others; its time grows with steps x chains x examples. Written to\n"
        "evaluation.json as 'ais', with its settings, seconds and acceptance rate.")
    ais.add_argument("--ais", action="store_true",
                     help="also estimate log p(x) by annealed importance sampling (default: off)")
    ais.add_argument("--ais-steps", type=_positive_int, default=None, metavar="T",
                     help="annealing steps, one HMC transition of 10 leapfrog steps each "
                          f"(default: {AIS_STEPS})")
    ais.add_argument("--ais-chains", type=_positive_int, default=None, metavar="C",
                     help=f"chains per example (default: {AIS_CHAINS})")
    ais.add_argument("--ais-examples", type=_positive_int, default=None, metavar="N",
                     help="estimate it on the first N of the evaluated examples (default: all "
                          "of them, see --examples)")

    # ---- sample
    sample = commands.add_parser(
        "sample", help="draw samples from a trained run directory into a PNG grid",
        formatter_class=_HelpFormatter,
        description="Load DIR/model.keras and write a grid of samples x ~ p(x) as a PNG.")
    sample.set_defaults(handler=cmd_sample)
    sample.add_argument("run_dir", metavar="DIR", help="a run directory written by 'tfvae train'")
    sample.add_argument("-n", "--num", type=_positive_int, default=64, metavar="N",
                        help="number of samples (default: %(default)s)")
    sample.add_argument("--out", required=True, metavar="PNG", help="image file to write (required)")
    sample.add_argument("--seed", type=int, default=0,
                        help="sampling seed: the same seed gives the same images "
                             "(default: %(default)s)")

    # ---- train-prior
    prior = commands.add_parser(
        "train-prior", help="train a VQ-VAE run's prior over codes, so that it samples",
        formatter_class=_HelpFormatter,
        description="Load the VQ-VAE of DIR/model.keras, encode the images it was trained on\n"
                    "(the run's data set and training split, less its held-out part), train a\n"
                    "gated PixelCNN prior over the code grids (van den Oord et al. 2017, Sec.\n"
                    "3.3) and attach it: DIR/model.keras and DIR/saved_model/ are written again\n"
                    "with it, so that 'tfvae sample DIR' and the exported sample endpoint draw\n"
                    "from it; DIR/samples.png is redrawn and DIR/prior.json written. A prior\n"
                    "trained before is replaced.")
    prior.set_defaults(handler=cmd_train_prior)
    prior.add_argument("run_dir", metavar="DIR", help="a run directory written by 'tfvae train vqvae'")
    prior.add_argument("--epochs", type=_positive_int, required=True, metavar="N",
                       help="number of epochs (required)")
    prior.add_argument("--num-layers", type=_positive_int, default=6, metavar="L",
                       help="gated layers of the PixelCNN (default: %(default)s)")
    prior.add_argument("--filters", type=_positive_int, default=64, metavar="F",
                       help="channels of each of its stacks (default: %(default)s)")
    prior.add_argument("--dataset", type=_dataset_name, default=None, metavar="NAME",
                       help=f"data set: {dataset_help} (default: the one DIR was trained on)")
    prior.add_argument("--train-split", default=None, metavar="SPLIT",
                       help="split whose images are encoded (default: the one DIR was trained on)")
    prior.add_argument("--validation-fraction", type=_fraction, default=None, metavar="F",
                       help="fraction of the split held out (its last examples) and evaluated "
                            "after every epoch; 0 turns validation off (default: DIR's, so the "
                            "prior trains on the images the VQ-VAE trained on)")
    prior.add_argument("--binarize", choices=BINARIZE, default=None,
                       help="binarize the images once with --seed before encoding them "
                            "(default: as DIR was trained, 'static' if it binarized, else none)")
    prior.add_argument("--batch-size", type=_positive_int, default=100, metavar="N",
                       help="code grids per batch (default: %(default)s)")
    prior.add_argument("--learning-rate", type=_positive_float, default=1e-3, metavar="LR",
                       help="Adam learning rate (default: %(default)s)")
    prior.add_argument("--eval-examples", type=_positive_int, default=1000, metavar="N",
                       help="test examples for the prior's NLL (default: %(default)s)")
    prior.add_argument("--seed", type=int, default=0,
                       help="seed of the binarization, the prior's weights, the data order and "
                            "the samples (default: %(default)s)")
    prior.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                       help="Keras fit() output: 0 silent, 1 progress bar, 2 one line per epoch "
                            "(default: 1 when stdout is a terminal, else 2)")
    return parser


# --------------------------------------------------------------------------- helpers
def _one_line(error):
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split("\n")[0].split())


def _write_json(path, payload):
    """Write `payload` to `path` atomically (a killed run never leaves half a file)."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_to_json) + "\n")
    os.replace(tmp, path)


def _to_json(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "numpy"):
        return _to_json(np.asarray(value))
    return str(value)


def _scalar(value):
    """A float from a history entry (a float, or a [1] array under multi-worker training)."""
    import numpy as np

    return float(np.asarray(value, dtype="float64").ravel()[0])


def _binarize_arg(mode):
    return None if mode in (None, "none") else mode


def _load_model(run_dir):
    """DIR/model.keras, loaded with safe_mode=True; CommandError when it is not there."""
    run_dir = Path(run_dir)
    path = run_dir / "model.keras"
    if not run_dir.is_dir():
        raise CommandError(f"run directory {run_dir} does not exist "
                           "(expected the --out directory of 'tfvae train')")
    if not path.is_file():
        raise CommandError(f"{path} does not exist: {run_dir} is not a finished 'tfvae train' run")
    import_tensorflow()
    import keras

    import tfvae  # noqa: F401  (registers the tfvae classes for deserialization)

    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # a truncated or foreign file, a model from a newer tfvae
        raise CommandError(f"cannot load {path}: {type(error).__name__}: {_one_line(error)}") \
            from error


def _run_metadata(run_dir):
    """The `args` recorded in DIR/metrics.json by `tfvae train` ({} when absent)."""
    path = Path(run_dir) / "metrics.json"
    try:
        return json.loads(path.read_text()).get("args", {})
    except (OSError, ValueError):
        return {}


def _density_figures(model, x, num_samples, seed, *, binarized, verbose=1):
    """{'nll', 'bits_per_dim', 'meaning', ...}: the importance-sampled NLL of examples `x`
    (None for a model without a density), with what the number means, with a progress bar
    (`verbose` 1: a live bar on a terminal; 2: one line when done; 0: none).

    Binarized data under a Bernoulli decoder: −log p(x) in nats of a discrete distribution.
    Grey levels under a continuous decoder: the pixels are uniformly dequantized,
    x̃ = (round(255·x) + u)/256, and −log p(x̃) is a density (it can be negative); bits/dim
    adds D·log 256, which bounds the 8-bit images' code length.

    A VQ-VAE with a prior over its codes gives the paper's estimate instead (Sec. 3.2),
    −log p(x|z_q(x)) − log p(z_q(x)) (`approximate_log_likelihood`: no samples, not a bound;
    'approximate': True); without one, none ('note' says how to train one). A model whose
    q(z|x) has no density but whose p(z) p(x|z) has one (AVB) gets none either, with a 'note'
    pointing to `tfvae evaluate DIR --ais` (`_ais_figures`).
    """
    import numpy as np

    from tfvae import evaluation

    figures = {"nll": None, "bits_per_dim": None, "num_samples": num_samples,
               "num_examples": int(len(x))}
    approximate = getattr(model, "code_prior", None) is not None
    if not getattr(model, "has_density", False) and not approximate:
        name = type(model).__name__
        if hasattr(model, "fit_prior"):
            figures["meaning"] = f"{name} has no likelihood until a prior over its codes is trained"
            figures["note"] = "no prior over the codes yet: run 'tfvae train-prior DIR'"
        elif _nll_by_ais(model):  # AVB: a decoder density, a q(z|x) without one
            figures["meaning"] = (f"{name}'s q(z|x) has no density, so importance sampling "
                                  "cannot estimate its likelihood")
            figures["note"] = ("q(z|x) has no density; 'tfvae evaluate DIR --ais' estimates "
                               "log p(x) by annealed importance sampling")
        else:
            figures["meaning"] = f"{name} has no density: no likelihood"
        return figures
    x, meaning, levels, continuous = _observed(model, x, seed, binarized)
    dims = int(np.prod(x.shape[1:]))
    if approximate:
        nll = -float(np.mean(np.concatenate([
            np.asarray(model.approximate_log_likelihood(x[i:i + 100]))
            for i in range(0, len(x), 100)])))
        meaning += ("; estimated as -log p(x|z_q(x)) - log p(z_q(x)) with the learned prior "
                    "over codes (the VQ-VAE paper's estimate: the encoder's codes only, not a bound)")
        figures.update(num_samples=None, approximate=True)
    else:
        print(f"{PROG}: test NLL by importance sampling: k={num_samples} samples on {len(x)} "
              f"examples (--eval-samples and --eval-examples make it cheaper)", flush=True)
        nll = -float(evaluation.log_likelihood(model, x, num_samples=num_samples, seed=seed,
                                               verbose=verbose).mean())
    figures.update(nll=nll, bits_per_dim=evaluation.bits_per_dim(nll, dims, levels),
                   meaning=meaning, dequantized=continuous)
    return figures


def _observed(model, x, seed, binarized):
    """(x as the likelihood sees it, what its NLL means, the bits/dim levels, dequantized):
    grey levels under a continuous decoder are dequantized with `seed` (see `_density_figures`)."""
    from tfvae import datasets

    if model.observation_support() is None:
        meaning = ("negative log-density (nats per image) of uniformly dequantized 8-bit pixels "
                   "(round(255x) + u)/256, u ~ U(0, 1): a density, so it can be negative; "
                   "bits_per_dim adds D*log(256) and bounds the discrete images' code length")
        return datasets.dequantize(x, seed=seed).numpy(), meaning, 256, True
    if binarized:
        return (x, "negative log-probability (nats per image) of the binarized test images",
                None, False)
    return x, ("Bernoulli log-probability (nats per image) of grey-level intensities: not a "
               "normalized likelihood of the images; binarize them for one"), None, False


def _nll_by_ais(model):
    """Whether `model` is of a family whose likelihood only AIS estimates
    (`ModelSpec.nll_by_ais`)."""
    return any(spec.nll_by_ais and spec.class_name == type(model).__name__
               for spec in MODELS.values())


def _has_joint_density(model, x):
    """Whether the generative model p(z) p(x|z) of `model` has a density that annealed
    importance sampling can use (`evaluation.ais_log_likelihood`), tried on one example."""
    import tensorflow as tf

    try:
        z = model.latent_prior_sample(tf.constant([1, 1]), tf.constant([0, 0]))
        model.latent_log_prior(z), model.latent_log_likelihood(model.check_input(x[:1]), z)
    except Exception:  # noqa: BLE001 (no prior density, no decoder density, no such methods)
        return False
    return True


def _ais_figures(model, x, num_steps, num_chains, seed, *, binarized, batch_size=100, verbose=1):
    """{'nll', 'bits_per_dim', 'method', 'num_steps', 'num_chains', 'num_examples', 'seconds',
    'acceptance_rate', 'meaning', ...}: −log p(x) of examples `x` by annealed importance
    sampling (`evaluation.ais_log_likelihood`, its default schedule, leapfrog steps and step
    sizes), on the same (dequantized where continuous) pixels as `_density_figures`; an
    unbiased estimate of p(x) per example, so in expectation an upper bound on the NLL.
    CommandError for a model without a joint density (a VQ-VAE)."""
    import inspect

    import numpy as np

    from tfvae import evaluation

    if not _has_joint_density(model, x):
        raise CommandError(f"--ais: {type(model).__name__} has no joint density p(z) p(x|z) "
                           "for annealed importance sampling (it takes vae, iwae, ladder, hvae "
                           "and avb runs; a VQ-VAE's codes are discrete)")
    x, meaning, levels, continuous = _observed(model, x, seed, binarized)
    defaults = {name: parameter.default for name, parameter in
                inspect.signature(evaluation.ais_log_likelihood).parameters.items()}
    print(f"{PROG}: log-likelihood by annealed importance sampling: {num_steps} steps x "
          f"{num_chains} chains on {len(x)} examples (--ais-steps, --ais-chains and "
          "--ais-examples make it cheaper)", flush=True)
    try:
        result = evaluation.ais_log_likelihood(model, x, num_steps=num_steps,
                                               num_chains=num_chains, batch_size=batch_size,
                                               seed=seed, verbose=verbose, return_diagnostics=True)
    except (TypeError, ValueError) as error:
        raise CommandError(f"--ais: {_one_line(error)}") from error
    values = np.asarray(result.log_likelihood, dtype="float64")
    nll = -float(values.mean())
    return {"nll": nll, "bits_per_dim": evaluation.bits_per_dim(nll, int(np.prod(x.shape[1:])),
                                                                levels),
            "standard_error": float(values.std(ddof=1) / math.sqrt(len(values)))
            if len(values) > 1 else None,
            "method": "annealed importance sampling (tfvae.evaluation.ais_log_likelihood)",
            "num_steps": int(num_steps), "num_chains": int(num_chains),
            "num_examples": int(len(x)), "schedule": defaults["schedule"],
            "num_leapfrog_steps": defaults["num_leapfrog_steps"],
            "step_size": defaults["step_size"],
            "acceptance_rate": float(np.mean(result.acceptance_rate)),
            "seconds": float(result.seconds), "seed": seed,
            "meaning": meaning + "; by annealed importance sampling, an unbiased estimate of "
                                 "p(x) per example (in expectation an upper bound on the NLL)",
            "dequantized": continuous}


def _ais_text(figures):
    """"AIS: 1000 steps x 16 chains, 100 examples, 12.3 s, acceptance 0.65"."""
    return (f"AIS: {figures['num_steps']} steps x {figures['num_chains']} chains, "
            f"{figures['num_examples']} examples, {figures['seconds']:.1f} s, acceptance "
            f"{figures['acceptance_rate']:.2f}")


def _codebook_figures(model, x):
    """{'perplexity', 'codes_used', 'codes_used_count', 'num_codes', 'num_examples'}: how a
    VQ-VAE uses its codebook on all of `x` (`evaluation.codebook_statistics`, not one batch);
    None for a model without a codebook."""
    if getattr(model, "num_codes", None) is None or not hasattr(model, "quantizer"):
        return None
    from tfvae import evaluation

    statistics = evaluation.codebook_statistics(model, x)
    return {"perplexity": statistics["perplexity"], "codes_used": statistics["codes_used"],
            "codes_used_count": int((statistics["counts"] > 0).sum()),
            "num_codes": int(len(statistics["counts"])), "num_examples": int(len(x))}


def _codebook_text(figures):
    """"perplexity 12.34 of 512 codes, 43 used (8.4 %)"."""
    return (f"perplexity {figures['perplexity']:.2f} of {figures['num_codes']} codes, "
            f"{figures['codes_used_count']} used ({100 * figures['codes_used']:.1f} %)")


def _prior_mismatch(model, x, seed):
    """MMD² between the codes of `x` and as many prior samples (`evaluation.prior_mismatch`), for
    a model whose codes live in its prior's space (`latent_prior`); None otherwise."""
    prior = getattr(model, "latent_prior", None)
    if prior is None:
        return None
    from tfvae import distributions, evaluation

    samples = prior.sample(len(x), seed=distributions.stateless_seed(seed))
    return evaluation.prior_mismatch(evaluation.codes(model, x), samples)


def _active_text(active, per_layer):
    """"12", or with several stochastic layers "12 (per layer, bottom first: 8, 4)"."""
    if len(per_layer) < 2:
        return str(active)
    return f"{active} (per layer, bottom first: {', '.join(str(n) for n in per_layer)})"


def _nll_text(figures):
    if figures["nll"] is None:
        return f"n/a ({figures.get('note', 'the model has no density')})"
    text = f"{figures['nll']:.3f} nats ({figures['bits_per_dim']:.4f} bits/dim)"
    if figures.get("dequantized"):
        text += ", a density of dequantized pixels: can be negative"
    return text


def _nll_source(figures, what):
    """How the NLL of `_nll_text` was computed, for the line that prints it: `what` (e.g. "20
    importance samples, 50 test examples"), or the VQ-VAE's estimate; "" without a number."""
    if figures["nll"] is None:
        return ""
    if figures.get("approximate"):
        return (f" as -log p(x|z_q(x)) - log p(z_q(x)), the VQ-VAE's estimate, on "
                f"{figures['num_examples']} examples")
    return f" ({what})"


# --------------------------------------------------------------------------- strategy
def make_strategy(name):
    """The tf.distribute strategy named by --strategy."""
    tf = import_tensorflow()

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise CommandError(f"--strategy tpu: no TPU found ({_one_line(error)})") from error
        return tf.distribute.TPUStrategy(resolver)
    return tf.distribute.get_strategy()


def _worker_role(strategy):
    """(is_chief, task): who writes the run's artifacts under multi-worker training, and the
    task's name ('worker-1', 'chief-0'; None without MultiWorkerMirroredStrategy)."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True, None
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type or "worker", resolver.task_id or 0
    jobs = resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in jobs)
    return chief, f"{task_type}-{task_id}"


def _backup_epoch(backup):
    """The number of epochs an interrupted run in `backup` finished (0: nothing to resume)."""
    try:
        return int(json.loads((Path(backup) / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _tensorboard_installed():
    """Whether tf.summary can write (TensorFlow >= 2.21 no longer installs tensorboard itself)."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _throughput_callback():
    """A callback that counts train steps and times the training part of each epoch."""
    import keras

    class Throughput(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps, self.seconds = 0, 0.0
            self._start = self._epoch_steps = None

        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._epoch_steps = time.perf_counter(), 0
            self._first_iteration = int(self.model.optimizer.iterations)

        def on_train_batch_end(self, batch, logs=None):
            # the optimizer's count, not `batch`: with steps_per_execution N, Keras reports the
            # last call of an epoch as ending at a multiple of N, past the epoch's last batch
            self._epoch_steps = int(self.model.optimizer.iterations) - self._first_iteration
            self._last = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if self._epoch_steps:
                self.steps += self._epoch_steps
                self.seconds += self._last - self._start

    return Throughput()


# --------------------------------------------------------------------------- commands
def cmd_train(args):
    start = time.time()
    _check_model_options(MODELS[args.model], args)
    if MODELS[args.model].bodies:  # metrics.json records the options the model was built with
        for name in BODY_OPTIONS:
            setattr(args, name, _body_option(args, name))
    strategy = make_strategy(args.strategy)  # first: before any other TensorFlow op
    import keras

    keras.utils.set_random_seed(args.seed)

    from tfvae import callbacks as tfvae_callbacks
    from tfvae import datasets, plotting

    out = Path(args.out)
    is_chief, task = _worker_role(strategy)
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    binarize = args.binarize or MODELS[args.model].binarize or (
        "dynamic" if args.likelihood == "bernoulli" else "none")
    eval_binarize = None if binarize == "none" else "static"  # fixed draws for val and test

    _check_dataset(args.dataset)
    spec = MODELS[args.model]
    if spec.labels == "partial" and args.labelled is None:
        args.labelled = 100
    if spec.labels == "optional" and args.labelled and args.prior != "categorical":
        raise UsageError(f"--labelled {args.labelled} trains the classes of a categorical code: "
                         f"{args.model} needs --prior categorical for it")
    try:
        num_train, num_validation = datasets.num_examples(args.dataset, args.train_split), 0
        if args.validation_split is None:
            num_validation = int(round(args.validation_fraction * num_train))
            if num_validation >= num_train:
                raise UsageError(f"--validation-fraction {args.validation_fraction} leaves no "
                                 f"training examples of the {num_train} in {args.train_split!r}")
            if args.dataset == "four_points" and num_validation:
                raise UsageError(f"--validation-fraction {args.validation_fraction} would hold out "
                                 f"{num_validation} of the 4 images of four_points, which the model "
                                 "must learn all of: use --validation-fraction 0 or "
                                 "--validation-split test (the same four images)")
        labels = {}  # semi-supervised families: (image, label) pairs, -1 for unlabelled
        if spec.labels in ("partial", "optional") and args.labelled:
            labels = dict(with_labels=True)
        train_ds = datasets.load(args.dataset, args.train_split, batch_size=args.batch_size,
                                 binarize=_binarize_arg(binarize), seed=args.seed,
                                 take=num_train - num_validation,
                                 **labels, **({"labelled": args.labelled} if labels else {}))
        val_ds = None
        if num_validation:  # the held-out end of the training split
            val_ds = datasets.load(args.dataset, args.train_split, batch_size=args.batch_size,
                                   binarize=eval_binarize, seed=args.seed, shuffle=False,
                                   skip=num_train - num_validation, **labels)
        elif args.validation_split not in (None, "none"):
            val_ds = datasets.load(args.dataset, args.validation_split,
                                   batch_size=args.batch_size, binarize=eval_binarize,
                                   seed=args.seed, shuffle=False, **labels)
        x_test = None
        if is_chief:
            x_test, y_test = datasets.load_arrays(args.dataset, "test", binarize=eval_binarize,
                                             seed=args.seed, take=args.eval_examples)
    except UsageError:
        raise
    except Exception as error:  # missing files, no network, a broken tensorflow-datasets install
        raise CommandError(f"cannot load dataset {args.dataset!r}: {type(error).__name__}: "
                           f"{_one_line(error)}") from error
    image_spec = train_ds.element_spec
    image_spec = image_spec[0] if isinstance(image_spec, tuple) else image_spec
    input_shape = tuple(int(d) for d in image_spec.shape[1:])

    spec = MODELS[args.model]
    with strategy.scope():
        keras.utils.set_random_seed(args.seed)  # the same weights whatever ran before
        try:
            model = spec.build(args, input_shape)
        except (ValueError, TypeError) as error:
            raise UsageError(f"cannot build {args.model}: {_one_line(error)}") from error
        spec.compile(model, args)

    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.keras"
    logs = out / "logs" if is_chief else out / "logs" / task
    backup = out / "backup" if task is None else out / "backup" / task  # one per worker
    throughput = _throughput_callback()
    history_path = out / "history.json" if is_chief else out / f"history-{task}.json"
    resumed_at = _backup_epoch(backup)
    if resumed_at and is_chief:
        print(f"{PROG}: resuming from {backup} at epoch {resumed_at + 1}", flush=True)
    callbacks = [throughput,
                 keras.callbacks.BackupAndRestore(backup_dir=str(backup)),
                 tfvae_callbacks.EpochHistory(history_path),  # after BackupAndRestore
                 tfvae_callbacks.StopOnNonFiniteLoss(checkpoint_hint=str(checkpoint))]
    if is_chief:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(checkpoint), save_freq="epoch"))
    tensorboard = _tensorboard_installed()
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(logs)))
        if is_chief:
            callbacks.append(tfvae_callbacks.ImageSummaries(logs / "images",
                                                            x_test[:NUM_SUMMARY_EXAMPLES],
                                                            num_samples=16, seed=args.seed))
    elif is_chief:
        print(f"{PROG}: warning: the tensorboard package is not installed, so no TensorBoard logs "
              "are written (pip install tensorboard)", file=sys.stderr)
    if args.kl_warmup:
        callbacks.insert(0, tfvae_callbacks.KLWarmup(args.kl_warmup))

    fit_start = time.time()
    try:
        history = model.fit(train_ds, epochs=args.epochs, validation_data=val_ds,
                            callbacks=callbacks, verbose=verbose,
                            shuffle=False)  # the dataset shuffles itself
    except (tfvae_callbacks.NonFiniteLossError, ValueError, TypeError) as error:
        raise CommandError(_one_line(error)) from error  # bad data: the model's one-line message
    fit_seconds = time.time() - fit_start
    if task is not None:  # BackupAndRestore removed backup/worker-I: drop an empty backup/
        try:
            backup.parent.rmdir()
        except OSError:
            pass
    if not is_chief:
        return 0

    # ---- final artifacts (chief only)
    from tfvae import evaluation

    test = _density_figures(model, x_test, args.eval_samples, args.seed,
                            binarized=eval_binarize is not None, verbose=verbose)
    nll = test["nll"]
    codebook = _codebook_figures(model, x_test)  # a VQ-VAE: its codes are indices, not units
    active_per_layer = None if codebook else evaluation.active_units_per_layer(model, x_test)
    active = None if codebook else sum(active_per_layer)
    mismatch = _prior_mismatch(model, x_test, args.seed)
    classification = None
    if hasattr(model, "classify") and labels and (y_test >= 0).all():
        classification = evaluation.classification_error(model.classify(x_test), y_test)
    model_path, saved_model = out / "model.keras", out / "saved_model"
    samples_path, reconstructions_path = out / "samples.png", out / "reconstructions.png"
    model.save(model_path)
    model.export(str(saved_model))
    plotting.save_image_grid(model.sample(NUM_IMAGE_SAMPLES, seed=args.seed), samples_path)
    originals = x_test[:NUM_RECONSTRUCTIONS]
    plotting.save_png(plotting.reconstruction_grid(originals, model.reconstruct(originals)),
                      reconstructions_path)

    # the whole run, resumed parts included (Keras' History has only this fit's epochs)
    epochs = json.loads(history_path.read_text()) if history_path.exists() else {
        name: [_scalar(v) for v in values] for name, values in history.history.items()}
    final = {"train": {k: v[-1] for k, v in epochs.items() if not k.startswith("val_") and v},
             "validation": {k[4:]: v[-1] for k, v in epochs.items() if k.startswith("val_") and v}}
    examples = throughput.steps * args.batch_size
    metrics = {
        "model": args.model,
        "dataset": args.dataset,
        "final": final,
        "history": epochs,
        "test": {"split": "test", **test, "binarize": eval_binarize or "none"},
        "validation": {"split": args.validation_split or f"{args.train_split} (held out)",
                       "num_examples": num_validation if num_validation else None},
        "nll": nll,
        "active_units": active,
        "active_units_per_layer": active_per_layer,
        "codebook": codebook,
        "prior_mismatch": mismatch,
        "classification_error": classification,
        "latent_dim": getattr(model, "latent_dim", None),
        "num_parameters": int(sum(math.prod(w.shape) for w in model.trainable_weights)),
        "num_non_trainable_parameters": int(
            sum(math.prod(w.shape) for w in model.non_trainable_weights)),
        "num_replicas": int(strategy.num_replicas_in_sync),
        "train_steps": throughput.steps,
        "train_examples": examples,
        "train_seconds": throughput.seconds,
        "examples_per_s": examples / throughput.seconds if throughput.seconds > 0 else None,
        "fit_seconds": fit_seconds,
        "wall_time_s": time.time() - start,
        "config": model.get_config(),
        "args": {k: v for k, v in vars(args).items() if k != "handler"} | {"binarize": binarize},
    }
    metrics_path = out / "metrics.json"
    _write_json(metrics_path, metrics)

    nll_text = _nll_text(test)
    rate = metrics["examples_per_s"]
    print(f"tfvae: trained {args.model} on {args.dataset} for {args.epochs} "
          f"epoch{'s' if args.epochs != 1 else ''} in "
          f"{fit_seconds:.1f} s" + (f" ({rate:.0f} examples/s)" if rate else ""))
    print(f"  test NLL         {nll_text}" + _nll_source(
        test, f"{args.eval_samples} importance samples, {len(x_test)} test examples"))
    if codebook:
        print(f"  codebook use     {_codebook_text(codebook)} on {len(x_test)} test examples")
    else:
        print(f"  active units     {_active_text(active, active_per_layer)}")
    if classification is not None:
        print(f"  test error       {100 * classification:.2f} % (classify(x) on {len(x_test)} "
              f"test examples, {args.labelled} labels in training)")
    if mismatch is not None:
        print(f"  prior mismatch   {mismatch:.4g} (MMD² of the test codes against prior samples; "
              "0 when q(z) matches p(z))")
    for label, path in (("model", model_path), ("saved model", saved_model),
                        ("metrics", metrics_path), ("samples", samples_path),
                        ("reconstructions", reconstructions_path), ("checkpoint", checkpoint)):
        print(f"  {label:16s} {path}")
    if tensorboard:
        print(f"  {'tensorboard':16s} tensorboard --logdir {out / 'logs'}")
    return 0


def cmd_evaluate(args):
    if not args.ais:
        for name in ("ais_steps", "ais_chains", "ais_examples"):
            if getattr(args, name) is not None:
                raise UsageError(f"{_option(name)} needs --ais")
    model = _load_model(args.run_dir)
    recorded = _run_metadata(args.run_dir)
    dataset = args.dataset or recorded.get("dataset")
    if dataset is None:
        raise UsageError(f"--dataset is required ({args.run_dir} has no metrics.json to read it "
                         "from)")
    _check_dataset(dataset)
    binarize = args.binarize
    if binarize is None:
        binarize = "static" if recorded.get("binarize") in ("dynamic", "static") else "none"
    from tfvae import datasets, evaluation

    try:
        x, _ = datasets.load_arrays(dataset, args.split, binarize=_binarize_arg(binarize),
                                    seed=args.seed, take=args.examples)
    except Exception as error:  # missing files, no network, a broken tensorflow-datasets install
        raise CommandError(f"cannot load dataset {dataset!r}: {type(error).__name__}: "
                           f"{_one_line(error)}") from error
    if not getattr(model, "compiled", True):
        model.compile()
    verbose = 1 if sys.stdout.isatty() else 2
    figures = _density_figures(model, x, args.num_samples, args.seed,
                               binarized=binarize != "none", verbose=verbose)
    ais = None
    if args.ais:
        ais = _ais_figures(model, x[:args.ais_examples], args.ais_steps or AIS_STEPS,
                           args.ais_chains or AIS_CHAINS, args.seed,
                           binarized=binarize != "none", batch_size=args.batch_size,
                           verbose=verbose)
    codebook = _codebook_figures(model, x)  # a VQ-VAE: its codes are indices, not units
    active_per_layer = None if codebook else evaluation.active_units_per_layer(model, x)
    active = None if codebook else sum(active_per_layer)
    model_metrics = model.evaluate(x, batch_size=args.batch_size, verbose=0, return_dict=True)
    result = {"run_dir": str(args.run_dir), "dataset": dataset, "split": args.split,
              "binarize": binarize, "seed": args.seed, **figures, "ais": ais,
              "active_units": active,
              "active_units_per_layer": active_per_layer, "codebook": codebook,
              "metrics": {name: _scalar(value) for name, value in model_metrics.items()}}
    path = Path(args.run_dir) / "evaluation.json"
    _write_json(path, result)
    print(f"tfvae: evaluated {args.run_dir} on {dataset}/{args.split} ({len(x)} examples)")
    nll_text = _nll_text(figures)
    if ais is not None and figures["nll"] is None:  # AVB: the note says to run --ais
        nll_text = f"n/a ({figures['meaning']}; see the AIS NLL)"
    print(f"  NLL              {nll_text}"
          + _nll_source(figures, f"{args.num_samples} importance samples"))
    if ais is not None:
        print(f"  AIS NLL          {_nll_text(ais)} ({_ais_text(ais)})")
    if codebook:
        print(f"  codebook use     {_codebook_text(codebook)}")
    else:
        print(f"  active units     {_active_text(active, active_per_layer)}")
    estimated = ("elbo", "kl") if _nll_by_ais(model) else ()
    for name, value in result["metrics"].items():
        print(f"  {name:16s} {value:.4f}" + (" (through the discriminator: an estimate, not a "
                                             "bound)" if name in estimated else ""))
    print(f"  written to       {path}")
    return 0


def cmd_sample(args):
    model = _load_model(args.run_dir)
    from tfvae import plotting

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        plotting.save_image_grid(model.sample(args.num, seed=args.seed), out)
    except (OSError, ValueError) as error:  # e.g. an unknown image extension
        raise CommandError(f"cannot write {out}: {_one_line(error)}") from error
    print(f"tfvae: wrote {args.num} samples (seed {args.seed}) to {out}")
    return 0


def _save_run_model(model, run_dir):
    """Write DIR/model.keras and DIR/saved_model/ again from `model`, each replaced only once
    its new version is complete (an interrupted write leaves the old one)."""
    import shutil

    run_dir = Path(run_dir)
    model_path, saved_model = run_dir / "model.keras", run_dir / "saved_model"
    tmp_model, tmp_saved, old_saved = (run_dir / "model.tmp.keras", run_dir / "saved_model.tmp",
                                       run_dir / "saved_model.old")
    for stale in (tmp_saved, old_saved):
        shutil.rmtree(stale, ignore_errors=True)
    model.save(tmp_model)
    model.export(str(tmp_saved))
    os.replace(tmp_model, model_path)
    if saved_model.exists():
        saved_model.rename(old_saved)
    tmp_saved.rename(saved_model)
    shutil.rmtree(old_saved, ignore_errors=True)
    return model_path, saved_model


def cmd_train_prior(args):
    start = time.time()
    model = _load_model(args.run_dir)
    if not hasattr(model, "fit_prior"):
        raise CommandError(f"{args.run_dir} holds a {type(model).__name__}, which has no prior "
                           "over codes to train: train-prior is for 'tfvae train vqvae' runs")
    recorded = _run_metadata(args.run_dir)
    dataset = args.dataset or recorded.get("dataset")
    if dataset is None:
        raise UsageError(f"--dataset is required ({args.run_dir} has no metrics.json to read it "
                         "from)")
    _check_dataset(dataset)
    split = args.train_split or recorded.get("train_split", "train")
    fraction = args.validation_fraction
    if fraction is None:  # the run's held-out part, if it held one out of this split
        same = dataset == recorded.get("dataset") and split == recorded.get("train_split", "train")
        fraction = recorded.get("validation_fraction", 0.1) if (
            same and recorded.get("validation_split") is None) else 0.0
    binarize = args.binarize
    if binarize is None:
        binarize = "static" if recorded.get("binarize") in ("dynamic", "static") else "none"
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    import keras

    import tfvae
    from tfvae import callbacks as tfvae_callbacks
    from tfvae import datasets, plotting

    try:
        num_train = datasets.num_examples(dataset, split)
        num_validation = int(round(fraction * num_train))
        if num_validation >= num_train:
            raise UsageError(f"--validation-fraction {fraction} leaves no training examples of "
                             f"the {num_train} in {split!r}")
        common = dict(batch_size=args.batch_size, binarize=_binarize_arg(binarize),
                      seed=args.seed, shuffle=False)
        train_ds = datasets.load(dataset, split, take=num_train - num_validation, **common)
        val_ds = (datasets.load(dataset, split, skip=num_train - num_validation, **common)
                  if num_validation else None)
        x_test, _ = datasets.load_arrays(dataset, "test", binarize=_binarize_arg(binarize),
                                         seed=args.seed, take=args.eval_examples)
    except UsageError:
        raise
    except Exception as error:  # missing files, no network, a broken tensorflow-datasets install
        raise CommandError(f"cannot load dataset {dataset!r}: {type(error).__name__}: "
                           f"{_one_line(error)}") from error

    keras.utils.set_random_seed(args.seed)  # the prior's weights and the order of its batches
    prior = tfvae.PixelCNNPrior(model.grid_shape, model.num_codes, num_layers=args.num_layers,
                                filters=args.filters)
    validation = {} if val_ds is None else {"validation_data": (model.encode_data(val_ds),)}
    fit_start = time.time()
    try:
        history = model.fit_prior(train_ds, epochs=args.epochs, prior=prior,
                                  optimizer=keras.optimizers.Adam(args.learning_rate),
                                  batch_size=args.batch_size, verbose=verbose,
                                  callbacks=[tfvae_callbacks.StopOnNonFiniteLoss()], **validation)
    except tfvae_callbacks.NonFiniteLossError as error:
        raise CommandError(_one_line(error)) from error
    fit_seconds = time.time() - fit_start

    # the prior on the test codes, in bits per code next to the uniform prior's log2(K)
    import numpy as np

    codes = model.encode_data(x_test)
    positions = int(np.prod(model.grid_shape))
    nats = -float(np.mean(np.concatenate([np.asarray(prior.log_prob(codes[i:i + 100]))
                                          for i in range(0, len(codes), 100)]))) / positions
    figures = _density_figures(model, x_test, None, args.seed, binarized=binarize != "none",
                               verbose=0)
    result = {
        "run_dir": str(args.run_dir), "dataset": dataset, "train_split": split,
        "binarize": binarize, "seed": args.seed, "epochs": args.epochs,
        "num_layers": args.num_layers, "filters": args.filters, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate, "train_examples": num_train - num_validation,
        "validation_examples": num_validation or None, "fit_seconds": fit_seconds,
        "history": {name: [_scalar(v) for v in values] for name, values in history.history.items()},
        "test": {"split": "test", "num_examples": int(len(x_test)), "grid_shape": model.grid_shape,
                 "num_codes": model.num_codes, "nats_per_code": nats,
                 "bits_per_code": nats / math.log(2),
                 "uniform_bits_per_code": math.log2(model.num_codes), **figures},
    }
    model_path, saved_model = _save_run_model(model, args.run_dir)
    samples_path = Path(args.run_dir) / "samples.png"
    plotting.save_image_grid(model.sample(NUM_IMAGE_SAMPLES, seed=args.seed), samples_path)
    result["wall_time_s"] = time.time() - start
    prior_path = Path(args.run_dir) / "prior.json"
    _write_json(prior_path, result)

    test = result["test"]
    print(f"tfvae: trained the prior over codes of {args.run_dir} ({model.grid_shape[0]}x"
          f"{model.grid_shape[1]} grids of {model.num_codes} codes) on {dataset}/{split} "
          f"({num_train - num_validation} examples) for {args.epochs} "
          f"epoch{'s' if args.epochs != 1 else ''} in {fit_seconds:.1f} s")
    print(f"  prior NLL        {test['bits_per_code']:.4f} bits per code ({test['uniform_bits_per_code']:.4f} "
          f"for a uniform prior) on {len(x_test)} test examples")
    print(f"  test NLL         {_nll_text(figures)}" + _nll_source(figures, ""))
    for label, path in (("model", model_path), ("saved model", saved_model),
                        ("samples", samples_path), ("prior metrics", prior_path)):
        print(f"  {label:16s} {path}")
    print(f"  'tfvae sample {args.run_dir}' now draws codes from the learned prior")
    return 0


# --------------------------------------------------------------------------- entry point
def version():
    """The installed tfvae version, read without importing the package (and TensorFlow)."""
    from importlib import metadata

    try:
        return metadata.version("tfvae")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


_quiet_start = [False]  # set by main(): hide TensorFlow's start-up messages


def import_tensorflow():
    """Import TensorFlow; unless the user asked for its logs (--verbose, TF_CPP_MIN_LOG_LEVEL),
    without its C++ start-up messages (cuInit errors on machines without a GPU, CPU feature
    notes, absl's pre-initialization lines, which ignore TF_CPP_MIN_LOG_LEVEL): file
    descriptor 2 points to /dev/null while TensorFlow loads. Python errors are not hidden:
    they surface after stderr is restored."""
    if "tensorflow" in sys.modules or not _quiet_start[0]:
        import tensorflow
        return tensorflow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow


def main(argv=None):
    """Run the `tfvae` command line `argv` (default: sys.argv[1:]); returns the exit status."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help and --version
            return exit_.code if isinstance(exit_.code, int) else 0
        _quiet_start[0] = not args.tensorflow_logs and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
        return args.handler(args)
    except UsageError as error:
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except CommandError as error:
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
