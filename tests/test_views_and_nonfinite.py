"""Issue #6: strided and reversed views of the data work (the same answers as a contiguous copy),
and a loss or gradient that turns NaN or infinite stops training with a warning, keeping the
weights of the last finite step (Keras' TerminateOnNaN, on by default, but before the update)."""
import numpy as np
import pytest

from cnnkit import callbacks, layers, models, optimizers
from cnnkit.utils import set_random_seed


def small_cnn(optimizer="adam"):
    set_random_seed(0)
    m = models.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3, activation="relu"),
                           layers.MaxPooling2D(), layers.Flatten(),
                           layers.Dense(5, activation="softmax")])
    m.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
    return m


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 3), dtype=np.float32)
    return x, np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)]


VIEWS = {
    "reversed rows": lambda a: a[:, ::-1],
    "reversed batch": lambda a: a[::-1],
    "every other sample": lambda a: a[::2],
    "Fortran order": np.asfortranarray,
    "channels from a wider array": lambda a: np.concatenate([a, a], axis=-1)[..., ::2],
    "float64": lambda a: a.astype(np.float64),
    "unaligned": lambda a: unaligned(a),
}


def unaligned(array):
    """A copy whose data starts one byte past an element boundary (legal for NumPy)."""
    raw = np.zeros(array.nbytes + 1, np.uint8)[1:]
    view = raw.view(array.dtype).reshape(array.shape)
    view[...] = array
    return view


@pytest.mark.parametrize("view", VIEWS, ids=list(VIEWS))
def test_views_give_the_answers_of_a_contiguous_copy(view):
    x, y = data()
    xv, yv = VIEWS[view](x), (y[::-1] if view == "reversed batch" else
                              y[::2] if view == "every other sample" else y)
    copy = np.ascontiguousarray(xv, dtype=np.float32)
    a, b = small_cnn(), small_cnn()
    np.testing.assert_array_equal(a.predict(xv), b.predict(copy))
    np.testing.assert_array_equal(a.train_on_batch(xv, yv), b.train_on_batch(copy, yv.copy()))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_reversed_labels_view_trains_as_a_copy():
    x, y = data()
    a, b = small_cnn(), small_cnn()
    a.fit(x, y[::-1], epochs=2, batch_size=4, shuffle=False, verbose=0)
    b.fit(x, y[::-1].copy(), epochs=2, batch_size=4, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def weights_after(model, x, y, batches):
    """The weights after training on the first `batches` batches of 4, unshuffled."""
    model.fit(x[:4 * batches], y[:4 * batches], batch_size=4, shuffle=False, verbose=0)
    return model.get_weights()


def test_a_nan_in_the_data_stops_fit_and_keeps_the_last_finite_weights():
    x, y = data()
    x[9, 2, 2, 1] = np.nan  # in the third batch of 4
    expected = weights_after(small_cnn(), x, y, 2)
    model = small_cnn()
    with pytest.warns(RuntimeWarning, match=r"epoch 1, batch 2: the loss \(nan\).*last finite"):
        history = model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 1  # stopped in the first epoch
    assert np.isnan(history.history["loss"][0])
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_array_equal(got, want)
    assert model.optimizer.iterations == 2  # the bad batch made no update


def test_an_update_that_overflows_is_undone():
    """Finite loss and gradients, but a step so large that the weights overflow: the update is
    taken back, not left in place."""
    set_random_seed(0)
    model = models.Sequential([layers.Input((4,)), layers.Dense(3)])
    model.compile(optimizers.SGD(learning_rate=1e36), "mse")
    x = np.full((8, 4), 1e3, np.float32)
    y = np.zeros((8, 3), np.float32)
    before = model.get_weights()
    with pytest.warns(RuntimeWarning, match="last finite"):
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_train_on_batch_with_an_infinite_loss_warns_and_changes_nothing():
    model = small_cnn()
    x, y = data(4)
    before = model.get_weights()
    x[0, 0, 0, 0] = np.inf
    with pytest.warns(RuntimeWarning, match="train_on_batch"):
        loss, _ = model.train_on_batch(x, y)
    assert not np.isfinite(loss)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    x[0, 0, 0, 0] = 0.5  # and training then goes on from the same weights
    assert np.isfinite(model.train_on_batch(x, y)[0])


def test_keras_terminate_on_nan_callback_is_accepted_and_stops():
    model = small_cnn()
    x, y = data()
    x[0] = np.nan
    with pytest.warns(RuntimeWarning):
        history = model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0,
                            callbacks=[callbacks.TerminateOnNaN()])
    assert len(history.history["loss"]) == 1 and model.stop_training
