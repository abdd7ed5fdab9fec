"""cnnkit.onnx.export: every layer's ONNX graph, checked by onnx.checker and run by ONNX Runtime
against cnnkit's own predict (max error 1e-5 of the output's scale), with the batch size free;
BatchNormalization folded; graphs, nested models; the CLI; what export refuses."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import cnnkit  # noqa: E402
import cnnkit.onnx as cnnkit_onnx  # noqa: E402
from cnnkit import layers as L  # noqa: E402
from cnnkit.cli import main  # noqa: E402

RNG = np.random.default_rng(1)
IMAGE = (8, 8, 3)
ACTIVATIONS = ["relu", "sigmoid", "tanh", "softmax", "log_softmax", "exponential", "gelu", "silu",
               "elu", "selu", "softplus", "softsign", "hard_sigmoid", "hard_silu", "mish", "relu6",
               "leaky_relu", "linear"]

LAYERS = [
    ("Dense", dict(units=4, activation="relu"), (6,)),
    ("Dense", dict(units=4), (5, 6)),
    ("Conv2D", dict(filters=4, kernel_size=3, padding="same", activation="relu"), IMAGE),
    ("Conv2D", dict(filters=4, kernel_size=(3, 2), strides=2), IMAGE),
    ("Conv2D", dict(filters=4, kernel_size=3, dilation_rate=2), IMAGE),
    ("Conv2D", dict(filters=6, kernel_size=3, groups=3, padding="same", use_bias=False), IMAGE),
    ("Conv2D", dict(filters=4, kernel_size=2, strides=2, padding="same"), (7, 7, 3)),
    ("Conv2DTranspose", dict(filters=4, kernel_size=3, strides=2, padding="same"), IMAGE),
    ("Conv2DTranspose", dict(filters=4, kernel_size=3, strides=2), IMAGE),
    ("Conv2DTranspose", dict(filters=4, kernel_size=2, strides=3, padding="same"), IMAGE),
    ("DepthwiseConv2D", dict(kernel_size=3, depth_multiplier=2, padding="same"), IMAGE),
    ("SeparableConv2D", dict(filters=5, kernel_size=3, activation="relu"), IMAGE),
    ("MaxPooling2D", dict(pool_size=2), IMAGE),
    ("MaxPooling2D", dict(pool_size=3, strides=2, padding="same"), IMAGE),
    ("AveragePooling2D", dict(pool_size=3, strides=1, padding="same"), IMAGE),
    ("AveragePooling2D", dict(pool_size=2), (7, 7, 3)),
    ("GlobalAveragePooling2D", dict(), IMAGE),
    ("GlobalAveragePooling2D", dict(keepdims=True), IMAGE),
    ("GlobalMaxPooling2D", dict(), IMAGE),
    ("GlobalMaxPooling2D", dict(keepdims=True), IMAGE),
    ("BatchNormalization", dict(), IMAGE),
    ("BatchNormalization", dict(center=False, scale=False), (6,)),
    ("LayerNormalization", dict(epsilon=1e-5), IMAGE),
    ("LayerNormalization", dict(center=False), (6,)),
    ("ReLU", dict(max_value=0.6), IMAGE),
    ("ReLU", dict(negative_slope=0.1, threshold=0.2), IMAGE),
    ("LeakyReLU", dict(negative_slope=0.2), IMAGE),
    ("PReLU", dict(shared_axes=[1, 2]), IMAGE),
    ("PReLU", dict(), IMAGE),
    ("ELU", dict(alpha=0.5), IMAGE),
    ("Softmax", dict(), (6,)),
    ("Softmax", dict(), IMAGE),
    ("Flatten", dict(), IMAGE),
    ("Reshape", dict(target_shape=(16, 12)), IMAGE),
    ("Reshape", dict(target_shape=(-1, 3)), IMAGE),
    ("UpSampling2D", dict(size=2), IMAGE),
    ("UpSampling2D", dict(size=(2, 3), interpolation="bilinear"), IMAGE),
    ("ZeroPadding2D", dict(padding=((1, 2), (0, 1))), IMAGE),
    ("Cropping2D", dict(cropping=((1, 0), (2, 1))), IMAGE),
    ("Dropout", dict(rate=0.3), IMAGE),
    ("SpatialDropout2D", dict(rate=0.3), IMAGE),
    ("GaussianNoise", dict(stddev=0.3), IMAGE),
    ("Rescaling", dict(scale=1 / 255.0, offset=-0.5), IMAGE),
    ("Rescaling", dict(scale=[0.5, 1.0, 2.0]), IMAGE),
    ("Normalization", dict(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 3.0]), IMAGE),
    ("Normalization", dict(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 3.0], invert=True), IMAGE),
    ("RandomFlip", dict(), IMAGE),
    ("RandomTranslation", dict(height_factor=0.1, width_factor=0.1), IMAGE),
    ("RandomRotation", dict(factor=0.1), IMAGE),
    ("RandomZoom", dict(height_factor=0.1), IMAGE),
    ("RandomContrast", dict(factor=0.2), IMAGE),
    ("RandomCrop", dict(height=6, width=6), IMAGE),
    ("RandomCrop", dict(height=4, width=6), IMAGE),
] + [("Activation", dict(activation=a), IMAGE) for a in ACTIVATIONS]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(LAYERS)]


def _randomized(model):
    if model.weights:
        model.set_weights([RNG.uniform(0.5, 1.5, w.shape).astype(np.float32)
                           for w in model.get_weights()])
    return model


def _session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(session, *inputs):
    feed = {i.name: x for i, x in zip(session.get_inputs(), inputs)}
    return session.run(None, feed)


def assert_same(onnx_out, ours):
    """Max error at most 1e-5 of the output's largest magnitude."""
    ours = np.asarray(ours)
    scale = max(float(np.abs(ours).max()), 1e-6)
    assert onnx_out.shape == ours.shape
    assert float(np.abs(onnx_out - ours).max()) <= 1e-5 * scale


