"""The augmentation kernels (cnnkit.ops: flip, affine_transform, crop, contrast) against their
definitions and cnnkit.reference, and the Keras preprocessing layers built on them: active only
in training, seeded and saved with the model, inside Sequential models, with arguments checked."""
import numpy as np
import pytest

import cnnkit
from cnnkit import _core, ops, reference as R
from cnnkit.layers import (Conv2D, Dense, Flatten, Input, MaxPooling2D, RandomContrast,
                           RandomCrop, RandomFlip, RandomRotation, RandomTranslation, RandomZoom)
from cnnkit.models import Sequential, load_model

rng = np.random.default_rng(11)
FILLS = ["reflect", "wrap", "nearest", "constant"]


def images(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(actual, expected, tol=1e-5):
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def translation(dx, dy):
    return np.array([1, 0, -dx, 0, 1, -dy], np.float32)


# ---------------------------------------------------------------- kernels: exact results

def test_flip_is_an_exact_mirror_per_image():
    x = images(4, 5, 6, 3)
    h, v = [True, False, True, False], [False, False, True, True]
    y = ops.flip_forward(x, h, v)
    expected = np.stack([x[0, :, ::-1], x[1], x[2, ::-1, ::-1], x[3, ::-1]])
    assert np.array_equal(y, expected) and np.array_equal(R.flip_forward(x, h, v), expected)
    assert np.array_equal(ops.flip_backward(y, h, v), x)  # its own inverse and transpose


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_whole_pixel_translation_moves_pixels_exactly(interpolation):
    x = images(2, 6, 7, 2)
    y = ops.affine_transform_forward(x, [translation(2, -1), translation(-3, 4)],
                                     interpolation=interpolation, fill_mode="constant",
                                     fill_value=9.0)
    expected = np.full_like(x, 9.0)
    expected[0, :5, 2:] = x[0, 1:, :5]   # right by 2, up by 1
    expected[1, 4:, :4] = x[1, :2, 3:]   # left by 3, down by 4
    assert np.array_equal(y, expected)


@pytest.mark.parametrize("fill,expected", [
    ("reflect", "dcbaabcddcba"), ("wrap", "abcdabcdabcd"), ("nearest", "aaaaabcddddd"),
    ("constant", "kkkkabcdkkkk")])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_fill_modes_match_their_definitions(fill, expected, interpolation):
    """A 1x4 image 'abcd' seen from 4 pixels before it to 4 after (Keras' diagrams)."""
    row = np.array([1, 2, 3, 4], np.float32).reshape(1, 1, 4, 1)  # a b c d
    y = ops.affine_transform_forward(row, translation(4, 0), (1, 12), interpolation, fill, -5.0)
    letters = {1: "a", 2: "b", 3: "c", 4: "d", -5: "k"}
    assert "".join(letters[v] for v in y.ravel()) == expected
    assert np.array_equal(R.affine_transform_forward(row, translation(4, 0), (1, 12),
                                                     interpolation, fill, -5.0), y)


def test_reflect_is_periodic_and_bilinear_blends_neighbours():
    row = np.array([1, 2, 3, 4], np.float32).reshape(1, 1, 4, 1)
    far = ops.affine_transform_forward(row, translation(-8, 0), fill_mode="reflect")
    assert np.array_equal(far, row)  # 2 * width further on: the same pixels
    half = ops.affine_transform_forward(row, translation(0.5, 0), fill_mode="constant")
    assert np.array_equal(half.ravel(), [0.5, 1.5, 2.5, 3.5])  # (0+1)/2, (1+2)/2, ...


# ---------------------------------------------------------------- kernels vs reference

def random_matrices(n, axis_aligned):
    m = np.stack([rng.uniform(0.5, 1.6, n), rng.uniform(-0.6, 0.6, n), rng.uniform(-4, 4, n),
                  rng.uniform(-0.6, 0.6, n), rng.uniform(0.5, 1.6, n), rng.uniform(-4, 4, n)], 1)
    if axis_aligned:
        m[:, [1, 3]] = 0
    return m.astype(np.float32)


@pytest.mark.parametrize("axis_aligned", [True, False])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill", FILLS)
def test_affine_transform_matches_reference(fill, interpolation, axis_aligned):
    x = images(3, 7, 9, 2)
    m = random_matrices(3, axis_aligned)
    args = ((5, 11), interpolation, fill, 0.25)
    y = ops.affine_transform_forward(x, m, *args)
    close(y, R.affine_transform_forward(x, m, *args))
    close(ops.affine_transform_forward(x, m, *args, _naive=True), y)
    dy = images(*y.shape)
    dx = ops.affine_transform_backward(dy, m, (7, 9), interpolation, fill)
    close(dx, R.affine_transform_backward(dy, m, (7, 9), interpolation, fill), 1e-4)
    # backward is the transpose of the linear part: <A x, dy> = <x, A^T dy>
    linear = y - ops.affine_transform_forward(np.zeros_like(x), m, *args)
    assert np.isclose(np.vdot(linear, dy), np.vdot(x, dx), rtol=1e-4)


def test_crop_and_contrast_match_reference():
    x = rng.uniform(0, 255, (3, 7, 6, 2)).astype(np.float32)
    offsets = [[0, 0], [3, 2], [1, 3]]
    y = ops.crop_forward(x, offsets, (4, 3))
    assert np.array_equal(y[1], x[1, 3:7, 2:5])
    assert np.array_equal(y, R.crop_forward(x, offsets, (4, 3)))
    dx = ops.crop_backward(y, offsets, (7, 6))
    assert np.array_equal(dx, R.crop_backward(y, offsets, (7, 6)))
    assert dx[1, 3:7, 2:5].tolist() == x[1, 3:7, 2:5].tolist() and dx[1].sum() == y[1].sum()

    factors = [0.3, 1.0, 1.8]
    y = ops.contrast_forward(x, factors, (0, 255))
    close(y, R.contrast_forward(x, factors, (0, 255)), 1e-3)
    assert np.array_equal(y[1], x[1]) and y.min() >= 0 and y.max() <= 255
    dy = images(*x.shape)
    close(ops.contrast_backward(dy, x, factors, (0, 255)),
          R.contrast_backward(dy, x, factors, (0, 255)), 1e-4)


def test_results_do_not_depend_on_the_thread_count():
    x, m = images(8, 16, 16, 3), random_matrices(8, False)
    old = cnnkit.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            cnnkit.set_num_threads(threads)
            results.append([ops.affine_transform_forward(x, m),
                            ops.affine_transform_backward(x, m, (16, 16)),
                            ops.contrast_backward(x, x, np.linspace(0.5, 1.5, 8), (-3, 3))])
    finally:
        cnnkit.set_num_threads(old)
    assert all(np.array_equal(a, b) for a, b in zip(*results))


# ---------------------------------------------------------------- layers

def all_layers(seed=None):
    return [RandomFlip(seed=seed), RandomTranslation(0.2, (-0.1, 0.3), seed=seed),
            RandomRotation(0.1, seed=seed), RandomZoom((-0.3, 0.2), seed=seed),
            RandomContrast(0.4, value_range=(-3, 3), seed=seed), RandomCrop(6, 7, seed=seed)]


@pytest.mark.parametrize("layer", all_layers(seed=0), ids=lambda l: type(l).__name__)
def test_layers_act_in_training_only_and_keep_dtype_and_shape(layer):
    x = images(5, 8, 9, 3)
    shape = (5, 6, 7, 3) if isinstance(layer, RandomCrop) else x.shape
    first, second = layer(x, training=True), layer(x, training=True)
    assert first.dtype == np.float32 and first.shape == second.shape == shape
    assert not np.array_equal(first, second)  # new parameters on every call
    if not isinstance(layer, RandomCrop):
        assert np.array_equal(layer(x), x) and np.array_equal(layer(x, training=False), x)
    assert layer.compute_output_shape((None, 8, 9, 3)) == (None,) + shape[1:]


def test_each_layer_applies_its_drawn_parameters():
    x = images(64, 8, 10, 3)
    flip = RandomFlip("horizontal_and_vertical")
    y = flip(x, training=True)
    assert np.array_equal(y, R.flip_forward(x, flip._params & 1 > 0, flip._params & 2 > 0))
    assert set(flip._params.tolist()) == {0, 1, 2, 3}  # the two directions independently
    vertical = RandomFlip("vertical")
    vertical(x, training=True)
    assert set(vertical._params.tolist()) == {0, 2}

    move = RandomTranslation((-0.2, 0.1), 0.3, fill_mode="wrap", interpolation="nearest")
    y = move(x, training=True)
    m = move._params
    assert np.array_equal(y, R.affine_transform_forward(x, m, None, "nearest", "wrap"))
    assert np.all((-m[:, 5] >= -0.2 * 8) & (-m[:, 5] <= 0.1 * 8) & (np.abs(m[:, 2]) <= 3))

    turn = RandomRotation((0.1, 0.2), fill_mode="constant", fill_value=2.0)
    y = turn(x, training=True)
    m = turn._params.astype(np.float64)
    close(y, R.affine_transform_forward(x, turn._params, None, "bilinear", "constant", 2.0))
    angle = np.arctan2(m[:, 3], m[:, 0]) / (2 * np.pi)
    assert np.all((angle >= 0.1 - 1e-6) & (angle <= 0.2 + 1e-6))
    centre = m[:, [0, 1]] @ [4.5, 3.5] + m[:, 2], m[:, [3, 4]] @ [4.5, 3.5] + m[:, 5]
    close(np.stack(centre, 1), np.tile([4.5, 3.5], (64, 1)), 1e-4)  # rotates about the centre

    zoom = RandomZoom(0.5)  # positive zooms out: the output sees more of the input
    y = zoom(x, training=True)
    m = zoom._params
    close(y, R.affine_transform_forward(x, m))
    assert np.array_equal(m[:, 0], m[:, 4]) and np.all((m[:, 0] >= 0.5) & (m[:, 0] <= 1.5))
    zoom = RandomZoom((0.1, 0.4), (-0.3, -0.2))
    zoom(x, training=True)
    m = zoom._params
    assert np.all((m[:, 4] >= 1.1) & (m[:, 4] <= 1.4) & (m[:, 0] >= 0.7) & (m[:, 0] <= 0.8))

    contrast = RandomContrast((0.2, 0.5), value_range=(-1, 1))
    y = contrast(x, training=True)
    f = contrast._params
    close(y, R.contrast_forward(x, f, (-1, 1)), 1e-5)
    assert np.all((f >= 0.8) & (f <= 1.5)) and y.min() >= -1 and y.max() <= 1


def test_rotation_zoom_translation_by_zero_are_the_identity():
    x = images(4, 6, 5, 2)
    for layer in (RandomRotation(0.0), RandomZoom(0.0), RandomTranslation(0, 0),
                  RandomContrast(0.0, value_range=(-10, 10))):
        assert np.array_equal(layer(x, training=True), x), type(layer).__name__


def test_random_crop_in_training_and_centre_crop_resize_in_inference():
    x = images(3, 16, 16, 2)
    crop = RandomCrop(10, 12)
    y = crop(x, training=True)
    top, left = crop._params[0]
    assert np.all(crop._params == [top, left])  # one window for the whole batch, as Keras
    assert np.array_equal(y, x[:, top:top + 10, left:left + 12])
    # Inference: the largest centred window of the target's aspect ratio, resized.
    assert np.array_equal(RandomCrop(8, 16)(x), x[:, 4:12])  # 8x16 window, no resize needed
    halves = RandomCrop(8, 8)(x)  # all of it, resized to half: 2x2 averages (half-pixel centres)
    close(halves, x.reshape(3, 8, 2, 8, 2, 2).mean(axis=(2, 4)))
    small = RandomCrop(20, 20)(x, training=True)  # smaller than the window: resized up
    assert small.shape == (3, 20, 20, 2) and np.allclose(small[:, 0, 0], x[:, 0, 0])


def test_seeded_layers_repeat_and_differ_by_seed():
    x = images(6, 16, 16, 3)
    for a, b, c in zip(all_layers(5), all_layers(5), all_layers(6)):
        ya, yb, yc = (layer(x, training=True) for layer in (a, b, c))
        assert np.array_equal(ya, yb) and not np.array_equal(ya, yc), type(a).__name__


def test_non_contiguous_input_gives_the_same_result():
    x = images(4, 10, 8, 3)
    strided = np.asfortranarray(x)[:, ::-1][:, ::-1]
    assert not strided.flags.c_contiguous
    for a, b in zip(all_layers(3), all_layers(3)):
        assert np.array_equal(a(strided, training=True), b(x.copy(), training=True))
    assert np.array_equal(ops.flip_forward(x[:, ::2], True), x[:, ::2, ::-1])


def test_backward_of_each_layer_is_its_kernels_backward():
    x = images(3, 8, 9, 2)
    for layer in all_layers():
        layer.build((None,) + x.shape[1:])
        call = layer.new_state()
        y = layer.forward(call, x, training=True)
        dy, p = images(*y.shape), layer._params
        if isinstance(layer, RandomFlip):
            expected = R.flip_backward(dy, p & 1 > 0, p & 2 > 0)
        elif isinstance(layer, RandomCrop):
            expected = R.crop_backward(dy, p, (8, 9))
        elif isinstance(layer, RandomContrast):
            expected = R.contrast_backward(dy, x, p, layer.value_range)
        else:
            expected = R.affine_transform_backward(dy, p, (8, 9), layer.interpolation,
                                                   layer.fill_mode)
        close(layer.backward(call, dy), expected, 1e-4)
        call.need_dx = False  # nothing reads it: not computed
        assert layer.backward(call, dy) is None and layer.backward(call, None) is None
    flip = RandomFlip()
    flip.build((None,) + x.shape[1:])
    call = flip.new_state()
    assert flip.forward(call, x, training=False) is x  # inference: the identity, backward too
    assert flip.backward(call, x) is x


# ---------------------------------------------------------------- in models

def cnn(*front):
    return Sequential([Input((12, 12, 3)), *front, Conv2D(4, 3, activation="relu"),
                       MaxPooling2D(), Flatten(), Dense(3, activation="softmax")])


def need_dx(model):
    """need_dx of each call state of the trainer's last training step, by layer name."""
    gs = model._step_state(True).active
    return {step.layer.name: child.need_dx for step, child in zip(gs.graph.steps, gs.children)}


def data(n=16):
    x = rng.random((n, 12, 12, 3)).astype(np.float32)
    return x, np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


def test_fit_predict_evaluate_summary_in_a_sequential():
    model = cnn(RandomFlip("horizontal", seed=1), RandomTranslation(0.1, 0.1, seed=2),
                RandomRotation(0.05), RandomZoom(0.1), RandomContrast(0.2, (0, 1)))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = data()
    before = model.get_weights()
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 2
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # The conv after the augmentation layers skips its input gradient: nothing reads it.
    needs = need_dx(model)
    assert [needs[l.name] for l in model.layers[4:7]] == [False, False, True]
    # Inference: the augmentation layers are the identity.
    expected = x
    for layer in model.layers[5:]:
        expected = layer(expected)
    close(model.predict(x, verbose=0), expected)
    assert np.array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    loss, _ = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss)
    lines = []
    model.summary(print_fn=lines.append)
    assert any("random_flip" in line and "(RandomFlip)" in line and "(None, 12, 12, 3)" in line
               for line in lines)


