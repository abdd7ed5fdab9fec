"""airbench94 (K. Jordan, 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU"; public code
cifar10-airbench), built from cnnkit's public layers, optimizers, schedules and callbacks.

The network (airbench94):
    whiten   Conv2D(24, 2x2, valid): a 2x2 patch-whitening convolution whose kernel comes from
             the eigen-decomposition of the training images' 2x2 patch covariance (frozen), its
             bias trained for the first epochs only; GELU
    3 groups Conv2D(w, 3x3, same, no bias) - MaxPooling2D(2) - BatchNormalization - GELU -
             Conv2D(w, 3x3, same, no bias) - BatchNormalization - GELU, widths 64, 256, 256;
             the convolutions identity-initialised (their first C_in filters pass the input
             through), the normalizations without a scale (center only)
    head     MaxPooling2D(3) - Flatten - Dense(10, no bias) - Rescaling(1/9): the logits
What this module adds where Keras has no piece: patch_whitening_kernel, identity_initialise,
Triangular (the learning-rate schedule), predict_with_tta (mirror and 1-pixel translations).
The optimizer's per-parameter rates (optimizer.set_learning_rate_multiplier), the weight
averaging (callbacks.Lookahead) and the alternating flips (utils.FlipTranslateBatches) are
cnnkit additions elsewhere; speedrun.py puts them together.
"""
import numpy as np

from .. import initializers
from .. import layers as L
from ..engine.functional import Functional
from ..layers.core import Input
from ..optimizers.schedules import LearningRateSchedule

__all__ = ["airbench94", "patch_whitening_kernel", "identity_initialise", "Triangular",
           "predict_with_tta", "CIFAR10_MEAN", "CIFAR10_STD", "WIDTHS"]

CIFAR10_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
CIFAR10_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)
WIDTHS = (64, 256, 256)


def airbench94(widths=WIDTHS, batchnorm_momentum=0.4, batchnorm_epsilon=1e-12,
               input_shape=(32, 32, 3), classes=10, kernel_regularizer=None,
               beta_regularizer=None, whiten_bias_regularizer=None, name="airbench94"):
    """The network, uncompiled, with its whitening kernel zero (patch_whitening_kernel sets
    it from the data) and its convolutions identity-initialised. batchnorm_momentum is Keras'
    (the moving statistics keep this share): airbench's PyTorch momentum 0.6 is Keras' 0.4.
    The regularizers (speedrun.py's weight decay) go on the 3x3 and head kernels, the
    normalizations' biases and the whitening bias."""
    # PyTorch's default initialisation (uniform, bound 1/sqrt(fan_in)), as airbench has
    default = initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform")

    def norm(x, label):
        return L.BatchNormalization(momentum=batchnorm_momentum, epsilon=batchnorm_epsilon,
                                    scale=False, beta_regularizer=beta_regularizer,
                                    name=label)(x)

    inputs = Input(input_shape)
    channels = input_shape[-1]
    x = L.Conv2D(2 * 4 * channels, 2, padding="valid", kernel_initializer="zeros",
                 bias_initializer="zeros", bias_regularizer=whiten_bias_regularizer,
                 name="whiten")(inputs)
    x = L.Activation("gelu", name="whiten_gelu")(x)
    for i, width in enumerate(widths, start=1):
        x = L.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=default,
                     kernel_regularizer=kernel_regularizer, name=f"block{i}_conv1")(x)
        x = L.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = L.Activation("gelu", name=f"block{i}_gelu1")(norm(x, f"block{i}_norm1"))
        x = L.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=default,
                     kernel_regularizer=kernel_regularizer, name=f"block{i}_conv2")(x)
        x = L.Activation("gelu", name=f"block{i}_gelu2")(norm(x, f"block{i}_norm2"))
    x = L.MaxPooling2D(3, name="head_pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(classes, use_bias=False, kernel_initializer=default,
                kernel_regularizer=kernel_regularizer, name="head")(x)
    outputs = L.Rescaling(1 / 9, name="head_scale")(x)
    model = Functional(inputs, outputs, name=name)
    identity_initialise(model)
    return model


