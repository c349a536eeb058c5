"""Pictures of models and training.

Image grids of samples and reconstructions, as arrays and PNG files (Pillow only):
`image_grid`, `reconstruction_grid`, `save_image_grid`, `save_png`.

Figures (matplotlib, the optional extra: `pip install tfvae[plots]`), each a
`matplotlib.figure.Figure` built without pyplot (no global backend state; show one in a
notebook by leaving it as a cell's value) and written as a PNG when given a `path`:

- `latent_scatter(codes, labels)`: 2-D codes coloured by label, over prior samples or contours
  of the prior's density;
- `latent_manifold(model)`: images decoded over a grid of a 2-D latent space (Kingma & Welling
  2013, Fig. 4);
- `training_curves(history)`: one panel per metric, training and validation together;
- `codebook_usage(model, data)`: how often each code of a VQ-VAE's codebook is used, with the
  perplexity of the code distribution.

matplotlib is imported only when a figure is drawn: without it the package imports and trains,
and a figure function raises ImportError naming the extra.
"""
import inspect
import json
import math
import os
import statistics

import numpy as np

__all__ = ["image_grid", "save_image_grid", "save_png", "reconstruction_grid",
           "latent_scatter", "latent_manifold", "training_curves", "codebook_usage"]

#: The quantiles a default `latent_manifold` spans in each latent unit (Kingma & Welling 2013,
#: Fig. 4: a linearly spaced grid on the unit square through the Gaussian's inverse CDF).
MANIFOLD_QUANTILES = (0.05, 0.95)


