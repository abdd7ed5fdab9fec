"""cnnkit.layers: Keras' layers over cnnkit's kernels (NHWC float32 images).

Each layer has Keras' constructor, builds its weights from the input shape, and runs as
layer(x, training=False) on a batch; models train it through forward/backward (see base.py).
"""
from .base import Layer
from .conv import Conv2D
from .core import Activation, Dense, Input, InputLayer
from .pooling import MaxPooling2D
from .preprocessing import (RandomContrast, RandomCrop, RandomFlip, RandomRotation,
                            RandomTranslation, RandomZoom)
from .regularization import Dropout
from .reshaping import Flatten, Reshape, UpSampling2D

MaxPool2D = MaxPooling2D  # Keras' alias

__all__ = ["Layer", "Input", "InputLayer", "Conv2D", "MaxPooling2D", "MaxPool2D", "Flatten",
           "Dense", "Activation", "Dropout", "Reshape", "UpSampling2D", "RandomFlip",
           "RandomTranslation", "RandomRotation", "RandomZoom", "RandomCrop", "RandomContrast"]
