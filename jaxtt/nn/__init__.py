"""Equinox neural-network baselines: sinusoidal time embedding, ResNet-MLP, U-Net (Ronneberger et al. 2015; Ho et al. 2020).

Each module maps one example ``(x, t)``; :class:`Batched` turns it into the batched ``eps_fn(x, t)`` that
jaxtt's losses, samplers and :func:`jaxtt.train.fit` take.
"""

from jaxtt.nn.batched import Batched
from jaxtt.nn.embedding import SinusoidalEmbedding
from jaxtt.nn.resnet import ResNetMLP
from jaxtt.nn.unet import UNet

__all__ = ["Batched", "ResNetMLP", "SinusoidalEmbedding", "UNet"]
