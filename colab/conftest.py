"""`pytest --nbmake colab` runs the tutorials quickly and offline.

nbmake starts each notebook's kernel as a subprocess of pytest, and the kernel inherits this
process's environment: variables set here, when pytest imports this file, reach the notebooks.

- ``TFVAE_SMOKE=1``: tiny data, few epochs and few importance samples (well under a minute each);
- ``TFVAE_OFFLINE=1``: use the MNIST sample bundled with tfvae, never try to download;
- ``TF_CPP_MIN_LOG_LEVEL=3``: no TensorFlow C++ log lines in the outputs.

Values already set in the environment win, so ``TFVAE_SMOKE=0 python -m pytest --nbmake colab``
runs the tutorials in full.
"""
import os

os.environ.setdefault("TFVAE_SMOKE", "1")
os.environ.setdefault("TFVAE_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
