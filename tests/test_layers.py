"""cnnkit.layers: each layer's forward and backward against cnnkit.reference (computed in
float64), gradients through whole models against central finite differences, Keras' weight
shapes and initializers, and shape errors that name the layer."""
import numpy as np
import pytest

from cnnkit import initializers, reference as R
from cnnkit.layers import (Activation, Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D,
                           Reshape, UpSampling2D)
from cnnkit.models import Sequential
from cnnkit.utils import set_random_seed

rng = np.random.default_rng(7)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def f64(a):
    return np.asarray(a, dtype=np.float64)


def call(layer, x, training=True):
    """Runs a built layer forward on a call state of its own (what backward needs is kept
    there); returns the output and the state, for layer.backward(state, dy)."""
    state = layer.new_state()
    return layer.forward(state, np.ascontiguousarray(x, np.float32), training), state


def close(actual, expected, tol=1e-4):
    expected = f64(expected)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(f64(actual), expected, rtol=tol, atol=tol * scale)


ACTIVATIONS = {"linear": (lambda z: z, lambda dy, y: dy),
               "relu": (R.relu_forward, R.relu_backward),
               "sigmoid": (R.sigmoid_forward, R.sigmoid_backward),
               "softmax": (R.softmax_forward, R.softmax_backward)}


# ---------------------------------------------------------------- layer by layer vs reference

@pytest.mark.parametrize("strides,padding,activation,use_bias", [
    ((1, 1), "valid", "relu", True), ((2, 2), "same", "sigmoid", True),
    ((1, 2), "same", None, False), ((2, 1), "valid", "softmax", True)])
def test_conv2d_matches_reference(strides, padding, activation, use_bias):
    layer = Conv2D(5, (3, 2), strides=strides, padding=padding, activation=activation,
                   use_bias=use_bias, bias_initializer="random_normal")
    x = randn(2, 7, 6, 3)
    y = layer(x)
    y_call, st = call(layer, x)
    assert np.array_equal(y_call, y)
    w = layer.weights[0]
    b = layer.weights[1] if use_bias else None
    act, act_back = ACTIVATIONS[activation or "linear"]
    z = R.conv2d_forward(f64(x), f64(w), None if b is None else f64(b), strides, padding)
    close(y, act(z))
    dy = randn(*y.shape)
    dx = layer.backward(st, dy)
    dz = act_back(f64(dy), f64(y))
    rdx, rdw, rdb = R.conv2d_backward(dz, f64(x), f64(w), strides, padding)
    close(dx, rdx)
    close(st.grads[0], rdw)
    assert len(st.grads) == (2 if use_bias else 1)
    if use_bias:
        close(st.grads[1], rdb)


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 6)])
@pytest.mark.parametrize("activation", ["relu", "softmax", None])
def test_dense_matches_reference_on_2d_and_nd_inputs(shape, activation):
    layer = Dense(3, activation=activation, bias_initializer="random_normal")
    x = randn(*shape)
    y = layer(x)
    assert y.shape == shape[:-1] + (3,)
    y_call, st = call(layer, x)
    assert np.array_equal(y_call, y)
    w, b = layer.get_weights()
    act, act_back = ACTIVATIONS[activation or "linear"]
    close(y, act(f64(x) @ f64(w) + b))
    dy = randn(*y.shape)
    dx = layer.backward(st, dy)
    dz = act_back(f64(dy), f64(y)).reshape(-1, 3)
    rdx, rdw, rdb = R.dense_backward(dz, f64(x).reshape(-1, 6), f64(w))
    close(dx, rdx.reshape(x.shape))
    close(st.grads[0], rdw)
    close(st.grads[1], rdb)


@pytest.mark.parametrize("pool_size,strides,padding", [
    ((2, 2), None, "valid"), ((3, 3), (2, 2), "same"), ((3, 2), (1, 1), "valid")])