def image_grid(images, columns=None, padding=2):
    """Tile `[N, H, W, C]` (or `[N, H, W]`) images with values in [0, 1] into one uint8 image."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, H, W, C); got {images.shape}.")
    n, height, width, channels = images.shape
    if channels not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels; got {channels}.")
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.ones((rows * (height + padding) + padding, columns * (width + padding) + padding,
                    channels), np.float32)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        top, left = padding + r * (height + padding), padding + c * (width + padding)
        grid[top:top + height, left:left + width] = image
    grid = np.clip(grid, 0.0, 1.0)
    return (grid[..., 0] if channels == 1 else grid) * 255.0 // 1


def reconstruction_grid(originals, reconstructions, columns=8):
    """Rows alternate originals and their reconstructions, `columns` examples per row pair."""
    originals, reconstructions = np.asarray(originals), np.asarray(reconstructions)
    rows = []
    for start in range(0, len(originals), columns):
        rows.extend([originals[start:start + columns], reconstructions[start:start + columns]])
    return image_grid(np.concatenate(rows), columns=columns)


def save_image_grid(images, path, columns=None):
    """Tile a batch `[N, H, W(, C)]` of images in [0, 1] and write it as a PNG; returns the path."""
    return save_png(image_grid(images, columns=columns), path)


def save_png(grid, path):
    """Write an already tiled uint8 image (from `image_grid` or `reconstruction_grid`) as a PNG."""
    from PIL import Image

    Image.fromarray(np.asarray(grid, np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------- figures
def latent_scatter(codes, labels=None, *, prior_samples=None, prior=None, ax=None, path=None):
    """A scatter plot of 2-D codes, e.g. any model's `encode(x)`.

    Args:
        codes: `[N, 2]` array or tensor.
        labels: optional integers `[N]` (e.g. the digit of each example): one colour per label
            with a legend (a colorbar beyond 20 labels).
        prior_samples: optional `[M, 2]` draws from the prior, drawn underneath in light grey
            (e.g. `model.latent_prior.sample(1000, seed=(0, 0))`; the way to show a prior that
            can only be sampled, such as the swiss roll).
        prior: optional distribution with `log_prob` on `[..., 2]` points (e.g. `model.prior()`,
            a TFP distribution): contours of its density, underneath, on a grid covering the
            codes (and the prior samples).
        ax: draw into this matplotlib `Axes` instead of a new figure (its figure is returned).
        path: write the figure there as a PNG.

    Returns the `matplotlib.figure.Figure`. Raises ValueError for codes that are not `[N, 2]`
    or labels of another length.
    """
    codes = _points(codes, "codes")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(codes):
            raise ValueError(f"latent_scatter: expected one label per code, shape ({len(codes)},); "
                             f"got labels of shape {labels.shape}.")
        if labels.dtype.kind == "f" and not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError("latent_scatter: expected integer labels; got non-integer values.")
        labels = labels.astype(np.int64)
    if prior_samples is not None:
        prior_samples = _points(prior_samples, "prior_samples")
    if ax is None:
        figure = _figure("latent_scatter", figsize=(5.5, 5), layout="constrained")
        ax = figure.subplots()
    else:
        figure = ax.figure

    covered = codes if prior_samples is None else np.concatenate([codes, prior_samples])
    finite = covered[np.all(np.isfinite(covered), axis=1)]
    low, high = (finite.min(0), finite.max(0)) if len(finite) else (np.full(2, -1.0), np.ones(2))
    margin = np.maximum(0.1 * (high - low), 0.5)
    low, high = low - margin, high + margin
    if prior_samples is not None:
        ax.scatter(prior_samples[:, 0], prior_samples[:, 1], s=4, color="0.8", linewidths=0,
                   label="prior samples", zorder=0)
    if prior is not None:
        _density_contours(ax, prior, low, high)
    size = 8 if len(codes) <= 2000 else 3
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=size, color="tab:blue", linewidths=0,
                   label="codes", zorder=2)
        if prior_samples is not None:
            ax.legend(loc="best", markerscale=2, fontsize="small")
    else:
        classes = np.unique(labels)
        if len(classes) <= 20:
            colours = _colormap("tab10" if len(classes) <= 10 else "tab20")
            for index, label in enumerate(classes):
                chosen = labels == label
                ax.scatter(codes[chosen, 0], codes[chosen, 1], s=size, linewidths=0, zorder=2,
                           color=colours(index), label=str(label))
            ax.legend(loc="best", markerscale=2, fontsize="small",
                      title=None if prior_samples is not None else "label")
        else:
            points = ax.scatter(codes[:, 0], codes[:, 1], c=labels, s=size, cmap="viridis",
                                linewidths=0, zorder=2)
            figure.colorbar(points, ax=ax, label="label")
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    return _finish(figure, path)


def latent_manifold(model, grid=20, extent=None, *, label=None, path=None):
    """Images decoded from a `grid` × `grid` lattice of a 2-D latent space, tiled.

    Args:
        model: a model with a 2-D code (`latent_dim`, or `style_dim` for the semi-supervised
            AAE, equal to 2) whose `decode(z)` maps codes `[N, 2]` to images `[N, H, W, C]` in
            [0, 1] (for a Bernoulli decoder the pixel probabilities, the likelihood's mean).
        grid: lattice points per latent unit.
        extent: `(low, high)`: the lattice spans [low, high] in both units. None: it spans the
            prior's 5 % to 95 % quantiles in each unit, at evenly spaced probabilities (Kingma &
            Welling 2013, Fig. 4: for N(0, I), the Gaussian inverse CDF of a linearly spaced
            grid on the unit square); exact for a diagonal Gaussian prior, estimated from 10,000
            prior draws for any other (a mixture, the swiss roll).
        label: for models whose `decode` also takes classes (`decode(z, y)`: the
            semi-supervised AAE, an AAE with `label_mode="decoder"`; the dimensionality-reduction
            AAE, whose z is then a style around cluster head `label`): the class of every image,
            one int. A model whose `decode` requires it fails without it.
        path: write the figure there as a PNG.

    Returns the `matplotlib.figure.Figure`: z₁ grows to the right, z₂ upwards. Raises ValueError
    for a latent that is not 2-D (naming its size) or a bad extent.
    """
    name = type(model).__name__
    size = getattr(model, "latent_dim", None)
    if size is None:
        size = getattr(model, "style_dim", None)
    if size is None:
        raise ValueError(f"latent_manifold: cannot tell the latent size of {name} (it has no "
                         "latent_dim); expected a model with a 2-D latent.")
    if int(size) != 2:
        raise ValueError(f"latent_manifold needs a 2-D latent; {name} has a latent of size "
                         f"{int(size)}. Train one with latent_dim=2, or plot codes with "
                         "latent_scatter after a projection.")
    grid = int(grid)
    if grid < 2:
        raise ValueError(f"latent_manifold: expected grid >= 2 points per unit; got {grid}.")
    decode_args = _decode_label_args(model, label)
    axes = _manifold_axes(model, grid, extent, conditional=label is not None)
    # row r holds z2 = axes[1][grid - 1 - r] (largest on top), column c holds z1 = axes[0][c]
    z1, z2 = np.meshgrid(axes[0], axes[1][::-1])
    codes = np.stack([z1.ravel(), z2.ravel()], axis=-1).astype(np.float32)
    figure = _figure("latent_manifold", figsize=(7, 7), layout="constrained")
    images = np.asarray(model.decode(codes, *decode_args), np.float32)
    tiled = image_grid(images, columns=grid, padding=1) / 255.0
    ax = figure.subplots()
    ax.imshow(tiled, cmap="gray" if tiled.ndim == 2 else None, vmin=0.0, vmax=1.0,
              interpolation="nearest")
    height, width = images.shape[1:3]
    ticks = sorted({0, grid // 2, grid - 1})
    ax.set_xticks([1 + c * (width + 1) + width / 2 for c in ticks],
                  [f"{axes[0][c]:.2g}" for c in ticks])
    ax.set_yticks([1 + r * (height + 1) + height / 2 for r in ticks],
                  [f"{axes[1][grid - 1 - r]:.2g}" for r in ticks])
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(f"{name}: decoded latent grid" + ("" if label is None else f", class {label}"))
    return _finish(figure, path)


def training_curves(history, *, path=None):
    """One panel per metric over the epochs, `val_<m>` in the same panel as `<m>`.

    Args:
        history: a Keras `History` (what `fit()` returns), a dict `{metric: [value per epoch]}`,
            or the path of such a dict as JSON (the file `tfvae.callbacks.EpochHistory` writes,
            `history.json` of a `tfvae train` run). None values (a metric that appeared in a
            later epoch) are skipped.
        path: write the figure there as a PNG.

    Returns the `matplotlib.figure.Figure`. Raises ValueError for an empty history.
    """
    if isinstance(history, (str, os.PathLike)):
        with open(history) as f:
            history = json.load(f)
    history = getattr(history, "history", history)
    if not hasattr(history, "items") or not history:
        raise ValueError("training_curves: expected a Keras History or a non-empty dict "
                         f"{{metric: [values]}}; got {type(history).__name__} {history!r:.80}.")
    names = []
    for key in history:
        base = key[4:] if key.startswith("val_") else key
        if base not in names:
            names.append(base)
    columns = min(3, len(names))
    rows = int(math.ceil(len(names) / columns))
    figure = _figure("training_curves", figsize=(4 * columns, 3 * rows), layout="constrained")
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, name in zip(panels, names):
        drawn = 0
        for key, label, style in ((name, "training", "-"), (f"val_{name}", "validation", "--")):
            if key not in history:
                continue
            epochs, values = _series(history[key])
            if epochs:
                ax.plot(epochs, values, style, marker="o", markersize=3, label=label)
                drawn += 1
        if f"val_{name}" in history and drawn:
            ax.legend(fontsize="small")
        ax.set_title(name)
        ax.set_xlabel("epoch")
    for ax in panels[len(names):]:
        ax.set_visible(False)
    return _finish(figure, path)


def codebook_usage(model, data, *, path=None):
    """How often each code of a VQ-VAE's codebook is used on `data`.

    Args:
        model: has `encode(x)`, returning integer code indices of any shape (e.g. `[B, h, w]`),
            and `num_codes`, the codebook's size K.
        data: what `model.encode` takes (a batch `[B, ...]`), or a `tf.data.Dataset` of batches
            (or of `(x, y)` pairs), encoded batch by batch.
        path: write the figure there as a PNG.

    Returns the `matplotlib.figure.Figure`: a bar per code, the uses of each, and a title giving
    the perplexity exp(H) of the empirical code distribution (K when all codes are used equally,
    1 when one code takes everything) and the fraction of the K codes used at least once.
    Raises ValueError for indices that are not integers in [0, K).
    """
    num_codes = int(model.num_codes)
    if num_codes < 1:
        raise ValueError(f"codebook_usage: expected num_codes >= 1; got {num_codes}.")
    figure = _figure("codebook_usage", figsize=(max(6, min(14, num_codes / 16)), 3.5),
                     layout="constrained")
    if hasattr(data, "as_numpy_iterator"):  # a tf.data.Dataset: one batch at a time
        batches = [np.asarray(model.encode(b[0] if isinstance(b, tuple) else b)).ravel()
                   for b in data]
        indices = np.concatenate(batches) if batches else np.zeros([0], np.int64)
    else:
        indices = np.asarray(model.encode(data)).ravel()
    if indices.size == 0:
        raise ValueError("codebook_usage: the data gave no code indices.")
    if indices.dtype.kind not in "iu":
        if indices.dtype.kind != "f" or not np.all(np.equal(np.mod(indices, 1), 0)):
            raise ValueError(f"codebook_usage: expected integer code indices from "
                             f"{type(model).__name__}.encode; got {indices.dtype} values.")
    indices = indices.astype(np.int64)
    if indices.min() < 0 or indices.max() >= num_codes:
        raise ValueError(f"codebook_usage: expected code indices in [0, {num_codes}); got values "
                         f"in [{indices.min()}, {indices.max()}].")
    counts = np.bincount(indices, minlength=num_codes)
    probabilities = counts[counts > 0] / indices.size
    perplexity = float(np.exp(-np.sum(probabilities * np.log(probabilities))))
    used = int(np.count_nonzero(counts))

    ax = figure.subplots()
    ax.bar(np.arange(num_codes), counts, width=1.0, color="tab:blue", linewidth=0)
    ax.axhline(indices.size / num_codes, color="0.4", linestyle="--", linewidth=1,
               label="uniform use")
    ax.set_xlim(-0.5, num_codes - 0.5)
    ax.set_xlabel("code index")
    ax.set_ylabel(f"uses (of {indices.size} indices)")
    ax.legend(fontsize="small")
    ax.set_title(f"perplexity {perplexity:.1f} of {num_codes} codes, {used / num_codes:.0%} used "
                 f"({used} of {num_codes})")
    return _finish(figure, path)


# --------------------------------------------------------------------------- helpers
def _figure(function, **kwargs):
    """A new `matplotlib.figure.Figure` (no pyplot), or ImportError naming the `plots` extra."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(f"tfvae.plotting.{function} draws with matplotlib, which is not "
                          "installed: pip install tfvae[plots]") from error
    return Figure(**kwargs)


