"""Shared fixtures. TensorFlow logs are quieted before TensorFlow is imported."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_sample():
    """The bundled real MNIST sample as float32 [N, 28, 28, 1] in [0, 1]: (x_train, x_test)."""
    import tfvae

    data = np.load(Path(tfvae.__file__).parent / "data" / "mnist_sample.npz")
    return tuple((data[key].astype("float32") / 255.0)[..., None] for key in ("x_train", "x_test"))


@pytest.fixture(scope="session")
def shared_mnist_dir():
    """../shared/data/mnist beside the repository; tests using it skip when it is absent."""
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"real MNIST not found at {SHARED_MNIST} (only present beside the project)")
    return SHARED_MNIST
