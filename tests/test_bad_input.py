"""Issue #6: a user's mistake at any public entry point is a ValueError or TypeError whose message
names the argument and what was expected, raised before anything runs (never a crash, a hang or a
silent wrong answer). The kernel ops have their own table in test_ops_errors.py; this one covers
models, layers, losses, metrics, optimizers and utilities.

Each case is (id, call, exception, words the message must contain)."""
import numpy as np
import pytest

import cnnkit
from cnnkit import callbacks, layers, losses, metrics, models, optimizers, utils

RNG = np.random.default_rng(0)
X = RNG.random((6, 8, 8, 3), dtype=np.float32)
LABELS = np.array([0, 1, 2, 3, 4, 0])
Y = np.eye(5, dtype=np.float32)[LABELS]


def model(loss="categorical_crossentropy", compiled=True):
    m = models.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3, activation="relu"),
                           layers.MaxPooling2D(), layers.Flatten(),
                           layers.Dense(5, activation="softmax")])
    if compiled:
        m.compile("adam", loss, metrics=["accuracy"])
    return m


def fit(*args, **kwargs):
    kwargs.setdefault("verbose", 0)
    return lambda: model().fit(*args, **kwargs)


def sparse_fit(y):
    return lambda: model("sparse_categorical_crossentropy").fit(X, y, verbose=0)