def _colormap(name):
    from matplotlib import colormaps

    return colormaps[name]


def _finish(figure, path):
    """Write `figure` as a PNG at `path` (when given) and return it: every figure saves here."""
    if path is not None:
        figure.savefig(os.fspath(path), format="png", dpi=100)
    return figure


def _points(values, name):
    points = np.asarray(values, dtype=np.float64)
    if points.ndim != 2 or points.shape[-1] != 2:
        raise ValueError(f"latent_scatter: expected {name} of shape (N, 2), 2-D codes; got shape "
                         f"{points.shape}. Plot two units (codes[:, :2]) or a projection of "
                         "larger codes.")
    return points


def _density_contours(ax, prior, low, high, resolution=120):
    """Contours of exp(prior.log_prob) on a grid over [low, high] (2-vectors), underneath."""
    if not hasattr(prior, "log_prob"):
        raise ValueError(f"latent_scatter: prior must have log_prob on [..., 2] points (a TFP "
                         f"distribution); got {type(prior).__name__}. For a prior that can only be "
                         "sampled, pass prior_samples instead.")
    x = np.linspace(low[0], high[0], resolution)
    y = np.linspace(low[1], high[1], resolution)
    grid_x, grid_y = np.meshgrid(x, y)
    points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1).astype(np.float32)
    try:
        log_density = np.asarray(prior.log_prob(points), np.float64).reshape(grid_x.shape)
    except NotImplementedError as error:
        raise ValueError(f"latent_scatter: the prior has no density to draw ({error}); pass "
                         "prior_samples instead.") from None
    density = np.exp(np.where(np.isfinite(log_density), log_density, -np.inf))
    peak = float(density.max())
    if not np.isfinite(peak) or peak <= 0:
        return
    ax.contour(grid_x, grid_y, density, levels=peak * np.array([0.05, 0.2, 0.4, 0.6, 0.8]),
               cmap="Greys", linewidths=0.8, zorder=1)


