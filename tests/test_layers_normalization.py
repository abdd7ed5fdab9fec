"""BatchNormalization and LayerNormalization layers: Keras 3 parity (outputs, moving statistics,
configs), the layers' gradients against the reference, training a model with fit, freezing,
saving and loading the moving statistics, a warm step without allocations, and bad arguments."""
import os

import numpy as np
import pytest

import cnnkit
from cnnkit import reference
from cnnkit.layers import (Activation, BatchNormalization, Conv2D, Dense, Flatten,
                           LayerNormalization, MaxPooling2D)
from cnnkit.models import Sequential, load_model
from cnnkit.utils import set_random_seed
from test_step_allocations import traced_growth


def keras_module():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    return pytest.importorskip("keras")


def rand(shape, seed, offset=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return (offset + scale * rng.standard_normal(shape)).astype(np.float32)


def random_weights(layer, seed):
    rng = np.random.default_rng(seed)
    weights = []
    for w in layer.weights:
        weights.append((0.5 + rng.random(w.shape)).astype(np.float32))
    layer.set_weights(weights)
    return weights


BN_KERAS = [((4, 5, 5, 3), {}), ((4, 5, 5, 3), {"axis": 1}), ((6, 7), {"momentum": 0.9}),
            ((3, 4, 6), {"axis": -2, "epsilon": 0.01}), ((4, 2, 2, 3), {"center": False}),
            ((4, 2, 2, 3), {"scale": False}), ((4, 2, 2, 3), {"center": False, "scale": False})]


@pytest.mark.parametrize("shape,kwargs", BN_KERAS)
def test_batchnorm_matches_keras_in_training_and_inference(shape, kwargs):
    keras = keras_module()
    ours, theirs = BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    x = rand(shape, 0, offset=2.0, scale=3.0)
    ours.build((None,) + shape[1:])
    theirs.build((None,) + shape[1:])
    weights = random_weights(ours, 1)
    theirs.set_weights(weights)
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert len(ours.trainable_weights) == len(theirs.trainable_weights)
    assert len(ours.non_trainable_weights) == len(theirs.non_trainable_weights) == 2
    for _ in range(2):  # two training calls: the moving statistics move twice
        np.testing.assert_allclose(ours(x, training=True),
                                   np.asarray(theirs(x, training=True)), rtol=1e-4, atol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours.moving_mean, weights[-2])  # they did move
    np.testing.assert_allclose(ours(x), np.asarray(theirs(x, training=False)), rtol=1e-4,
                               atol=1e-4)


LN_KERAS = [((4, 10), {}), ((2, 3, 4, 5), {"axis": [1, 2, 3]}), ((2, 3, 4, 5), {"axis": 1}),
            ((2, 3, 4, 5), {"axis": [3, 1]}), ((3, 6), {"center": False, "scale": False}),
            ((3, 4, 6), {"epsilon": 0.1}), ((3, 4, 6), {"rms_scaling": True})]


@pytest.mark.parametrize("shape,kwargs", LN_KERAS)
def test_layernorm_matches_keras(shape, kwargs):
    keras = keras_module()
    import warnings
    ours = LayerNormalization(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras deprecates rms_scaling
        theirs = keras.layers.LayerNormalization(**kwargs)
    x = rand(shape, 2, offset=1.0, scale=2.0)
    ours.build((None,) + shape[1:])
    theirs.build((None,) + shape[1:])
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    theirs.set_weights(random_weights(ours, 3))
    np.testing.assert_allclose(ours(x, training=True), np.asarray(theirs(x)), rtol=1e-4,
                               atol=1e-4)
    assert ours.get_config()["axis"] == theirs.get_config()["axis"]


@pytest.mark.parametrize("cls,kwargs", [(BatchNormalization, {"axis": 1, "momentum": 0.9}),
                                        (LayerNormalization, {"axis": [1, 2]})])
def test_config_keys_match_keras_and_round_trip(cls, kwargs):
    keras = keras_module()
    ours, theirs = cls(**kwargs), getattr(keras.layers, cls.__name__)(**kwargs)
    base = {"dtype"}  # Keras' dtype policy: cnnkit computes in float32 only
    assert set(ours.get_config()) == set(theirs.get_config()) - base
    for key, value in ours.get_config().items():
        want = theirs.get_config()[key]
        if key.endswith("_initializer"):  # cnnkit's serialized form omits Keras' module
            assert value["class_name"] == want["class_name"], key
        elif key != "name":
            assert value == want, key
    again = cls.from_config(ours.get_config())
    assert again.get_config() == ours.get_config()


@pytest.mark.parametrize("layer,shape", [(BatchNormalization(), (6, 3, 3, 4)),
                                         (BatchNormalization(axis=1), (5, 4, 3)),
                                         (LayerNormalization(), (5, 8)),
                                         (LayerNormalization(axis=[1, 2]), (3, 4, 5, 2)),
                                         (LayerNormalization(axis=1), (3, 4, 5)),
                                         (LayerNormalization(rms_scaling=True), (3, 7))])
@pytest.mark.parametrize("training", [True, False])
def test_layer_backward_matches_the_reference(layer, shape, training):
    x, dy = rand(shape, 4, offset=0.3), rand(shape, 5)
    call = layer.new_state()
    if not layer.built:
        layer.build((None,) + shape[1:])
    random_weights(layer, 6)
    before = [w.copy() for w in layer.weights]
    y = layer.forward(call, x, training)
    dx = layer.backward(call, dy)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    if isinstance(layer, BatchNormalization):
        gamma, beta, mm, mv = before
        if training:
            ry, mean, var = reference.batchnorm_forward_train(x64, gamma, beta, layer.axis,
                                                              layer.epsilon)
        else:
            ry, mean, var = reference.batchnorm_forward(x64, gamma, beta, mm, mv, layer.axis,
                                                        layer.epsilon), mm, mv
        want = reference.batchnorm_backward(dy64, x64, mean, var, gamma, layer.axis,
                                            layer.epsilon, training)
    else:
        gamma = before[0]
        beta = None if layer.rms_scaling else before[1]
        ry = reference.layernorm_forward(x64, gamma, beta, layer.axis, layer.epsilon,
                                         layer.rms_scaling)
        want = reference.layernorm_backward(dy64, x64, gamma, layer.axis, layer.epsilon,
                                            layer.rms_scaling)
        if layer.rms_scaling:
            want = want[:2]
    np.testing.assert_allclose(y, ry, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, want[0], rtol=1e-4, atol=1e-4)
    assert len(call.grads) == len(layer.trainable_weights)
    for g, w in zip(call.grads, want[1:]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def bn_cnn(seed=0):
    set_random_seed(seed)
    model = Sequential([cnnkit.Input((8, 8, 3)), Conv2D(6, 3, padding="same"),
                        BatchNormalization(), Activation("relu"), Flatten(),
                        Dense(8), BatchNormalization(), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def bn_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8, 3)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > 0).astype(np.int64) + (x[..., 0].mean((1, 2)) > 0.1)
    return x, y


def test_a_model_with_batchnorm_trains_and_updates_its_moving_statistics():
    model, (x, y) = bn_cnn(), bn_data()
    bn = model.layers[1]
    assert isinstance(bn, BatchNormalization)
    assert len(model.non_trainable_weights) == 4
    first = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses
    assert model.evaluate(x, y, verbose=0) < first
    assert not np.allclose(bn.moving_mean, 0) and not np.allclose(bn.moving_variance, 1)
    # inference uses the moving statistics: predict is the same on a batch of 1 and of 64
    np.testing.assert_allclose(model.predict(x[:1], verbose=0),
                               model.predict(x, verbose=0)[:1], rtol=1e-4, atol=1e-5)


def test_moving_statistics_are_saved_and_loaded_with_the_model(tmp_path):
    model, (x, y) = bn_cnn(), bn_data()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.layers[1].moving_variance, model.layers[1].moving_variance)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)


def test_a_frozen_batchnorm_runs_in_inference_mode_and_keeps_its_statistics():
    model, (x, y) = bn_cnn(), bn_data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    bn = model.layers[1]
    bn.trainable = False
    assert bn.trainable_weights == [] and len(bn.non_trainable_weights) == 4
    frozen = [w.copy() for w in bn.weights]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for a, b in zip(frozen, bn.weights):
        np.testing.assert_array_equal(a, b)
    xb = rand((5, 8, 8, 6), 7)
    np.testing.assert_array_equal(bn(xb, training=True), bn(xb, training=False))


def test_a_warm_training_step_with_batchnorm_allocates_almost_nothing():
    model, (x, y) = bn_cnn(), bn_data(16)
    for _ in range(3):
        model.train_on_batch(x, y)
    rises = traced_growth(lambda: model.train_on_batch(x, y), steps=4)
    assert max(rises) < 64 * 1024, rises


@pytest.mark.parametrize("make,match,error", [
    (lambda: BatchNormalization(momentum=1.5), "momentum", ValueError),
    (lambda: BatchNormalization(momentum="fast"), "momentum", ValueError),
    (lambda: BatchNormalization(epsilon=0), "epsilon", ValueError),
    (lambda: BatchNormalization(epsilon=-1e-3), "epsilon", ValueError),
    (lambda: BatchNormalization(epsilon=None), "epsilon", ValueError),
    (lambda: BatchNormalization(axis=[1, 2]), "axis", ValueError),
    (lambda: BatchNormalization(axis="channels"), "axis", ValueError),
    (lambda: BatchNormalization(gamma_constraint="non_neg"), "gamma_constraint",
     NotImplementedError),
    (lambda: BatchNormalization(beta_constraint="non_neg"), "beta_constraint",
     NotImplementedError),
    (lambda: BatchNormalization(renorm=True), "renorm", NotImplementedError),
    (lambda: BatchNormalization(moving_mean_initializer="nonsense"), "nonsense", ValueError),
    (lambda: BatchNormalization(axis=2).build((None, 4)), "axis", ValueError),
    (lambda: BatchNormalization(axis=-3).build((None, 4)), "axis", ValueError),
    (lambda: BatchNormalization(axis=0).build((None, 4)), "batch axis", ValueError),
    (lambda: BatchNormalization()(np.ones((4, 3), dtype=object)), "numeric", TypeError),
    (lambda: LayerNormalization(axis="last"), "axis", ValueError),
    (lambda: LayerNormalization(epsilon=0.0), "epsilon", ValueError),
    (lambda: LayerNormalization(axis=[1, 5]).build((None, 3, 4)), "axis", ValueError),
    (lambda: LayerNormalization(axis=[1, 1]).build((None, 3, 4)), "axis", ValueError),
    (lambda: LayerNormalization(gamma_constraint="non_neg"), "gamma_constraint",
     NotImplementedError),
])
def test_bad_arguments_are_clear_errors(make, match, error):
    with pytest.raises(error, match=match):
        make()


def test_a_built_batchnorm_rejects_other_channels():
    bn = BatchNormalization()
    bn(rand((2, 3, 3, 4), 8))
    with pytest.raises(ValueError, match="incompatible"):
        bn(rand((2, 3, 3, 5), 8))


# ---------------------------------------------------------------- inference folding

def counting(monkeypatch, name):
    """Counts the calls of cnnkit._core.<name>."""
    from cnnkit import _core
    calls, kernel = [], getattr(_core, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(_core, name, counted)
    return calls


def unfolded_predict(model, x):
    """Every layer on its own: neither folding nor ReLU fusion (engine/fusion.py)."""
    from cnnkit.engine import folding, fusion
    folding.ENABLED = fusion.ENABLED = False
    try:
        return model.predict(x, verbose=0)
    finally:
        folding.ENABLED = fusion.ENABLED = True


def residual_bn_model(seed=0):
    """conv -> BN -> relu, a Dense -> BN, a BN read by two layers, and a conv whose output
    another layer also reads (not foldable)."""
    set_random_seed(seed)
    inputs = cnnkit.Input((8, 8, 3))
    a = BatchNormalization()(Conv2D(6, 3, padding="same")(inputs))
    a = Activation("relu")(a)
    b = Conv2D(6, 3, padding="same", use_bias=False)(a)
    c = BatchNormalization()(b)
    d = cnnkit.layers.Add()([c, b])  # b has two readers: its BN is not folded
    e = Dense(5)(Flatten()(MaxPooling2D(4)(d)))
    f = BatchNormalization(momentum=0.5)(e)
    outputs = Dense(3, activation="softmax")(f)
    model = cnnkit.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_folding_matches_the_unfolded_model_and_follows_further_training(monkeypatch):
    model, (x, y) = residual_bn_model(), bn_data()
    graph = model._graph_for(False)
    assert len(graph.folds) == 2  # conv -> BN and Dense -> BN; the Add one is not folded
    # The first conv's BN is read by a plain ReLU, which folds in as the conv's fused ReLU.
    assert sorted(relu is not None for _, relu, _ in graph.folds.values()) == [False, True]
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    calls = counting(monkeypatch, "batchnorm_forward_infer")
    relus, activation_forward = [], Activation.forward

    def counted_activation(self, call, x, training=False):
        relus.append(1)
        return activation_forward(self, call, x, training)

    monkeypatch.setattr(Activation, "forward", counted_activation)
    folded = model.predict(x, verbose=0)
    assert len(calls) == 1 * 2  # only the unfoldable BN runs, once per batch of 32
    assert not relus
    calls.clear()
    np.testing.assert_allclose(folded, unfolded_predict(model, x), rtol=1e-5, atol=1e-6)
    assert len(calls) == 3 * 2 and len(relus) == 2
    # further training moves every weight, the moving statistics included: the folded
    # weights follow, as they do after set_weights
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), unfolded_predict(model, x),
                               rtol=1e-5, atol=1e-6)
    weights = model.get_weights()
    rng = np.random.default_rng(3)
    model.set_weights([w + 0.1 * rng.random(w.shape).astype(np.float32) for w in weights])
    np.testing.assert_allclose(model.predict(x, verbose=0), unfolded_predict(model, x),
                               rtol=1e-5, atol=1e-6)
    bn = [layer for layer in model.layers if isinstance(layer, BatchNormalization)][0]
    bn.moving_variance[...] *= 4  # an in-place edit is seen too
    np.testing.assert_allclose(model.predict(x, verbose=0), unfolded_predict(model, x),
                               rtol=1e-5, atol=1e-6)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(
        float(np.mean(-np.log(unfolded_predict(model, x)[np.arange(len(y)), y]))), rel=1e-4)


