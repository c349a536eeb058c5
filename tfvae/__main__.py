"""`python -m tfvae ...`: the `tfvae` command (see `tfvae.cli`)."""
import sys

from tfvae.cli import main

if __name__ == "__main__":
    sys.exit(main())
