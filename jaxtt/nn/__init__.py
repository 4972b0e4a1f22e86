"""Equinox neural-network baselines: sinusoidal time embedding, ResNet-MLP, U-Net (Ronneberger et al. 2015; Ho et al.
2020), and for images a convolutional VAE (Kingma & Welling 2014) and a CNN classifier (Fréchet-distance features).

Each module maps one example ``(x, t)``; :class:`Batched` turns it into the batched ``eps_fn(x, t)`` that
jaxtt's losses, samplers and :func:`jaxtt.train.fit` take.
"""

from jaxtt.nn.batched import Batched
from jaxtt.nn.classifier import (
    ConvClassifier,
    NoisyClassifier,
    accuracy,
    classifier_loss,
    noisy_classifier_loss,
    train_classifier,
)
from jaxtt.nn.conv import Conv3x3
from jaxtt.nn.embedding import SinusoidalEmbedding
from jaxtt.nn.resnet import ResNetMLP
from jaxtt.nn.unet import UNet
from jaxtt.nn.vae import VAE, negative_elbo, train_vae

__all__ = [
    "Batched",
    "Conv3x3",
    "ConvClassifier",
    "NoisyClassifier",
    "ResNetMLP",
    "SinusoidalEmbedding",
    "UNet",
    "VAE",
    "accuracy",
    "classifier_loss",
    "negative_elbo",
    "noisy_classifier_loss",
    "train_classifier",
    "train_vae",
]
