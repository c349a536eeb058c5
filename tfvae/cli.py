"""The `tfvae` command under the package's name: `tfvae.cli.main`, `tfvae.cli.MODELS`, ...

The command itself lives in the top-level module `tfvae_cli`, outside this package, so that
`tfvae --help` and `tfvae --version` run without importing TensorFlow.
"""
import sys

import tfvae_cli

sys.modules[__name__] = tfvae_cli  # one module, two names: patches and registrations are shared