def _export_checked(model, tmp_path, name="m.onnx"):
    path = cnnkit_onnx.export(model, tmp_path / name)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    return proto


@pytest.mark.parametrize("name,args,shape", LAYERS, ids=IDS)
def test_each_layer_exports_and_runs_the_same(tmp_path, name, args, shape):
    model = _randomized(cnnkit.Sequential([cnnkit.Input(shape), getattr(L, name)(**args)]))
    session = _session(_export_checked(model, tmp_path))
    for batch in (1, 5):  # the batch axis is free
        x = RNG.standard_normal((batch,) + shape).astype(np.float32)
        (out,) = _run(session, x)
        assert_same(out, model.predict(x, verbose=0))


def _resnet_like():
    inputs = cnnkit.Input(IMAGE)
    x = L.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    y = L.Conv2D(8, 3, padding="same")(x)
    y = L.BatchNormalization()(y)
    x = L.ReLU()(L.Add()([x, y]))
    z = L.DepthwiseConv2D(3, padding="same")(x)
    z = L.BatchNormalization()(z)
    x = L.Concatenate()([x, z, L.Multiply()([x, z])])
    half = L.Rescaling(0.5)(x)
    x = L.Subtract()([L.Maximum()([x, half]), L.Minimum()([x, L.Rescaling(0.25)(x)])])
    x = L.Average()([x, x])
    x = L.MaxPooling2D()(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(6)(x)
    x = L.BatchNormalization()(x)
    outputs = L.Dense(3, activation="softmax")(x)
    return _randomized(cnnkit.Model(inputs, outputs))


def test_batch_normalization_folds_into_what_it_follows(tmp_path):
    model = _resnet_like()
    proto = _export_checked(model, tmp_path)
    ops = [n.op_type for n in proto.graph.node]
    assert "BatchNormalization" not in ops
    assert ops.count("Mul") == 3  # Multiply and the two Rescalings: no BatchNormalization's
    x = RNG.standard_normal((4,) + IMAGE).astype(np.float32)
    (out,) = _run(_session(proto), x)
    assert_same(out, model.predict(x, verbose=0))
    # only two transposes: into NCHW at the input, out of it at the global pooling
    assert ops.count("Transpose") == 1


def test_several_inputs_and_outputs_and_a_nested_model(tmp_path):
    block = cnnkit.Sequential([cnnkit.Input(IMAGE), L.Conv2D(4, 3, padding="same"),
                               L.BatchNormalization(), L.ReLU()], name="block")
    a, b = cnnkit.Input(IMAGE, name="a"), cnnkit.Input((5,), name="b")
    feature = block(a)
    image_out = L.Conv2D(2, 1)(feature)
    flat = L.Concatenate()([L.Flatten()(feature), L.Dense(3)(b)])
    model = _randomized(cnnkit.Model([a, b], [image_out, L.Dense(2)(flat)]))
    session = _session(_export_checked(model, tmp_path))
    assert [i.name for i in session.get_inputs()] == ["a", "b"]
    xa = RNG.standard_normal((3,) + IMAGE).astype(np.float32)
    xb = RNG.standard_normal((3, 5)).astype(np.float32)
    outs = _run(session, xa, xb)
    for out, ours in zip(outs, model.predict([xa, xb], verbose=0)):
        assert_same(out, ours)


def test_model_export_and_the_cli(tmp_path, capsys):
    model = _resnet_like()
    path = model.export(tmp_path / "m.onnx", format="onnx")
    x = RNG.standard_normal((2,) + IMAGE).astype(np.float32)
    (first,) = _run(_session(onnx.load(path)), x)
    model.save(tmp_path / "m.cnnkit")
    assert main(["export", str(tmp_path / "m.cnnkit"), str(tmp_path / "cli.onnx")]) == 0
    assert "cli.onnx" in capsys.readouterr().out
    (second,) = _run(_session(onnx.load(tmp_path / "cli.onnx")), x)
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="tf_saved_model"):
        model.export(tmp_path / "saved")


