"""Lookahead (airbench94's weight averaging), against its recurrence computed with NumPy from
the weights fit produced before each averaging step."""
import numpy as np
import pytest

import cnnkit
from cnnkit import layers as L
from cnnkit.callbacks import Callback, Lookahead
from cnnkit.utils import set_random_seed


class Record(Callback):
    """The weights after each step and at each epoch's end."""

    def __init__(self):
        super().__init__()
        self.seen, self.epoch_ends = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append([w.copy() for w in self.model.weights])

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append([w.copy() for w in self.model.weights])


def _model():
    set_random_seed(2)
    model = cnnkit.Sequential([cnnkit.Input((4,)), L.Dense(3), L.BatchNormalization(),
                               L.Dense(2, activation="softmax")])
    model.compile(optimizer=cnnkit.optimizers.SGD(0.1), loss="categorical_crossentropy")
    return model


@pytest.mark.parametrize("decay", [0.5, lambda progress: 0.9 * progress ** 3])
@pytest.mark.parametrize("step_back", [True, False])
def test_the_weights_follow_the_recurrence(decay, step_back):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 40)]
    model, before, after = _model(), Record(), Record()
    lookahead = Lookahead(every=3, decay=decay, start_epoch=1, step_back_each_epoch=step_back)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[before, lookahead, after])
    total, average = 5 * 3, None
    for step in range(1, total + 1):
        now = before.seen[step - 1]
        if step == 11 and step_back:  # epoch 1 ended on the slow weights of step 9
            for a, w in zip(average, after.epoch_ends[1]):
                np.testing.assert_allclose(w, a, rtol=1e-6, atol=1e-7)
        if step == 11 and not step_back:  # or on its own
            np.testing.assert_array_equal(after.epoch_ends[1][0], before.seen[9][0])
        if step <= 5 or step % 3:  # epoch 0 (steps 1-5) is not averaged
            np.testing.assert_array_equal(after.seen[step - 1][0], now[0])
            continue
        if average is None:  # step 6: the slow weights start
            average = [w.copy() for w in now]
            continue
        d = decay if not callable(decay) else decay(step / total)
        average = [np.float32(d) * a + np.float32(1 - d) * w for a, w in zip(average, now)]
        for a, w in zip(average, after.seen[step - 1]):  # the weights step back to it
            np.testing.assert_allclose(w, a, rtol=1e-6, atol=1e-7)
    for a, w in zip(average, model.weights):  # the end: the average
        np.testing.assert_allclose(w, a, rtol=1e-6, atol=1e-7)
    assert len(model.weights) == 8  # the moving statistics were averaged too


def test_arguments_are_checked():
    for kwargs, match in [({"every": 0}, "every"), ({"decay": 1.5}, "decay"),
                          ({"start_epoch": -1}, "start_epoch"), ({"total_steps": 0}, "total")]:
        with pytest.raises(ValueError, match=match):
            Lookahead(**kwargs)
    model = _model()
    x, y = np.zeros((8, 4), np.float32), np.eye(2, dtype=np.float32)[[0, 1] * 4]
    with pytest.raises(ValueError, match=r"decay\(.*\) gave 2.0"):
        model.fit(x, y, batch_size=2, epochs=1, verbose=0,
                  callbacks=[Lookahead(every=1, decay=lambda p: 2.0)])