def test_a_nested_augmentation_model_and_a_crop_change_the_shapes_and_grads():
    augment = Sequential([RandomFlip(), RandomCrop(10, 10)])
    model = Sequential([Input((12, 12, 3)), augment, Conv2D(2, 3), Flatten(),
                        Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x, y = data(8)
    model.train_on_batch(x, y)
    assert augment.preprocessing and not need_dx(model)[model.layers[1].name]
    assert model.output_shape == (None, 3) and model.layers[1].input_shape == (None, 10, 10, 3)
    assert model.predict(x, verbose=0).shape == (8, 3)


def test_an_augmentation_layer_after_weights_passes_the_gradient_back():
    model = Sequential([Input((12, 12, 3)), Conv2D(3, 3, padding="same"),
                        RandomTranslation(0.2, 0.2, seed=3), RandomFlip(seed=4),
                        RandomContrast(0.3, (-100, 100), seed=5), Flatten(),
                        Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x, y = data(4)
    kernel = model.get_weights()[0].copy()
    model.train_on_batch(x, y)
    needs = need_dx(model)
    assert all(needs[l.name] for l in model.layers[1:4])
    assert not np.array_equal(kernel, model.get_weights()[0])


def test_save_and_load_keep_the_config_and_resume_the_random_stream(tmp_path):
    model = cnn(RandomFlip(seed=1), RandomTranslation((-0.1, 0.2), 0.1, fill_mode="constant",
                                                      fill_value=0.5),
                RandomRotation(0.1, interpolation="nearest"), RandomZoom(0.1, None, seed=4),
                RandomContrast((0.1, 0.3), (0, 1)))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.get_config() == model.get_config()
    assert loaded.layers[1].fill_value == 0.5 and loaded.layers[1].height_factor == [-0.1, 0.2]
    for _ in range(2):  # the generators go on where they stopped
        close(loaded.forward(loaded.new_state(), x, training=True),
              model.forward(model.new_state(), x, training=True))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)
    close(loaded.get_weights()[0], model.get_weights()[0])


def test_a_warm_training_step_with_augmentation_allocates_almost_nothing():
    """Flip and translation in front of the classic CIFAR-10 CNN write into workspaces too."""
    import tracemalloc
    model = Sequential([Input((32, 32, 3)), RandomFlip("horizontal", seed=0),
                        RandomTranslation(0.1, 0.1, seed=1), Conv2D(32, 3, activation="relu"),
                        MaxPooling2D(), Conv2D(64, 3, activation="relu"), MaxPooling2D(),
                        Flatten(), Dense(128, activation="relu"), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = rng.random((8, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 8)]
    model.train_on_batch(x, y)
    tracemalloc.start()
    try:
        for _ in range(3):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            model.train_on_batch(x, y)
            assert tracemalloc.get_traced_memory()[1] - before < 64 * 1024
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------- bad arguments

X = np.zeros((2, 8, 8, 3), np.float32)

BAD = [
    (lambda: RandomFlip("diagonal"), ValueError, ["mode", "'diagonal'", "'horizontal'"]),
    (lambda: RandomFlip(seed=-1), ValueError, ["seed"]),
    (lambda: RandomFlip(seed="1"), TypeError, ["seed"]),
    (lambda: RandomTranslation(1.5, 0.1), ValueError, ["height_factor", "1.5"]),
    (lambda: RandomTranslation(0.1, (0.1, 0.2, 0.3)), ValueError, ["width_factor"]),
    (lambda: RandomTranslation(0.1, "big"), TypeError, ["width_factor"]),
    (lambda: RandomTranslation(0.1, 0.1, fill_mode="mirror"), ValueError,
     ["fill_mode", "'mirror'"]),
    (lambda: RandomTranslation(0.1, 0.1, interpolation="bicubic"), ValueError, ["interpolation"]),
    (lambda: RandomTranslation(0.1, 0.1, fill_value=None), TypeError, ["fill_value"]),
    (lambda: RandomRotation((-0.5, 1.2)), ValueError, ["factor", "RandomRotation"]),
    (lambda: RandomZoom(0.5, width_factor=-2), ValueError, ["width_factor"]),
    (lambda: RandomContrast(-0.1), ValueError, ["factor", "[0.0, 1.0]"]),
    (lambda: RandomContrast(0.2, value_range=(1, 0)), ValueError, ["value_range"]),
    (lambda: RandomCrop(0, 5), ValueError, ["height"]),
    (lambda: RandomCrop(4, 2.5), TypeError, ["width"]),
    (lambda: RandomCrop(4, 4, data_format="channels_first"), ValueError, ["channels_last"]),
    (lambda: RandomFlip()(np.zeros((2, 8, 3), np.float32)), ValueError, ["ndim=4"]),
    (lambda: ops.flip_forward(X, [True] * 3), ValueError, ["horizontal", "(2,)"]),
    (lambda: ops.affine_transform_forward(X, np.zeros((3, 6))), ValueError, ["matrices", "(2, 6)"]),
    (lambda: ops.affine_transform_forward(X, [1, 0, np.inf, 0, 1, 0]), ValueError, ["finite"]),
    (lambda: ops.affine_transform_forward(X, translation(1, 1), fill_mode="edge"), ValueError,
     ["fill_mode", "'edge'"]),
    (lambda: ops.crop_forward(X, [0, 0], (9, 4)), ValueError, ["9x4", "8x8"]),
    (lambda: ops.crop_forward(X, [[0, 0], [5, 1]], (4, 4)), ValueError, ["offsets", "image 1"]),
    (lambda: ops.crop_forward(X, [0.5, 0], (4, 4)), TypeError, ["offsets", "integers"]),
    (lambda: ops.contrast_forward(X, [1.0, 2.0], (0, 0)), ValueError, ["value_range"]),
    (lambda: ops.contrast_backward(X[:1], X, 1.0), ValueError, ["dy"]),
    # the bindings refuse what would read or write out of bounds, whatever calls them
    (lambda: _core.crop_forward(X, np.array([[0, 0], [5, 0]], np.int32), 4, 4), ValueError,
     ["offsets"]),
    (lambda: _core.crop_backward(X[:, :4, :4].copy(), np.array([[0, 0], [0, 5]], np.int32), 8, 8),
     ValueError, ["offsets"]),
    (lambda: _core.flip_forward(X, np.array([1, 4], np.uint8)), ValueError, ["flags"]),
    (lambda: _core.affine_transform_forward(X, np.zeros((2, 6), np.float32), 4, 4, "cubic"),
     ValueError, ["interpolation"]),
    (lambda: _core.affine_transform_forward(X, np.zeros((2, 6)), 4, 4), TypeError, []),
    (lambda: _core.contrast_forward(X, np.ones(2, np.float32), 1.0, 0.0), ValueError,
     ["value_range"]),
]


@pytest.mark.parametrize("call,error,words", BAD, ids=range(len(BAD)))
def test_bad_arguments_name_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value)
