"""Small pieces the callback tests share: a fake model for driving callbacks with made-up
logs (no training), and a tiny real model with its data."""
import numpy as np

from cnnkit.layers import Dense, Dropout, Input
from cnnkit.models import Sequential


class FakeOptimizer:
    def __init__(self, learning_rate=0.1, name="sgd"):
        self.learning_rate, self.name = learning_rate, name


class FakeModel:
    """What a monitoring callback touches: optimizer.learning_rate, stop_training, weights."""

    def __init__(self, learning_rate=0.1):
        self.optimizer = FakeOptimizer(learning_rate)
        self.stop_training = False
        self.weights = [np.zeros(1)]
        self.metrics = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]


def drive(callback, values, monitor="val_loss", model=None):
    """Runs callback through epochs whose logs hold `monitor` = each value; returns the
    learning rate of the fake model after each epoch and the logs the callback saw."""
    model = model or FakeModel()
    callback.set_model(model)
    callback.on_train_begin({})
    rates, seen = [], []
    for epoch, value in enumerate(values):
        logs = {monitor: value}
        callback.on_epoch_begin(epoch, {})
        callback.on_epoch_end(epoch, logs)
        rates.append(float(np.asarray(model.optimizer.learning_rate)))  # a Keras variable too
        seen.append(logs)
        if model.stop_training:
            break
    callback.on_train_end({})
    return rates, seen


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    return x, y


def tiny_model(dropout=False, optimizer="adam", metrics=None):
    layers = [Input((5,)), Dense(6, activation="relu")]
    if dropout:
        layers.append(Dropout(0.3))
    model = Sequential(layers + [Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=metrics or [])
    return model
