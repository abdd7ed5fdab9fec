"""Clear errors from the model-graph engine (issue 11): a model that cannot be what the user
wrote is refused where it is written, with a message that names what is wrong (the layers,
inputs, shapes or keys involved), instead of training something else."""
import re

import numpy as np
import pytest

import cnnkit
from cnnkit.layers import Add, Concatenate, Conv2D, Dense, Flatten, Input, Multiply, Subtract
from cnnkit.models import Sequential


def two_input_model():
    a, b = Input((3,), name="in_a"), Input((3,), name="in_b")
    out = Add(name="s")([Dense(2, name="da")(a), Dense(2, name="db")(b)])
    model = cnnkit.Model([a, b], out)
    model.compile(optimizer="sgd", loss="mse")
    return model


def two_output_model():
    a = Input((3,), name="in_a")
    model = cnnkit.Model(a, [Dense(2, name="o1")(a), Dense(1, name="o2")(a)])
    model.compile(optimizer="sgd", loss="mse")
    return model


X = np.ones((4, 3), np.float32)
Y2 = np.zeros((4, 2), np.float32)
Y1 = np.zeros((4, 1), np.float32)


# ---------------------------------------------------------------- the graph

def test_output_not_reachable_from_the_inputs_names_the_missing_input():
    a, b = Input((3,), name="in_a"), Input((5,), name="in_b")
    out = Add(name="s")([Dense(2, name="da")(a), Dense(2, name="db")(b)])
    with pytest.raises(ValueError, match="in_b"):
        cnnkit.Model(a, out)
    with pytest.raises(ValueError, match="in_a"):
        cnnkit.Model(b, out)
    # The message names the input that is missing, not only the output.
    with pytest.raises(ValueError) as error:
        cnnkit.Model([a], [Dense(1, name="from_b")(b)])
    assert "in_b" in str(error.value) and "from_b" in str(error.value)
    # With both inputs the same graph is a model.
    assert cnnkit.Model([a, b], out).input_names == ["in_a", "in_b"]


def test_an_input_given_twice():
    a, b = Input((3,), name="in_a"), Input((3,), name="in_b")
    out = Add()([Dense(2)(a), Dense(2)(b)])
    with pytest.raises(ValueError, match=r'"in_a".*twice|twice.*"in_a"'):
        cnnkit.Model([a, a], out)
    with pytest.raises(ValueError, match="twice"):
        cnnkit.Model([a, b, a], out)


def test_inputs_must_come_from_input():
    a = Input((3,), name="in_a")
    h = Dense(2, name="hidden")(a)
    with pytest.raises(ValueError, match="hidden"):
        cnnkit.Model(h, Dense(1)(h))


@pytest.mark.parametrize("merge", [Add, Subtract, Multiply])
def test_shape_mismatch_at_an_elementwise_merge_names_both_sources(merge):
    x = Input((3,), name="x")
    left, right = Dense(3, name="left3")(x), Dense(4, name="right4")(x)
    with pytest.raises(ValueError) as error:
        merge(name="bad_merge")([left, right])
    message = str(error.value)
    for part in ("bad_merge", "left3", "right4", "(None, 3)", "(None, 4)"):
        assert part in message, (part, message)
    with pytest.raises(ValueError, match="left3"):
        left + right


def test_shape_mismatch_at_concatenate_names_both_sources_and_shapes():
    img = Input((8, 8, 2), name="img")
    valid = Conv2D(2, 3, name="conv_valid")(img)
    same = Conv2D(2, 3, padding="same", name="conv_same")(img)
    with pytest.raises(ValueError) as error:
        Concatenate(name="cat")([valid, same])
    message = str(error.value)
    for part in ("cat", "conv_valid", "conv_same", "(None, 6, 6, 2)", "(None, 8, 8, 2)"):
        assert part in message, (part, message)
    # Different ranks.
    with pytest.raises(ValueError, match=r"(?s)conv_valid.*flat|flat.*conv_valid"):
        Concatenate()([valid, Flatten(name="flat")(same)])


def test_layer_called_on_an_array_inside_a_definition_then_given_to_model():
    x = Input((3,), name="x")
    data = np.ones((2, 3), np.float32)
    computed = Dense(2)(data)  # a layer on data runs at once: an array, not a tensor
    assert isinstance(computed, np.ndarray)
    with pytest.raises(TypeError, match=r"(?i)numpy array|ndarray"):
        cnnkit.Model(x, computed)
    with pytest.raises(TypeError, match=r"(?i)numpy array|ndarray"):
        cnnkit.Model(data, Dense(2)(x))
    with pytest.raises(TypeError):
        cnnkit.Model(x, [Dense(2)(x), computed])