def identity_initialise(model):
    """Each 3x3 convolution of the groups passes its input through on its first C_in filters
    (PyTorch's dirac_ on them, as airbench): kernel[1, 1, c, c] = 1, the rest of those filters 0."""
    for layer in model.layers:
        if isinstance(layer, L.Conv2D) and layer.name != "whiten":
            kernel = layer.kernel
            cin = kernel.shape[2]
            kernel[..., :cin] = 0
            centre = (kernel.shape[0] // 2, kernel.shape[1] // 2)
            kernel[centre[0], centre[1], np.arange(cin), np.arange(cin)] = 1


def patch_whitening_kernel(images, patch=2, eps=5e-4):
    """The whitening convolution's kernel (patch, patch, C, 2 * patch * patch * C) from NHWC
    images (already normalised): the second-moment matrix of every patch x patch patch (as
    airbench, not mean-centred), its eigenvectors scaled by 1 / sqrt(eigenvalue + eps), largest
    first, then the same filters negated. Each output channel's mean square over the images'
    patches is then eigenvalue / (eigenvalue + eps): about 1 for the real directions."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"patch_whitening_kernel: images must be (N, height, width, channels), "
                         f"got shape {images.shape}")
    n, h, w, c = images.shape
    if min(h, w) < patch:
        raise ValueError(f"patch_whitening_kernel: images of {h}x{w} have no {patch}x{patch} "
                         "patches")
    # every patch as a row, in the kernel's (row, column, channel) order
    windows = np.lib.stride_tricks.sliding_window_view(images, (patch, patch), axis=(1, 2))
    rows = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, patch * patch * c).astype(np.float64)
    moments = rows.T @ rows / len(rows)
    values, vectors = np.linalg.eigh(moments)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    filters = vectors / np.sqrt(values + eps)  # column k: filter k
    kernel = filters.reshape(patch, patch, c, -1)
    return np.concatenate([kernel, -kernel], axis=-1).astype(np.float32)


class Triangular(LearningRateSchedule):
    """airbench's schedule: the rate rises linearly from start * base to base at peak of the
    steps, then falls linearly to end * base at total_steps (and stays there)."""

    def __init__(self, base, total_steps, start=0.2, peak=0.23, end=0.07):
        self.base, self.total_steps = float(base), int(total_steps)
        self.start, self.peak, self.end = float(start), float(peak), float(end)
        if self.total_steps < 1 or not 0 < self.peak < 1:
            raise ValueError(f"Triangular: total_steps must be >= 1 and peak in (0, 1), got "
                             f"{total_steps!r} and {peak!r}")

    def __call__(self, step):
        points = [0, self.peak * self.total_steps, self.total_steps]
        return self.base * float(np.interp(step, points, [self.start, 1.0, self.end]))

    def get_config(self):
        return {"base": self.base, "total_steps": self.total_steps, "start": self.start,
                "peak": self.peak, "end": self.end}


def predict_with_tta(model, x, batch_size=2000, level=2):
    """The model's outputs averaged over test-time augmentations, as airbench's infer:
    level 0 none; 1 the image and its mirror (1/2 each); 2 that, for the image (weight 1/2)
    and for its translations by one pixel up-left and down-right (1/4 each), reflect-padded."""
    if level not in (0, 1, 2):
        raise ValueError(f"predict_with_tta: level must be 0, 1 or 2, got {level!r}")
    x = np.asarray(x, np.float32)

    def run(images):
        return model.predict(images, batch_size=batch_size, verbose=0)

    def mirrored(images):
        if level == 0:
            return run(images)
        return 0.5 * run(images) + 0.5 * run(np.ascontiguousarray(images[:, :, ::-1]))

    out = mirrored(x)
    if level == 2:
        h, w = x.shape[1:3]
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        shifted = [np.ascontiguousarray(padded[:, :h, :w]),
                   np.ascontiguousarray(padded[:, 2:2 + h, 2:2 + w])]
        out = 0.5 * out + 0.25 * (mirrored(shifted[0]) + mirrored(shifted[1]))
    return out
