"""Image grids of samples and reconstructions, as arrays and PNG files (Pillow only)."""
import math

import numpy as np

__all__ = ["image_grid", "save_image_grid", "save_png", "reconstruction_grid"]


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