def _decode_label_args(model, label):
    """`decode`'s arguments after z: `(label,)` with a label, `()` without; ValueError when the
    model's `decode` requires a class and none is given, or takes none and one is."""
    name = type(model).__name__
    try:
        parameters = list(inspect.signature(model.decode).parameters.values())[1:]
    except (TypeError, ValueError):
        parameters = []
    positional = [p for p in parameters
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    if label is None:
        required = [p.name for p in positional
                    if p.default is p.empty and p.kind != p.VAR_POSITIONAL]
        if required:
            classes = getattr(model, "num_classes", None)
            within = f", an int in [0, {classes})" if classes else ""
            raise ValueError(f"latent_manifold: {name}.decode(z, {', '.join(required)}) needs the "
                             f"class of the images: pass label=k{within}.")
        return ()
    if not positional:
        raise ValueError(f"latent_manifold: {name}.decode takes no class; got label={label!r}.")
    return (int(label),)


def _manifold_axes(model, grid, extent, conditional):
    """The lattice's values in z1 and in z2, `grid` each."""
    if extent is not None:
        try:
            low, high = (float(v) for v in extent)
        except (TypeError, ValueError):
            raise ValueError(f"latent_manifold: expected extent as a (low, high) pair; got "
                             f"{extent!r}.") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"latent_manifold: expected extent (low, high) with low < high; got "
                             f"{extent!r}.")
        axis = np.linspace(low, high, grid)
        return axis, axis
    probabilities = np.linspace(*MANIFOLD_QUANTILES, grid)
    distribution, sampler = _code_prior(model, conditional)
    gaussian = _diagonal_gaussian_moments(distribution)
    if gaussian is not None:
        mean, stddev = gaussian
        return tuple(np.array([statistics.NormalDist(m, s).inv_cdf(p) for p in probabilities])
                     for m, s in zip(mean, stddev))
    if sampler is None:
        raise ValueError(f"latent_manifold: cannot draw from the prior of {type(model).__name__} "
                         "to place the grid; pass extent=(low, high).")
    draws = np.asarray(sampler(10000), np.float64).reshape(10000, -1)
    if draws.shape[-1] != 2:
        raise ValueError(f"latent_manifold: the prior of {type(model).__name__} has "
                         f"{draws.shape[-1]} units, not the decoder's 2; pass extent=(low, high).")
    return tuple(np.quantile(draws[:, unit], probabilities) for unit in range(2))


