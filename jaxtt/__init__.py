"""jaxtt: tensor-train diffusion models in JAX."""

__version__ = "0.1.0"