def test_folding_leaves_training_and_a_model_output_alone(monkeypatch):
    set_random_seed(1)
    inputs = cnnkit.Input((6,))
    z = Dense(4)(inputs)
    model = cnnkit.Model(inputs, [z, BatchNormalization()(z)])  # z is itself an output
    assert model._graph_for(False).folds == {}
    set_random_seed(2)
    seq = Sequential([cnnkit.Input((6, 6, 2)), Conv2D(3, 3), BatchNormalization()])
    assert len(seq._graph_for(False).folds) == 1
    x = rand((40, 6, 6, 2), 9)
    calls = counting(monkeypatch, "batchnorm_forward_train")
    train = seq(x, training=True)
    assert len(calls) == 1  # training never folds: batch statistics
    np.testing.assert_allclose(seq(x), unfolded_predict(seq, x), rtol=1e-5, atol=1e-6)
    del train


def test_a_built_layer_takes_other_sizes_on_the_axes_it_does_not_normalise():
    # Keras' InputSpec of BatchNormalization pins the rank and the channel axis only
    x8, x4 = rand((2, 8, 8, 3), 10), rand((5, 4, 6, 3), 11)
    for layer in (BatchNormalization(), LayerNormalization()):
        assert layer(x8).shape == x8.shape and layer(x4).shape == x4.shape
        with pytest.raises(ValueError, match="incompatible"):
            layer(rand((2, 8, 3), 12))  # another rank
    np.testing.assert_allclose(LayerNormalization()(x4), reference.layernorm_forward(
        x4.astype(np.float64)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("multiplier,use_bias", [(1, False), (2, True)])
def test_depthwise_bn_relu_folds_into_one_depthwise_call(monkeypatch, multiplier, use_bias):
    from cnnkit.layers import DepthwiseConv2D
    set_random_seed(4)
    model = Sequential([cnnkit.Input((7, 7, 3)),
                        DepthwiseConv2D(3, padding="same", depth_multiplier=multiplier,
                                        use_bias=use_bias),
                        BatchNormalization(), Activation("relu"), Flatten(), Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    x = rand((24, 7, 7, 3), 5)
    model.fit(x, rand((24, 2), 6), batch_size=8, epochs=2, verbose=0)  # moving stats move
    assert list(model._graph_for(False).folds.values()) == [(1, 2, None)]
    calls = counting(monkeypatch, "batchnorm_forward_infer")
    np.testing.assert_allclose(model.predict(x, verbose=0), unfolded_predict(model, x),
                               rtol=1e-5, atol=1e-5)
    assert len(calls) == 1  # the unfolded pass only


def resnet_blocks_model(seed=6, broadcast=False):
    """Two ResNet v1 blocks (conv-BN-ReLU-conv-BN, Add, ReLU): an identity shortcut, then a
    projection one (its 1x1 convolution comes after the branch in the graph's order: an
    inference pass runs it first, so that Add folds too), and with broadcast=True one Add whose
    other input, a second model input, broadcasts (its fold declines at run time)."""
    L = cnnkit.layers
    set_random_seed(seed)
    inputs = x = cnnkit.Input((8, 8, 4))
    x = Activation("relu")(BatchNormalization()(Conv2D(8, 3, padding="same")(x)))
    y = Activation("relu")(BatchNormalization()(Conv2D(8, 3, padding="same")(x)))
    y = BatchNormalization()(Conv2D(8, 3, padding="same")(y))
    x = Activation("relu")(L.Add()([y, x]))  # identity shortcut, branch first
    y = Activation("relu")(BatchNormalization()(Conv2D(16, 3, strides=2, padding="same")(x)))
    y = BatchNormalization()(Conv2D(16, 3, padding="same")(y))
    x = Activation("relu")(L.Add()([Conv2D(16, 1, strides=2)(x), y]))  # projection shortcut
    if broadcast:
        shift = cnnkit.Input((1, 1, 16))
        x = L.Add()([BatchNormalization()(Conv2D(16, 3, padding="same")(x)), shift])
        inputs = [inputs, shift]
    x = L.GlobalAveragePooling2D()(x)
    model = cnnkit.Model(inputs, Dense(3, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("broadcast", [False, True])
def test_a_resnet_blocks_sum_and_relu_fold_into_its_last_convolution(monkeypatch, broadcast):
    from cnnkit.layers import Add
    model = resnet_blocks_model(broadcast=broadcast)
    x = rand((20, 8, 8, 4), 7)
    if broadcast:
        x = [x, rand((20, 1, 1, 16), 8)]
    model.fit(x, np.arange(20) % 3, batch_size=10, epochs=2, verbose=0)  # moving stats move
    graph = model._graph_for(False)
    residual = [res for _, _, res in graph.folds.values() if res is not None]
    assert len(residual) == 2 + broadcast  # the identity and projection blocks', the broadcast one
    assert residual[0][1] is not None and residual[1][1] is not None  # their ReLUs fold too
    # The projection's 1x1 convolution runs just before the convolution that adds it.
    kinds = [(type(graph.steps[i].layer).__name__, getattr(graph.steps[i].layer, "kernel_size", 0))
             for i in graph.folded_order]
    at = kinds.index(("Conv2D", (1, 1)))
    assert kinds[at + 1] == ("Conv2D", (3, 3)) and kinds[at - 1] == ("Activation", 0)
    assert graph.folded_order != list(range(len(graph.steps)))
    made = set(graph.input_numbers)  # every step still comes after the steps it reads
    for i in graph.folded_order:
        assert made.issuperset(graph.steps[i].inputs)
        made.update(graph.steps[i].outputs)
    adds, add_forward = [], Add.forward

    def counted_add(self, call, inputs, training=False):
        adds.append(1)
        return add_forward(self, call, inputs, training)

    monkeypatch.setattr(Add, "forward", counted_add)
    folded = model.predict(x, batch_size=20, verbose=0)
    assert len(adds) == (1 if broadcast else 0)  # the broadcast one's alone
    np.testing.assert_allclose(folded, unfolded_predict(model, x), rtol=1e-5, atol=1e-6)