def _code_prior(model, conditional):
    """(TFP distribution or None, sampler `n -> [n, 2]` or None) of the codes `decode` takes: the
    style prior when decoding with a class (a model with a `style_prior`), else `prior()`, else
    the sample-only `latent_prior`."""
    import tensorflow as tf

    seed = tf.constant([0, 0], tf.int32)
    style_prior = getattr(model, "style_prior", None) if conditional else None
    candidates = [style_prior.distribution] if style_prior is not None else [model.prior]
    for get in candidates:
        try:
            distribution = get()
        except NotImplementedError:
            continue
        return distribution, lambda n: distribution.sample(n, seed=seed)
    latent_prior = getattr(model, "latent_prior", None)
    if latent_prior is not None and hasattr(latent_prior, "sample"):
        return None, lambda n: latent_prior.sample(n, seed=seed)
    return None, None


def _diagonal_gaussian_moments(distribution):
    """(mean `[2]`, stddev `[2]`) of a diagonal Gaussian (an Independent Normal, an
    MultivariateNormalDiag), None for any other distribution."""
    if distribution is None:
        return None
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    base = distribution.distribution if isinstance(distribution, tfd.Independent) else distribution
    if not isinstance(base, tfd.Normal) and not isinstance(distribution, tfd.MultivariateNormalDiag):
        return None
    mean = np.asarray(distribution.mean(), np.float64).reshape(-1)
    stddev = np.asarray(distribution.stddev(), np.float64).reshape(-1)
    if mean.shape != (2,) or stddev.shape != (2,):
        return None
    return mean, stddev


def _series(values):
    """(epochs from 1, values) of a list of per-epoch values, None entries left out."""
    epochs, kept = [], []
    for epoch, value in enumerate(values, start=1):
        if value is None:
            continue
        epochs.append(epoch)
        kept.append(float(np.asarray(value, np.float64).ravel()[0]))
    return epochs, kept