def test_cli_names_a_missing_model(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing.keras"), str(tmp_path / "o.onnx")]) == 1
    assert "nothing.keras" in capsys.readouterr().err
    assert not (tmp_path / "o.onnx").exists()


def test_what_export_refuses(tmp_path):
    unbuilt = cnnkit.Sequential([L.Dense(2)])
    with pytest.raises(ValueError, match="built"):
        cnnkit_onnx.export(unbuilt, tmp_path / "u.onnx")
    same_unknown = cnnkit.Sequential([cnnkit.Input((None, None, 3)), L.Conv2D(2, 3, padding="same")])
    with pytest.raises(ValueError, match=r"conv2d.*'same' padding with an unknown image size"):
        cnnkit_onnx.export(same_unknown, tmp_path / "s.onnx")
    bn_axis = cnnkit.Sequential([cnnkit.Input(IMAGE), L.BatchNormalization(axis=1)])
    with pytest.raises(ValueError, match=r"batch_normalization.*axis 1"):
        cnnkit_onnx.export(bn_axis, tmp_path / "b.onnx")
    with pytest.raises(ValueError, match="opset"):
        cnnkit_onnx.export(_resnet_like(), tmp_path / "o.onnx", opset=9)
    assert not any(p.suffix == ".onnx" for p in tmp_path.iterdir())


def test_valid_padding_with_unknown_size_keeps_sizes_free(tmp_path):
    model = _randomized(cnnkit.Sequential([cnnkit.Input((None, None, 3)), L.Conv2D(4, 3),
                                           L.MaxPooling2D(), L.GlobalMaxPooling2D()]))
    session = _session(_export_checked(model, tmp_path))
    for size in (9, 12):
        x = RNG.standard_normal((2, size, size + 1, 3)).astype(np.float32)
        (out,) = _run(session, x)
        assert_same(out, model.predict(x, verbose=0))
