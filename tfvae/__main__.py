"""`python -m tfvae ...`: the `tfvae` command (see `tfvae_cli`)."""
import sys

from tfvae_cli import main

if __name__ == "__main__":
    sys.exit(main())