@pytest.mark.parametrize("training", [True, False])
def test_maxpooling2d_matches_reference(pool_size, strides, padding, training):
    layer = MaxPooling2D(pool_size, strides, padding)
    x = randn(2, 7, 8, 3)
    x[0, :2, :2, 0] = 1.5  # a tie: the gradient goes to the first maximum only
    y = layer(x, training=training)
    close(y, R.maxpool2d_forward(f64(x), pool_size, strides, padding))
    y_call, st = call(layer, x, training)
    assert np.array_equal(y_call, y)
    dy = randn(*y.shape)
    close(layer.backward(st, dy),
          R.maxpool2d_backward(f64(dy), f64(x), pool_size, strides, padding))


def test_upsampling_flatten_reshape_activation_match_reference():
    x = randn(2, 3, 4, 5)
    up = UpSampling2D((2, 3))
    y = up(x)
    close(y, R.upsampling2d_forward(f64(x), (2, 3)))
    _, st = call(up, x)
    dy = randn(*y.shape)
    close(up.backward(st, dy), R.upsampling2d_backward(f64(dy), (2, 3)))

    flat = Flatten()
    assert flat(x).shape == (2, 60) and np.array_equal(flat(x), x.reshape(2, -1))
    _, st = call(flat, x)
    assert np.array_equal(flat.backward(st, dy.reshape(2, -1)[:, :60]),
                          dy.reshape(2, -1)[:, :60].reshape(x.shape))

    reshape = Reshape((-1, 5))
    assert reshape(x).shape == (2, 12, 5)
    assert reshape.compute_output_shape((None, 3, 4, 5)) == (None, 12, 5)
    _, st = call(reshape, x)
    assert reshape.backward(st, np.ones((2, 12, 5), np.float32)).shape == x.shape

    act = Activation("softmax")
    y = act(x)
    close(y, R.softmax_forward(f64(x)))
    _, st = call(act, x)
    close(act.backward(st, dy[:, :3, :4, :5].copy()),
          R.softmax_backward(f64(dy[:, :3, :4, :5]), f64(y)))


def test_dropout_is_inverted_active_only_in_training_and_seeded():
    x = np.ones((200, 50), np.float32)
    layer = Dropout(0.25, seed=3)
    assert np.array_equal(layer(x), x)  # inference: the identity (and builds the layer)
    y, st = call(layer, x, training=True)
    kept = y != 0
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs(kept.mean() - 0.75) < 0.02
    dy = randn(200, 50)
    np.testing.assert_allclose(layer.backward(st, dy), dy * kept / 0.75, rtol=1e-6)
    again = Dropout(0.25, seed=3)
    assert np.array_equal(again(x, training=True), y)  # same seed, same mask
    with pytest.raises(ValueError):
        Dropout(1.0)


def test_direct_calls_accept_float64_and_integer_images():
    layer = Conv2D(2, 3)
    out = layer(np.arange(2 * 5 * 5 * 1).reshape(2, 5, 5, 1) / 10.0)
    assert out.dtype == np.float32 and out.shape == (2, 3, 3, 2)
    assert MaxPooling2D()(np.zeros((1, 4, 4, 1), np.uint8)).shape == (1, 2, 2, 1)


# ---------------------------------------------------------------- gradients through a model

def _model_gradients(model, x, y):
    """The loss and the trainable weights' gradients of one training pass, as the trainer
    computes them (softmax fused with the loss where the model allows it)."""
    state = model.new_state()
    _, _, sources, _ = model._step_plan(state, 1)  # configures it: the input needs no gradient
    out = model.forward(state, x, True)
    loss, douts = model._losses_and_grads(state, [y], [out])
    model.backward(state, douts[0], model._fused)
    return loss, model._gradients(state, sources)


def _batch_loss(model, y, x):
    """The loss of the model on x in inference mode (y prepared by the loss)."""
    state = model.new_state()
    out = model.forward(state, x, False)
    return model._losses_and_grads(state, [y], [out])[0]


