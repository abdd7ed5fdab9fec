"""conv_autoencoder: a small convolutional autoencoder, as Keras' autoencoder tutorials write it.

The encoder maps an (H, W, C) image to a linear code of code_size values, the decoder maps a code
back to an image in [0, 1]. Both are plain Sequential models of public layers, and the
autoencoder is Sequential([encoder, decoder]): the three share the same layer objects, hence the
same weights, so after autoencoder.fit(x, x) the encoder and decoder compute with what it learned.

The architecture is fixed, for comparison with other frameworks (H, W divisible by 4):
  encoder  Conv2D(32, 3, same, relu) - MaxPooling2D(2) - Conv2D(64, 3, same, relu) -
           MaxPooling2D(2) - Flatten - Dense(code_size)
  decoder  Dense(H/4 * W/4 * 64, relu) - Reshape((H/4, W/4, 64)) - UpSampling2D(2) -
           Conv2D(32, 3, same, relu) - UpSampling2D(2) - Conv2D(C, 3, same, sigmoid)
compiled with Adam(learning_rate=1e-3), mean squared error, metrics mse and psnr.

Saving: autoencoder.save(path) writes all three (one set of weights); after
model = load_model(path), `encoder, decoder = model.layers` gives the sub-models back, still
sharing their weights with `model`.
"""
import numpy as np

from .. import optimizers
from ..layers import Conv2D, Dense, Flatten, Input, MaxPooling2D, Reshape, UpSampling2D
from ..engine.sequential import Sequential

__all__ = ["conv_autoencoder"]


def conv_autoencoder(input_shape=(32, 32, 3), code_size=256, compile=True):
    """Returns (autoencoder, encoder, decoder), built, and the autoencoder compiled (unless
    compile=False) with Adam(1e-3), 'mse' and metrics ['mse', 'psnr'].

    input_shape is (height, width, channels) with height and width divisible by 4 (two 2x2
    poolings, undone by two 2x upsamplings); images are expected in [0, 1] (sigmoid output)."""
    height, width, channels = _checked_shape(input_shape)
    if not isinstance(code_size, (int, np.integer)) or isinstance(code_size, bool) or code_size < 1:
        raise ValueError(f"conv_autoencoder: code_size must be a positive integer, got {code_size!r}")
    code_size, h4, w4 = int(code_size), height // 4, width // 4

    encoder = Sequential([
        Input((height, width, channels)),
        Conv2D(32, 3, padding="same", activation="relu"),
        MaxPooling2D(2),
        Conv2D(64, 3, padding="same", activation="relu"),
        MaxPooling2D(2),
        Flatten(),
        Dense(code_size),  # linear: the code is not squashed
    ], name="encoder")
    decoder = Sequential([
        Input((code_size,)),
        Dense(h4 * w4 * 64, activation="relu"),
        Reshape((h4, w4, 64)),
        UpSampling2D(2),
        Conv2D(32, 3, padding="same", activation="relu"),
        UpSampling2D(2),
        Conv2D(channels, 3, padding="same", activation="sigmoid"),
    ], name="decoder")
    autoencoder = Sequential([encoder, decoder], name="autoencoder")
    if compile:
        autoencoder.compile(optimizer=optimizers.Adam(learning_rate=1e-3), loss="mse",
                            metrics=["mse", "psnr"])
    return autoencoder, encoder, decoder


def _checked_shape(input_shape):
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (shape is None or len(shape) != 3
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise ValueError(f"conv_autoencoder: input_shape must be (height, width, channels) of "
                         f"positive integers, got {input_shape!r}")
    if shape[0] % 4 or shape[1] % 4:
        raise ValueError(f"conv_autoencoder: height and width must be divisible by 4 (two 2x2 "
                         f"poolings, then two 2x upsamplings), got input_shape {shape}")
    return tuple(int(s) for s in shape)
