"""cnnkit.applications: ready-made models built from the public layers, as keras.applications.

  classic_cnn        the classic Keras CIFAR-10 CNN, compiled
  conv_autoencoder   a convolutional autoencoder: (autoencoder, encoder, decoder)
  airbench94         airbench94's CIFAR-10 network (applications/airbench.py, with its
                     whitening kernel, schedule and test-time augmentation)

They import the engine and the layers, never cnnkit.models (which re-exports them), so there
is no import cycle.
"""
from .airbench import airbench94, patch_whitening_kernel, predict_with_tta
from .autoencoder import conv_autoencoder
from .classic_cnn import classic_cnn

__all__ = ["classic_cnn", "conv_autoencoder", "airbench94", "patch_whitening_kernel",
           "predict_with_tta"]
