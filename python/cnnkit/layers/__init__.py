"""cnnkit.layers: Keras' layers over cnnkit's kernels (NHWC float32 images).

Each layer has Keras' constructor, builds its weights from the input shape, and runs as
layer(x, training=False) on a batch, or records a node when called on symbolic tensors (a
functional model); models train it through forward/backward with per-call states (base.py).
"""
from .base import Layer
from .conv import Conv2D
from .core import Activation, Dense, Input, InputLayer
from .merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add,
                      average, concatenate, maximum, minimum, multiply, subtract)
from .pooling import MaxPooling2D
from .preprocessing import (RandomContrast, RandomCrop, RandomFlip, RandomRotation,
                            RandomTranslation, RandomZoom)
from .regularization import Dropout
from .reshaping import Flatten, Reshape, UpSampling2D

MaxPool2D = MaxPooling2D  # Keras' alias

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "Conv2D", "MaxPooling2D", "MaxPool2D",
           "Flatten", "Reshape", "UpSampling2D", "Dropout",
           "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate",
           "RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom", "RandomCrop",
           "RandomContrast"]
