"""tfvae: the variational-autoencoder family for Keras 3, TensorFlow and TensorFlow Probability."""
from tfvae import distributions, likelihoods, networks, objectives  # noqa: F401
from tfvae import callbacks, datasets, evaluation, optimizers, plotting  # noqa: F401
from tfvae.models import (AVB, GAN, IWAE, VAE, AdversarialAutoencoder,  # noqa: F401
                          DimensionalityReductionAAE, GenerativeModel, HierarchicalVAE,
                          ImplicitAutoencoder, NeuralSampler,
                          LadderVAE, PixelCNNPrior, SemiSupervisedAAE, VectorQuantizer, VQVAE)

__version__ = "0.1.0"

__all__ = ["VAE", "IWAE", "AdversarialAutoencoder", "SemiSupervisedAAE",
           "DimensionalityReductionAAE", "LadderVAE", "HierarchicalVAE", "VQVAE", "VectorQuantizer",
           "PixelCNNPrior", "AVB", "NeuralSampler", "ImplicitAutoencoder", "GAN", "GenerativeModel", "distributions",
           "likelihoods", "networks", "objectives", "optimizers", "callbacks", "evaluation", "plotting", "datasets", "__version__"]
