"""cnnkit.applications: ready-made models built from the public layers, as keras.applications.

  conv_autoencoder   a convolutional autoencoder: (autoencoder, encoder, decoder)
"""
from .autoencoder import conv_autoencoder

__all__ = ["conv_autoencoder"]
