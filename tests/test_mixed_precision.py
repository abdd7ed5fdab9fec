"""keras.mixed_precision's surface in cnnkit: 'mixed_bfloat16' runs in float32 with one warning
(globally or per layer), 'float32' as always, every other policy a clear ValueError; names and
dtypes as Keras 3 reports them."""

import os
import warnings

import numpy as np
import pytest

import cnnkit
from cnnkit import mixed_precision as mp


@pytest.fixture(autouse=True)
def fresh_policy():
    mp._warned = False
    yield
    mp.set_global_policy("float32")
    mp._warned = False


def small_model(seed=0):
    cnnkit.utils.set_random_seed(seed)
    L = cnnkit.layers
    inputs = cnnkit.Input((8, 8, 3))
    x = L.Conv2D(4, 3, activation="relu")(inputs)
    x = L.BatchNormalization()(x)
    x = L.GlobalAveragePooling2D()(x)
    return cnnkit.Model(inputs, L.Dense(3, activation="softmax")(x))


def test_global_mixed_bfloat16_runs_in_float32_with_one_warning():
    x = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)
    want = small_model().predict(x, verbose=0)
    with pytest.warns(UserWarning, match="mixed_bfloat16.*float32") as record:
        cnnkit.mixed_precision.set_global_policy("mixed_bfloat16")
        model = small_model()
    assert len([w for w in record if "mixed_bfloat16" in str(w.message)]) == 1
    assert mp.global_policy().name == "mixed_bfloat16"
    layer = model.layers[1]
    assert layer.dtype_policy.name == "mixed_bfloat16"
    assert (layer.dtype, layer.variable_dtype, layer.compute_dtype) == ("float32", "float32",
                                                                        "float32")
    got = model.predict(x, verbose=0)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)  # the same float32 model, the same numbers
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # shown once only
        small_model()
    mp.set_global_policy(None)
    assert mp.global_policy().name == "float32"


def test_layer_dtype_argument():
    with pytest.warns(UserWarning, match="float32"):
        layer = cnnkit.layers.Dense(2, dtype="mixed_bfloat16")
    assert layer.dtype_policy == mp.DTypePolicy("mixed_bfloat16")
    assert cnnkit.layers.Dense(2, dtype=np.float32).dtype_policy.name == "float32"
    assert cnnkit.layers.Dense(2, dtype=mp.Policy("float32")).dtype == "float32"
    for bad in ("float16", "mixed_float16", "bfloat16", "float64"):
        with pytest.raises(ValueError, match=f"Dense.*float32.*{bad}"):
            cnnkit.layers.Dense(2, dtype=bad)
    with pytest.raises(ValueError, match="unknown policy 'int8'"):
        cnnkit.layers.Conv2D(2, 3, dtype="int8")
    with pytest.raises(ValueError, match="float16"):
        mp.set_global_policy("float16")
    assert mp.global_policy().name == "float32"  # a refused policy changes nothing


def test_policy_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    for name in ("float32", "mixed_bfloat16"):
        theirs = keras.DTypePolicy(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = mp.DTypePolicy(name)
        assert (ours.name, ours.compute_dtype, ours.variable_dtype) == (
            theirs.name, theirs.compute_dtype, theirs.variable_dtype)
    assert set(mp.__all__) >= {"Policy", "DTypePolicy", "set_global_policy", "global_policy"}