def _agrees(difference, analytic):
    """Central differences d(eps) against an analytic derivative. eps=1e-3 suits the float32
    forward pass; where a max-pool winner changes within 1e-3 of the point (a kink, not a bug),
    eps=1e-4 must agree instead, more loosely (float32 noise grows as eps shrinks)."""
    if abs(difference(1e-3) - analytic) <= 2e-4 + 2e-2 * abs(analytic):
        return True
    return abs(difference(1e-4) - analytic) <= 6e-4 + 5e-2 * abs(analytic)


def _numeric_check(model, x, y, entries=6):
    """The gradient of every weight (a few entries each) against central differences."""
    model._prepare(x, y)
    y = model.loss.prepare_targets(y, model.output_shape)
    _, grads = _model_gradients(model, x, y)

    def loss():
        return _batch_loss(model, y, x)

    for w, g in zip(model.trainable_weights, grads):
        assert g.shape == w.shape
        for flat in rng.choice(w.size, size=min(entries, w.size), replace=False):
            index = np.unravel_index(flat, w.shape)
            saved = w[index]

            def difference(eps):
                w[index] = saved + eps
                up = loss()
                w[index] = saved - eps
                down = loss()
                w[index] = saved
                return (up - down) / (2 * eps)

            assert _agrees(difference, g[index]), (w.shape, index, difference(1e-3), g[index])


def _cnn(last_activation="softmax", units=4):
    return Sequential([
        Input((6, 6, 2)),
        Conv2D(3, 3, padding="same", bias_initializer="random_normal"),
        MaxPooling2D((2, 2)),
        Conv2D(4, (2, 2), activation="sigmoid"),
        UpSampling2D((2, 1)),
        Flatten(),
        Dense(5),
        Dense(units, activation=last_activation)])


def test_fused_softmax_crossentropy_gradients_match_finite_differences():
    set_random_seed(1)
    model = _cnn()
    model.compile("sgd", "categorical_crossentropy")
    x = randn(5, 6, 6, 2)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 5)]
    _numeric_check(model, x, y)
    assert model._fused == [True]  # one flag per output


@pytest.mark.parametrize("loss,last,units", [
    ("sparse_categorical_crossentropy", "softmax", 4), ("mse", None, 3),
    ("binary_crossentropy", "sigmoid", 1)])
def test_other_losses_gradients_match_finite_differences(loss, last, units):
    set_random_seed(2)
    model = _cnn(last, units)
    model.compile("sgd", loss)
    x = randn(5, 6, 6, 2)
    y = {"sparse_categorical_crossentropy": rng.integers(0, 4, (5, 1)),
         "mse": randn(5, 3), "binary_crossentropy": rng.integers(0, 2, (5, 1))}[loss]
    _numeric_check(model, x, y)


def test_crossentropy_on_probabilities_gradient_when_softmax_is_not_last():
    # Softmax followed by a Reshape: the loss sees probabilities (Keras' clipped formula).
    set_random_seed(3)
    model = Sequential([Input((4,)), Dense(6, activation="sigmoid"),
                        Dense(4, activation="softmax"), Reshape((4,))])
    model.compile("sgd", "categorical_crossentropy")
    x = randn(6, 4)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 6)]
    _numeric_check(model, x, y)
    assert model._fused == [False]  # one flag per output
    probabilities = model.predict(x)
    expected = -np.mean(np.sum(y * np.log(probabilities), axis=1))
    y = model.loss.prepare_targets(y, model.output_shape)
    assert abs(_batch_loss(model, y, x) - expected) < 1e-5