def test_layer_called_on_a_mix_of_tensors_and_arrays():
    x = Input((3,), name="x")
    h = Dense(3, name="h")(x)
    for layer in (Add(name="mixed_add"), Concatenate(name="mixed_cat")):
        with pytest.raises(TypeError, match=f'(?s){layer.name}.*ndarray'):
            layer([h, np.ones((1, 3), np.float32)])
        with pytest.raises(TypeError, match=layer.name):
            layer([np.ones((1, 3), np.float32), h])


def test_a_list_to_a_one_input_layer_and_a_tensor_to_a_merge_layer():
    x = Input((3,), name="x")
    h1, h2 = Dense(2)(x), Dense(2)(x)
    with pytest.raises(ValueError, match=r"(?s)one_in.*merge layer"):
        Dense(2, name="one_in")([h1, h2])
    with pytest.raises(TypeError, match="lonely"):
        Add(name="lonely")(h1)


def test_shared_layer_called_on_an_incompatible_shape():
    a, b = Input((3,), name="a"), Input((4,), name="b")
    shared = Dense(2, name="shared")
    shared(a)
    with pytest.raises(ValueError, match=r"(?s)shared.*\(None, 4\)"):
        shared(b)


def test_sequential_add_of_a_layer_output():
    x = Input((3,))
    h = Dense(2, name="not_an_input")(x)
    with pytest.raises(TypeError, match="not_an_input"):
        Sequential([h, Dense(1)])


def test_subclassed_call_returning_an_array():
    class ReturnsData(cnnkit.Model):
        def __init__(self):
            super().__init__()
            self.dense = Dense(2)

        def call(self, inputs):
            self.dense(inputs)
            return np.zeros((1, 2), np.float32)

    with pytest.raises(TypeError, match=r"(?s)ndarray.*layers"):
        ReturnsData().build((None, 3))


# ---------------------------------------------------------------- data

def test_wrong_number_of_inputs_to_fit_and_predict():
    model = two_input_model()
    for x in ([X], [X, X, X]):
        with pytest.raises(ValueError, match=r"expects 2 input"):
            model.predict(x, verbose=0)
        with pytest.raises(ValueError, match=r"expects 2 input"):
            model.fit(x, Y2, verbose=0)
        with pytest.raises(ValueError, match=r"expects 2 input"):
            model.evaluate(x, Y2, verbose=0)
    with pytest.raises(ValueError, match=r"expects 2 input"):
        model.predict(X, verbose=0)
    with pytest.raises(ValueError, match=r"expects 2 input"):
        model.train_on_batch(X, Y2)
    # One-input model given two arrays.
    single = Sequential([Input((3,)), Dense(2)])
    with pytest.raises(ValueError):
        single.predict([X, X], verbose=0)
    # And the right number works.
    assert model.predict([X, X], verbose=0).shape == (4, 2)


def test_x_dict_with_wrong_keys():
    model = two_input_model()
    with pytest.raises(ValueError, match=r"(?s)zzz.*in_b|in_b.*zzz"):
        model.predict({"in_a": X, "zzz": X}, verbose=0)
    with pytest.raises(ValueError, match="in_b"):
        model.predict({"in_a": X}, verbose=0)


def test_y_dict_with_unknown_or_missing_keys():
    model = two_output_model()
    with pytest.raises(ValueError, match=r"(?s)oops.*o2"):
        model.fit(X, {"o1": Y2, "oops": Y1}, verbose=0)
    with pytest.raises(ValueError, match="oops"):
        model.evaluate(X, {"o1": Y2, "oops": Y1}, verbose=0)
    with pytest.raises(ValueError, match="o3"):
        model.fit(X, {"o1": Y2, "o2": Y1, "o3": Y1}, verbose=0)
    with pytest.raises(ValueError, match="o2"):
        model.fit(X, {"o1": Y2}, verbose=0)
    with pytest.raises(ValueError, match=r"2 outputs"):
        model.fit(X, Y2, verbose=0)
    model.fit(X, {"o2": Y1, "o1": Y2}, verbose=0)  # keys in any order


def test_compile_structures_that_do_not_match_the_outputs():
    model = two_output_model()
    model.compile(optimizer="sgd", loss={"o1": "mse", "oops": "mse"})
    with pytest.raises(ValueError, match=r"(?s)oops.*o1"):
        model.fit(X, [Y2, Y1], verbose=0)
    model.compile(optimizer="sgd", loss=["mse", "mse", "mse"])
    with pytest.raises(ValueError, match="3"):
        model.fit(X, [Y2, Y1], verbose=0)
    model.compile(optimizer="sgd", loss="mse", metrics=["mse"])
    with pytest.raises(ValueError, match=re.escape("metrics")):
        model.fit(X, [Y2, Y1], verbose=0)
    model.compile(optimizer="sgd", loss="mse", metrics={"o9": ["mse"]})
    with pytest.raises(ValueError, match="o9"):
        model.fit(X, [Y2, Y1], verbose=0)
