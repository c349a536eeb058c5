"""tfvae model families, all on `GenerativeModel` (models/base.py)."""
from tfvae.models.aae import (AdversarialAutoencoder, DimensionalityReductionAAE,
                              SemiSupervisedAAE)
from tfvae.models.avb import AVB, NeuralSampler
from tfvae.models.base import GenerativeModel, TrainingPhase
from tfvae.models.gan import GAN
from tfvae.models.iae import ImplicitAutoencoder
from tfvae.models.ladder import HierarchicalVAE, LadderVAE
from tfvae.models.vae import IWAE, VAE
from tfvae.models.vqvae import VQVAE, PixelCNNPrior, VectorQuantizer

__all__ = ["GenerativeModel", "TrainingPhase", "VAE", "IWAE", "AdversarialAutoencoder", "SemiSupervisedAAE",
           "DimensionalityReductionAAE", "LadderVAE", "HierarchicalVAE", "VQVAE",
           "VectorQuantizer", "PixelCNNPrior", "AVB", "NeuralSampler", "GAN",
           "ImplicitAutoencoder"]