V, T = ValueError, TypeError
CASES = [
    # x: rank, image size, channels, dtype, emptiness
    ("x rank 3", fit(X[..., 0], Y), V, ["expected shape=(None, 8, 8, 3)", "(None, 8, 8)"]),
    ("x rank 5", fit(X[..., None], Y), V, ["expected shape", "(None, 8, 8, 3, 1)"]),
    ("x image size", fit(np.zeros((6, 9, 9, 3), np.float32), Y), V, ["(None, 9, 9, 3)"]),
    ("x channels", lambda: model().predict(X[..., :1]), V, ["(None, 8, 8, 1)"]),
    ("x object", fit(X.astype(object), Y), T, ["x", "dtype object"]),
    ("x strings", lambda: model().predict(np.full((2, 8, 8, 3), "a")), T, ["x", "dtype"]),
    ("x complex", lambda: model().predict(X.astype(np.complex64)), T, ["x", "complex"]),
    ("x None", fit(None, Y), T, ["x"]),
    ("x ragged list", lambda: model().predict([[1.0], [1.0, 2.0]]), (V, T), ["x"]),
    ("x empty", fit(X[:0], Y[:0]), V, ["x is empty"]),
    ("x empty predict", lambda: model().predict(X[:0]), V, ["x is empty"]),
    ("x scalar", lambda: model().predict(np.float32(1)), V, ["x is empty"]),
    # y against x and the model's output
    ("y None", fit(X), V, ["y is required"]),
    ("y shorter", fit(X, Y[:5]), V, ["same number of samples", "6", "5"]),
    ("y scalar", fit(X, np.float32(1)), V, ["y_true"]),
    ("y object", fit(X, Y.astype(object)), T, ["y_true", "object"]),
    ("one-hot too narrow", fit(X, Y[:, :4]), V, ["y_true", "(6, 4)", "(None, 5)"]),
    ("one-hot too wide", fit(X, np.eye(6, dtype=np.float32)[LABELS]), V, ["y_true", "(6, 6)"]),
    ("integer labels to a one-hot loss", fit(X, LABELS), V, ["to_categorical", "sparse"]),
    ("sparse label too large", sparse_fit(np.array([0, 1, 2, 3, 4, 5])), V, ["[0, 5)", "5"]),
    ("sparse label negative", sparse_fit(np.array([0, 1, 2, 3, 4, -1])), V, ["[0, 5)", "-1"]),
    ("sparse label not integral", sparse_fit(LABELS + 0.5), V, ["integer class indices"]),
    ("sparse one-hot labels", sparse_fit(Y), V, ["y_true"]),
    ("validation y shorter", fit(X, Y, validation_data=(X, Y[:3])), V,
     ["validation_data", "same number of samples"]),
    ("validation_data a triple", fit(X, Y, validation_data=(X, Y, Y)), V, ["validation_data"]),
    ("validation_split 1", fit(X, Y, validation_split=1.0), V, ["validation_split", "(0, 1)"]),
    ("validation_split string", fit(X, Y, validation_split="0.1"), V, ["validation_split"]),
    ("validation_split leaves none", fit(X[:1], Y[:1], validation_split=0.1), V,
     ["validation_split", "no training or no validation"]),
    # loop arguments
    ("batch_size 0", fit(X, Y, batch_size=0), V, ["batch_size", "positive integer", "0"]),
    ("batch_size negative", fit(X, Y, batch_size=-4), V, ["batch_size", "-4"]),
    ("batch_size float", fit(X, Y, batch_size=2.5), T, ["batch_size", "2.5"]),
    ("batch_size bool", fit(X, Y, batch_size=True), T, ["batch_size"]),
    ("predict batch_size 0", lambda: model().predict(X, batch_size=0), V, ["predict", "batch_size"]),
    ("evaluate batch_size -3", lambda: model().evaluate(X, Y, batch_size=-3, verbose=0), V,
     ["evaluate", "batch_size"]),
    ("epochs negative", fit(X, Y, epochs=-1), V, ["epochs", "0 or more", "-1"]),
    ("epochs float", fit(X, Y, epochs=1.5), T, ["epochs", "integer"]),
    ("initial_epoch negative", fit(X, Y, initial_epoch=-2), V, ["initial_epoch"]),
    ("validation_freq 0", fit(X, Y, validation_freq=0), V, ["validation_freq"]),
    ("verbose 3", fit(X, Y, verbose=3), V, ["verbose", "'auto', 0, 1 or 2"]),
    ("verbose string", fit(X, Y, verbose="loud"), T, ["verbose"]),
    ("shuffle 'batch'", fit(X, Y, shuffle="batch"), V, ["shuffle"]),
    ("callbacks an int", fit(X, Y, callbacks=[3]), T, ["callbacks", "Callback", "int"]),
    ("callbacks not a list", fit(X, Y, callbacks=callbacks.History()), T, ["callbacks", "list"]),
    ("negative sample_weight", fit(X, Y, sample_weight=-np.ones(6)), V, ["sample_weight", ">= 0"]),
    ("sample_weight of 5", fit(X, Y, sample_weight=np.ones(5)), V, ["sample_weight", "(6,)"]),
    ("class_weight a list", fit(X, Y, class_weight=[1, 2]), T, ["class_weight", "dict"]),
    ("class_weight class 5", fit(X, Y, class_weight={5: 1.0}), V, ["class_weight", "0 to 4"]),
    ("steps_per_epoch 0", fit(X, Y, steps_per_epoch=0), V, ["steps_per_epoch"]),
    # compile and its names
    ("fit before compile", lambda: model(compiled=False).fit(X, Y, verbose=0), V, ["compile()"]),
    ("evaluate before compile", lambda: model(compiled=False).evaluate(X, Y), V, ["compile()"]),
    ("train_on_batch before compile", lambda: model(compiled=False).train_on_batch(X, Y), V,
     ["compile()"]),
    ("unknown loss", lambda: model().compile("adam", "mse2"), V, ["Unknown loss", "mse2"]),
    ("unknown optimizer", lambda: model().compile("adamw2", "mse"), V,
     ["Unknown optimizer", "adamw2"]),
    ("unknown metric", lambda: model().compile("adam", "mse", metrics=["acc2"]), V,
     ["Unknown metric", "acc2"]),
    ("metrics a string", lambda: model().compile("adam", "mse", metrics="accuracy"), T,
     ["metrics must be a list"]),
    ("compile keyword", lambda: model().compile("adam", "mse", lr=0.1), T, ["lr"]),
    ("unknown activation", lambda: layers.Dense(3, activation="relux"), V,
     ["Unknown activation", "relux"]),
    ("unknown activation layer", lambda: layers.Activation("gelu2"), V, ["gelu2"]),
    ("unknown padding", lambda: layers.Conv2D(3, 3, padding="full"), V, ["padding", "full"]),
    ("unknown pool padding", lambda: layers.MaxPooling2D(padding="causal"), V, ["padding"]),
    ("unknown initializer", lambda: layers.Conv2D(3, 3, kernel_initializer="foo"), V,
     ["Unknown initializer", "foo"]),
    ("unknown layer class", lambda: models.Sequential.from_config(
        {"name": "s", "layers": [{"class_name": "Foo", "config": {}}]}), V,
     ["Unknown layer class", "Foo"]),
    ("unknown layer keyword", lambda: layers.Dense(3, unit=4), T, ["unit"]),
    # layer arguments
    ("filters 0", lambda: layers.Conv2D(0, 3), V, ["filters", "0"]),
    ("filters string", lambda: layers.Conv2D("8", 3), V, ["filters"]),
    ("kernel_size 0", lambda: layers.Conv2D(3, 0), V, ["kernel_size"]),
    ("kernel_size triple", lambda: layers.Conv2D(3, (3, 3, 3)), V, ["kernel_size"]),
    ("strides 0", lambda: layers.Conv2D(3, 3, strides=0), V, ["strides"]),
    ("units negative", lambda: layers.Dense(-1), V, ["units", "-1"]),
    ("units float", lambda: layers.Dense(3.5), V, ["units", "3.5"]),
    ("pool_size 0", lambda: layers.MaxPooling2D(0), V, ["pool_size"]),
    ("pool strides negative", lambda: layers.MaxPooling2D(2, strides=-1), V, ["strides"]),
    ("pool window larger than the image", lambda: models.Sequential(
        [layers.Input((3, 3, 1)), layers.MaxPooling2D(4)]), V, ["4x4", "larger than the image"]),
    ("kernel larger than the image", lambda: models.Sequential(
        [layers.Input((3, 3, 1)), layers.Conv2D(2, 5)]), V, ["5x5", "larger than the image"]),
    ("upsampling size 0", lambda: layers.UpSampling2D(0), V, ["size"]),
    ("dropout rate 1.5", lambda: layers.Dropout(1.5), V, ["rate", "1.5"]),
    ("dropout rate string", lambda: layers.Dropout("a"), T, ["rate"]),
    ("reshape impossible", lambda: models.Sequential(
        [layers.Input((8, 8, 3)), layers.Reshape((5, 5))]), V, ["target_shape", "(5, 5)"]),
    ("Input negative size", lambda: layers.Input((-1, 8, 3)), V, ["input shape", "-1"]),
    ("Input a string", lambda: layers.Input("abc"), T, ["input shape"]),
    ("Sequential of None", lambda: models.Sequential([None]), T, ["Layer", "NoneType"]),
    ("layer called on rank 3", lambda: layers.Conv2D(3, 3)(np.ones((8, 8, 3), np.float32)), V,
     ["ndim=4", "(8, 8, 3)"]),
    ("layer called on objects", lambda: layers.Dense(3)(np.array([[object()]])), T, ["object"]),
    ("set_weights wrong shape", lambda: models.Sequential(
        [layers.Input((4,)), layers.Dense(3)]).set_weights([np.ones((4, 2)), np.ones(3)]), V,
     ["(4, 3)", "(4, 2)"]),
    ("set_weights wrong count", lambda: models.Sequential(
        [layers.Input((4,)), layers.Dense(3)]).set_weights([np.ones((4, 3))]), V,
     ["expecting 2 weights"]),
    # optimizers, losses, metrics and utilities called directly
    ("learning_rate negative", lambda: optimizers.Adam(learning_rate=-1), V, ["learning_rate"]),
    ("beta_1 1.5", lambda: optimizers.Adam(beta_1=1.5), V, ["beta_1"]),
    ("momentum negative", lambda: optimizers.SGD(momentum=-1), V, ["momentum"]),
    ("loss shapes differ", lambda: losses.MeanSquaredError()(np.ones((2, 3)), np.ones((3, 3))),
     V, ["y_true", "(2, 3)"]),
    ("metric shapes differ", lambda: metrics.categorical_accuracy(np.ones((2, 3)),
                                                                  np.ones((3, 3))), V,
     ["y_true and y_pred", "(2, 3)", "(3, 3)"]),
    ("psnr channels differ", lambda: metrics.psnr(np.ones((2, 3, 3, 1)), np.ones((2, 3, 3, 2))),
     V, ["same shape"]),
    ("psnr max_val negative", lambda: metrics.psnr(np.ones((1, 2)), np.ones((1, 2)), max_val=-1),
     V, ["max_val"]),
    ("to_categorical out of range", lambda: utils.to_categorical([0, 3], 3), V, ["[0, 3)"]),
    ("to_categorical negative", lambda: utils.to_categorical([0, -1], 3), V, ["-1"]),
    ("to_categorical floats", lambda: utils.to_categorical([0.5, 1], 3), V, ["integer"]),
    ("set_num_threads 0", lambda: cnnkit.set_num_threads(0), V, ["set_num_threads", "n"]),
    ("set_num_threads string", lambda: cnnkit.set_num_threads("2"), T, ["set_num_threads"]),
    ("set_random_seed string", lambda: utils.set_random_seed("a"), V, ["seed"]),
    ("conv_autoencoder odd size", lambda: models.conv_autoencoder(input_shape=(30, 30, 3)), V,
     ["divisible by 4"]),
]


def test_the_table_is_large_and_its_ids_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 90


@pytest.mark.parametrize("name,call,error,words", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_raises_a_clear_error(name, call, error, words):
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    assert all(word in message for word in words), message


def test_an_error_leaves_the_model_usable():
    """A rejected call changes nothing: the same model then trains and predicts."""
    m = model()
    before = m.get_weights()
    with pytest.raises(ValueError):
        m.fit(X, Y[:5], verbose=0)
    with pytest.raises(ValueError):
        m.fit(X, Y, batch_size=0, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    m.fit(X, Y, epochs=1, verbose=0)
    assert m.predict(X).shape == (6, 5)


def test_integer_images_are_cast_as_keras_casts_them():
    """A model's x may be integer (uint8 images): Keras casts it to float32, and so does cnnkit.
    The kernels themselves (cnnkit.ops) refuse integers, where a cast would hide a bug."""
    m = model()
    pixels = (X * 255).astype(np.uint8)
    np.testing.assert_array_equal(m.predict(pixels), m.predict(pixels.astype(np.float32)))
