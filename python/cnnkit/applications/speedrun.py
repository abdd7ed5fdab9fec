"""The airbench94 training recipe on cnnkit (`python -m cnnkit speedrun-cifar10`): CIFAR-10 with
the network of airbench.py, from public pieces, as bench/speedrun_torch.py runs it on PyTorch.

- data: images scaled to [0, 1] and normalised by CIFAR-10's mean and std; alternating flips
  and 2-pixel reflect-padded translations (utils.FlipTranslateBatches), batch 1024, the last
  partial batch dropped, 9.9 epochs (the run stops after ceil(9.9 * steps per epoch) steps);
- whitening: the first layer's kernel from the first 5000 training images' 2x2 patches, frozen
  (learning-rate multiplier 0); its bias trains for 3 epochs, then freezes;
- loss: cross-entropy on the logits with label smoothing 0.2;
- optimizer: SGD, Nesterov momentum 0.85, airbench's rate 11.5 and weight decay 0.0153 per 1024
  images in its parametrisation, the batch-norm biases at 64x the rate with the same decay
  step, the rate following the Triangular schedule (0.2 -> 1 at 23% of the steps -> 0.07);
- Lookahead from epoch 3: every 5 steps, decay 0.95**5 * progress**3; the weights step back to
  the slow ones at each epoch's end;
- test accuracy after each epoch (on the slow weights), then test-time augmentation (mirror
  and 1-pixel translations, predict_with_tta level 2).

How PyTorch's SGD maps onto Keras' (cnnkit's): airbench sums the loss over the batch and couples
its weight decay into the gradient (SGD's weight_decay, through the momentum). cnnkit's loss is
the batch mean, so its rate is PyTorch's times the batch size, and the decay is an L2 penalty
on each decayed weight of coefficient wd_pytorch / (2 * batch), which puts the same term into
the gradient, through the momentum as PyTorch does. Keras' Nesterov step keeps the rate inside
its momentum, PyTorch's applies the current rate to it: the same update while the rate is
constant, a slightly different one while the schedule moves it.
"""
import math
import time

import numpy as np

from .. import callbacks as callbacks_module
from .. import losses, optimizers, regularizers
from ..utils import FlipTranslateBatches, set_random_seed, to_categorical
from .airbench import (CIFAR10_MEAN, CIFAR10_STD, Triangular, airbench94,
                       patch_whitening_kernel, predict_with_tta)

__all__ = ["RECIPE", "normalise", "speedrun"]

RECIPE = {
    "batch_size": 1024, "epochs": 9.9, "lr": 11.5, "weight_decay": 0.0153, "momentum": 0.85,
    "bias_scaler": 64.0, "label_smoothing": 0.2, "whiten_bias_epochs": 3,
    "whiten_images": 5000, "whiten_eps": 5e-4, "translate": 2,
    "lr_start": 0.2, "lr_peak": 0.23, "lr_end": 0.07,
    "lookahead_start_epoch": 3, "lookahead_every": 5, "lookahead_base": 0.95,
    "lookahead_power": 3.0, "tta_level": 2,
}


def normalise(images):
    """uint8 (or [0, 255]) NHWC images as float32, scaled to [0, 1] and normalised per channel
    by CIFAR-10's mean and standard deviation."""
    out = np.asarray(images, np.float32) * np.float32(1 / 255)
    out -= CIFAR10_MEAN
    out /= CIFAR10_STD
    return out