def test_input_gradient_matches_finite_differences():
    set_random_seed(4)
    model = _cnn()
    model.compile("sgd", "categorical_crossentropy")
    x = randn(3, 6, 6, 2)
    y = np.eye(4, dtype=np.float32)[[0, 2, 3]]
    model._prepare(x, y)
    y = model.loss.prepare_targets(y, model.output_shape)
    state = model.new_state()
    model._configure(state, [True], True)  # the input gradient is wanted here
    model.forward(state, x, True)
    dlogits = model.loss.from_logits_value_and_grad(y, model.logits_of(state))[1]
    dx = model.backward_from_logits(state, dlogits)
    for flat in rng.choice(x.size, 8, replace=False):
        index = np.unravel_index(flat, x.shape)

        def difference(eps):
            values = []
            for sign in (1, -1):
                xp = x.copy()
                xp[index] += sign * eps
                values.append(_batch_loss(model, y, xp))
            return (values[0] - values[1]) / (2 * eps)

        assert _agrees(difference, dx[index])


# ---------------------------------------------------------------- Keras' shapes and defaults

def test_weights_have_keras_order_and_shapes():
    conv = Conv2D(32, (3, 3), input_shape=(32, 32, 3))
    conv.build((None, 32, 32, 3))
    assert [w.shape for w in conv.get_weights()] == [(3, 3, 3, 32), (32,)]
    assert np.all(conv.get_weights()[1] == 0)
    dense = Dense(10, use_bias=False)
    dense.build((None, 7))
    assert [w.shape for w in dense.weights] == [(7, 10)]
    assert all(w.dtype == np.float32 and w.flags.c_contiguous for w in conv.weights)


def test_glorot_uniform_and_he_normal_use_keras_fans():
    set_random_seed(0)
    w = initializers.get("glorot_uniform")((3, 3, 64, 128))
    limit = np.sqrt(6 / (9 * 64 + 9 * 128))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    h = initializers.get("he_normal")((5, 5, 40, 200))
    std = np.sqrt(2 / (25 * 40))
    assert np.abs(h).max() <= 2 * std / 0.87962566103423978 + 1e-6  # truncated at 2 stddev
    assert abs(h.std() / std - 1) < 0.02
    assert np.array_equal(initializers.HeNormal(seed=5)((4, 4)), initializers.HeNormal(seed=5)((4, 4)))


def test_layer_names_follow_keras():
    a, b = MaxPooling2D(), MaxPooling2D()
    assert a.name.startswith("max_pooling2d") and a.name != b.name
    assert Dense(2, name="head").name == "head"


# ---------------------------------------------------------------- errors that name the layer

def test_a_shape_mismatch_on_add_names_the_layer_and_both_shapes():
    model = Sequential([Dense(4, input_shape=(3,))])
    with pytest.raises(ValueError, match=r'"conv2d_x".*ndim=4.*\(None, 4\)'):
        model.add(Conv2D(2, 3, name="conv2d_x"))
    assert len(model.layers) == 1  # the bad layer was not added
    with pytest.raises(ValueError, match=r'"big".*larger than the image.*\(None, 4, 4, 1\)'):
        Sequential([Input((4, 4, 1)), Conv2D(2, 5, name="big")])
    with pytest.raises(ValueError, match=r'"rs".*\(None, 3, 4\).*\(5,\)'):
        Sequential([Input((3, 4)), Reshape((5,), name="rs")])


def test_a_built_layer_rejects_other_channels_and_bad_weights():
    conv = Conv2D(2, 3, name="c")
    conv(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r'"c".*\(None, 5, 5, 3\).*\(1, 5, 5, 4\)'):
        conv(np.zeros((1, 5, 5, 4), np.float32))
    with pytest.raises(ValueError, match=r'"c" weight 0 has shape \(3, 3, 3, 2\).*\(3, 3, 1, 2\)'):
        conv.set_weights([np.zeros((3, 3, 1, 2)), np.zeros(2)])
    with pytest.raises(TypeError, match="Unrecognized keyword"):
        Dense(3, kernel_size=2)
    with pytest.raises(ValueError, match="activation"):
        Dense(3, activation="swishy")