class _Recipe(callbacks_module.Callback):
    """What the recipe does at epoch boundaries: freezes the whitening bias after its epochs,
    stops at the last step, and after each epoch (once Lookahead has stepped back) times the
    epoch's training and evaluates the test accuracy."""

    def __init__(self, optimizer, whiten_bias, total_steps, x_test, y_test, say, recipe):
        super().__init__()
        self.optimizer, self.whiten_bias, self.total_steps = optimizer, whiten_bias, total_steps
        self.x_test, self.y_test, self.say, self.recipe = x_test, y_test, say, recipe
        self.steps, self.seconds, self.rates, self.accuracy = 0, [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.recipe["whiten_bias_epochs"]:
            # frozen as PyTorch freezes it (no gradient): no rate, and no momentum left over
            optimizer = self.optimizer
            optimizer.set_learning_rate_multiplier([self.whiten_bias], 0.0)
            optimizer.reset_slots([self.whiten_bias])
        self.start, self.first_step = time.perf_counter(), self.steps

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps >= self.total_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        images = (self.steps - self.first_step) * self.recipe["batch_size"]
        accuracy = accuracy_of(self.model.predict(self.x_test, batch_size=2000, verbose=0),
                               self.y_test)
        self.seconds.append(seconds)
        self.rates.append(images / seconds)
        self.accuracy.append(accuracy)
        self.say(f"epoch {epoch + 1:2d}  train {seconds:7.1f} s  {images / seconds:6.0f} "
                 f"images/s  test accuracy {accuracy:.4f}")


def accuracy_of(outputs, labels):
    return float(np.mean(np.argmax(outputs, axis=1) == labels))


def speedrun(x_train, y_train, x_test, y_test, epochs=None, seed=0, say=print, recipe=None):
    """Trains airbench94 on (x_train, y_train) (uint8 NHWC images, integer labels) and returns
    (model, report): the per-epoch training seconds, images per second and test accuracy, the
    whitening and TTA seconds, the final test accuracy with and without TTA."""
    recipe = {**RECIPE, **(recipe or {})}
    epochs = recipe["epochs"] if epochs is None else epochs
    batch = recipe["batch_size"]
    steps_per_epoch = len(x_train) // batch
    if steps_per_epoch == 0:
        raise ValueError(f"speedrun: {len(x_train)} training images make no batch of {batch}")
    total_steps = math.ceil(steps_per_epoch * epochs)
    set_random_seed(seed)
    x_train, x_test = normalise(x_train), normalise(x_test)
    y_train, y_test = np.asarray(y_train).ravel(), np.asarray(y_test).ravel()

    # airbench's SGD in PyTorch's terms, then in cnnkit's (see the module's docstring)
    kilostep = 1024 * (1 + 1 / (1 - recipe["momentum"]))
    lr_torch = recipe["lr"] / kilostep
    decay_torch = recipe["weight_decay"] * batch / kilostep / lr_torch  # SGD's weight_decay
    l2 = decay_torch / (2 * batch)
    model = airbench94(kernel_regularizer=regularizers.L2(l2),
                       beta_regularizer=regularizers.L2(l2 / recipe["bias_scaler"]),
                       whiten_bias_regularizer=regularizers.L2(l2))
    whiten = model.get_layer("whiten")
    start = time.perf_counter()
    whiten.kernel[...] = patch_whitening_kernel(x_train[:recipe["whiten_images"]],
                                                eps=recipe["whiten_eps"])
    whiten_seconds = time.perf_counter() - start

    schedule = Triangular(lr_torch * batch, total_steps, start=recipe["lr_start"],
                          peak=recipe["lr_peak"], end=recipe["lr_end"])
    optimizer = optimizers.SGD(schedule, momentum=recipe["momentum"], nesterov=True)
    optimizer.set_learning_rate_multiplier([whiten.kernel], 0.0)
    betas = [layer.beta for layer in model.layers if getattr(layer, "beta", None) is not None]
    optimizer.set_learning_rate_multiplier(betas, recipe["bias_scaler"])
    model.compile(optimizer=optimizer, loss=losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=recipe["label_smoothing"]))

    base, power = recipe["lookahead_base"] ** recipe["lookahead_every"], \
        recipe["lookahead_power"]
    lookahead = callbacks_module.Lookahead(
        every=recipe["lookahead_every"], decay=lambda progress: base * progress ** power,
        start_epoch=recipe["lookahead_start_epoch"], total_steps=total_steps)
    report = _Recipe(optimizer, whiten.bias, total_steps, x_test, y_test, say, recipe)
    data = FlipTranslateBatches(x_train, to_categorical(y_train, 10), batch,
                                translate=recipe["translate"], seed=seed)
    model.fit(data, epochs=math.ceil(epochs), verbose=0, shuffle=False,
              callbacks=[lookahead, report])

    start = time.perf_counter()
    tta = accuracy_of(predict_with_tta(model, x_test, level=recipe["tta_level"]), y_test)
    tta_seconds = time.perf_counter() - start
    train_seconds = whiten_seconds + sum(report.seconds)
    return model, {
        "epoch_seconds": report.seconds, "epoch_images_per_second": report.rates,
        "epoch_test_accuracy": report.accuracy, "steps": report.steps,
        "whiten_seconds": whiten_seconds, "train_seconds": train_seconds,
        "tta_seconds": tta_seconds, "test_accuracy": report.accuracy[-1],
        "test_accuracy_tta": tta, "total_seconds": train_seconds + tta_seconds}
