"""Property-based fuzzing of cnnkit against its plain-NumPy mirror, cnnkit.reference.

The hand-picked cases of test_ops_match_reference.py cover the shapes someone thought of; this
file lets hypothesis draw the ones nobody did: tiny images, windows larger than the image,
strides larger than the window, odd 'same' paddings, and inputs in every dtype and memory
layout a user can hand over (Fortran order, sliced, negatively strided, transposed, broadcast,
unaligned, byte-swapped). The contract checked for every call: cnnkit.ops either raises one of
the documented exceptions (ValueError or TypeError) exactly when the reference does, or returns
what the reference computes in float64, within a float32 tolerance scaled by the length of the
sum behind each output. The same holds one level up, for small random Sequential models:
predict() against a forward pass composed from cnnkit.reference, and one SGD step against a
backward pass composed the same way.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkit import layers, models, ops, optimizers, reference

FLOATS = [np.float32, np.float64, np.float16, np.dtype(">f4"), np.longdouble]
NOT_FLOATS = [np.int32, np.uint8, np.bool_, np.complex64, object]  # ops: TypeError
LAYOUTS = ["C", "F", "strided", "reversed", "transposed", "broadcast", "unaligned"]
# Deterministic in CI; the reference is plain NumPy, so no per-example deadline.
FUZZ = dict(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The kernels have one code path per instruction set and thread count: the ops-level tests run
# once under each (conftest's isa_threads), which stays fixed for all of a run's examples.
PER_KERNEL = dict(FUZZ, suppress_health_check=[HealthCheck.too_slow,
                                               HealthCheck.function_scoped_fixture])


def mostly(good, bad, one_in=8):
    """`good`, but one draw in `one_in` is one of the `bad` values instead."""
    return st.integers(0, one_in - 1).flatmap(lambda i: st.sampled_from(bad) if i == 0 else good)


sizes = st.integers(1, 9)
channels = mostly(st.integers(1, 9), [16, 17, 33], one_in=6)  # past a SIMD width, with a tail
windows = st.integers(1, 5) | st.tuples(st.integers(1, 5), st.integers(1, 5))
steps = mostly(st.integers(1, 4) | st.tuples(st.integers(1, 4), st.integers(1, 4)),
               [0, -1, (1, 0), (2,), (1, 2, 3), 1.5, True, "2"])
paddings = mostly(st.sampled_from(["valid", "same", "SAME", "Valid"]), ["full", "", None, 1])
mistakes = st.sampled_from([None] * 6 + ["dtype", "shape"])  # one deliberate error, sometimes


def in_layout(values, layout, axis):
    """`values` (same shape and dtype) laid out in memory as `layout`; "broadcast" repeats the
    first entry along `axis` with a zero stride (a read-only view), so its values differ."""
    index = lambda step: (slice(None),) * axis + (slice(None, None, step),)
    if values.ndim == 0:
        return values
    if layout == "C":
        return np.ascontiguousarray(values)
    if layout == "F":
        return np.asfortranarray(values)
    if layout == "strided":  # every other element of an axis twice as long
        return np.repeat(values, 2, axis=axis)[index(2)]
    if layout == "reversed":  # a negatively strided view
        return values[index(-1)].copy()[index(-1)]
    if layout == "transposed":  # the axes reversed in memory
        return values.T.copy().T
    if layout == "broadcast":
        return np.broadcast_to(values.take([0], axis=axis), values.shape)
    if values.dtype.hasobject:  # "unaligned": no byte view of Python objects
        return values
    raw = np.zeros(values.nbytes + 1, np.uint8)[1:]  # data starting one byte off
    out = raw.view(values.dtype).reshape(values.shape)
    out[...] = values
    return out


@st.composite
def arrays(draw, shape, bad=False, dtypes=FLOATS):
    """A random array of `shape`: a float dtype (or, if `bad`, a non-float one) in a random
    layout. One draw in two holds small integers, so that maxima tie and sums are exact."""
    dtype = draw(st.sampled_from(NOT_FLOATS if bad else dtypes))
    layout, axis = draw(st.sampled_from(LAYOUTS)), draw(st.integers(0, max(len(shape) - 1, 0)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = np.asarray(rng.standard_normal(shape))
    if draw(st.booleans()):
        values = np.round(2 * values)
    return in_layout(np.asarray(values).astype(dtype), layout, axis)


def as_float64(arg):
    """What ops computes on (float32) in float64, so the reference is free of rounding; other
    arguments go to the reference unchanged, so that it raises where ops must."""
    if isinstance(arg, np.ndarray) and arg.dtype.kind == "f":
        return arg.astype(np.float32).astype(np.float64)
    return arg


def check(name, args, kwargs=None, sums=(1,), must_raise=False):
    """ops.<name>(*args) against reference.<name>: both raise the same ValueError or TypeError,
    or the results agree, output i within a tolerance for sums of sums[i] products. Any other
    exception propagates and fails the test. must_raise: the caller put in a documented error
    (a non-float array, a wrong shape). Returns the ops result, or None if it raised."""
    kwargs = kwargs or {}
    try:
        want, ref_error = getattr(reference, name)(*map(as_float64, args), **kwargs), None
    except (ValueError, TypeError) as error:
        want, ref_error = None, error
    assert ref_error is not None or not must_raise, f"reference.{name} accepted a mistake"
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    try:
        got = getattr(ops, name)(*args, **kwargs)
    except (ValueError, TypeError) as error:
        assert ref_error is not None, f"ops.{name} raised {error!r}; reference returned a result"
        assert type(error) is type(ref_error), f"ops.{name}: {error!r}, reference: {ref_error!r}"
        return None
    assert ref_error is None, f"ops.{name} returned a result; reference raised {ref_error!r}"
    for arg, old in zip(args, before):  # inputs are read, never written
        np.testing.assert_array_equal(arg, old, err_msg=f"ops.{name} changed its input")
    got_all, want_all = (got, want) if isinstance(got, tuple) else ((got,), (want,))
    for i, (g, w, k) in enumerate(zip(got_all, want_all, sums)):
        if isinstance(w, float):  # a loss
            assert isinstance(g, float) and g == pytest.approx(w, rel=1e-5, abs=1e-6)
            continue
        assert g.dtype == np.float32 and g.shape == w.shape, f"ops.{name} output {i}"
        # float32 rounding grows at most with the length of the sum (observed: ~5e-8 per term)
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-6 * k * max(1.0, np.abs(w).max()),
                                   err_msg=f"ops.{name} output {i}")
    return got


def wrong(shape, mistake):
    """`shape` made wrong along its last axis when the drawn mistake is 'shape'."""
    return shape[:-1] + (shape[-1] + 1,) if mistake == "shape" and shape else shape


def draw_mistake(draw, names):
    """(mistake, bad): mostly no mistake; 'dtype' gives one of `names` a non-float dtype (bad(name)
    says which), 'shape' makes the arguments' shapes disagree."""
    mistake, victim = draw(mistakes), draw(st.sampled_from(names))
    return mistake, lambda name: mistake == "dtype" and victim == name


@settings(max_examples=250, **PER_KERNEL)
@given(data=st.data())
def test_conv2d_fuzz(isa_threads, data):
    draw = data.draw
    n, h, w, c, oc = draw(sizes), draw(sizes), draw(sizes), draw(channels), draw(channels)
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    mistake, bad = draw_mistake(draw, ["x", "w", "b", "dy"])
    geometry = dict(strides=draw(steps), padding=draw(paddings))
    x = draw(arrays((n, h, w, c), bad("x")))
    k = draw(arrays((kh, kw, c + (mistake == "shape"), oc), bad("w")))  # channels disagree
    b = draw(st.none() | arrays((oc,), bad("b")))
    y = check("conv2d_forward", (x, k, b), geometry, sums=(kh * kw * c,),
              must_raise=mistake == "shape" or bad("x") or bad("w") or bad("b") and b is not None)
    dy = draw(arrays(y.shape if y is not None else (n, 1, 1, oc), bad("dy")))
    check("conv2d_backward", (dy, x, k), geometry, sums=(kh * kw * oc, n * h * w, n * h * w),
          must_raise=mistake == "shape" or bad("x") or bad("w") or bad("dy"))


@settings(max_examples=250, **PER_KERNEL)
@given(data=st.data())
def test_maxpool2d_fuzz(isa_threads, data):
    draw = data.draw
    n, h, w, c = draw(sizes), draw(sizes), draw(sizes), draw(channels)
    mistake, bad = draw_mistake(draw, ["x", "dy"])
    geometry = dict(pool_size=draw(mostly(windows, [0, (2, 0), (1, 2, 3), 2.0])),
                    strides=draw(st.none() | steps), padding=draw(paddings))
    x = draw(arrays((n, h, w, c), bad("x")))
    y = check("maxpool2d_forward", (x,), geometry, sums=(0,), must_raise=bad("x"))  # exact
    dy = draw(arrays(wrong(y.shape if y is not None else (n, 1, 1, c), mistake), bad("dy")))
    check("maxpool2d_backward", (dy, x), geometry, sums=(25,),  # overlapping windows add up
          must_raise=mistake is not None)


@settings(max_examples=250, **PER_KERNEL)
@given(data=st.data())
def test_dense_fuzz(isa_threads, data):
    draw = data.draw
    n, fin, units = draw(sizes), draw(channels), draw(channels)
    mistake, bad = draw_mistake(draw, ["x", "w", "b", "dy"])
    x = draw(arrays((n, fin), bad("x")))
    k = draw(arrays((fin + (mistake == "shape"), units), bad("w")))  # features disagree
    b = draw(st.none() | arrays((units,), bad("b")))
    check("dense_forward", (x, k, b), sums=(fin,),
          must_raise=mistake == "shape" or bad("x") or bad("w") or bad("b") and b is not None)
    dy = draw(arrays((n, units), bad("dy")))
    check("dense_backward", (dy, x, k), sums=(units, n, n),
          must_raise=mistake == "shape" or bad("x") or bad("w") or bad("dy"))


@settings(max_examples=300, **FUZZ)
@given(st.data())
def test_activations_and_loss_fuzz(data):
    draw = data.draw
    shape = tuple(draw(st.lists(sizes, max_size=3)))  # () included: a 0-d array
    mistake, bad = draw_mistake(draw, ["x", "dy"])
    x = draw(arrays(shape, bad("x")))
    for name in ("relu", "softmax"):
        # Elementwise and last-axis functions keep the shape; a scalar has no axis to softmax.
        scalar = name == "softmax" and not shape
        y = check(f"{name}_forward", (x,), must_raise=bad("x") or scalar)
        assert y is None or y.shape == shape, f"{name}_forward: shape {shape} -> {y.shape}"
        dy = draw(arrays(wrong(shape, mistake), bad("dy")))  # backward takes any y
        dx = check(f"{name}_backward", (dy, draw(arrays(shape))), sums=(shape[-1:] or (1,)),
                   must_raise=bad("dy") or wrong(shape, mistake) != shape or scalar)
        assert dx is None or dx.shape == shape, f"{name}_backward: shape {shape} -> {dx.shape}"
    n, k = draw(sizes), draw(channels)
    labels = draw(st.sampled_from(["onehot", "indices", "column"]))
    if labels == "onehot":
        dtype = draw(st.sampled_from(FLOATS + [np.bool_, np.complex64, object]))
        y_true = np.eye(k)[np.arange(n) % k].astype(dtype)
        must_raise = np.dtype(dtype).kind != "f"
    else:  # integer classes, out of range when that is the mistake (-1 wraps around in uint8)
        classes = draw(st.lists(st.integers(-1 if mistake else 0, k if mistake else k - 1),
                                min_size=n, max_size=n))
        y_true = np.array(classes).astype(draw(st.sampled_from([np.int32, np.int64, np.uint8])))
        y_true = y_true.reshape(-1, 1) if labels == "column" else y_true
    y_true = in_layout(y_true, draw(st.sampled_from(LAYOUTS)), 0)
    if labels != "onehot":  # after the layout, which may have repeated the first label
        must_raise = y_true.min() < 0 or y_true.max() >= k
    check("softmax_cross_entropy", (y_true, draw(arrays((n, k)))), sums=(k,), must_raise=must_raise)


# ---------------------------------------------------------------- whole models

@st.composite
def model_specs(draw, small=st.integers(1, 4)):
    """A small Sequential as plain data: Input, 1-2 Conv2D, an optional MaxPooling2D, Flatten
    and a Dense head; the sizes are free, so a window may not fit the image."""
    convs = [dict(filters=draw(st.integers(1, 6)), kernel_size=draw(st.tuples(small, small)),
                  strides=draw(st.integers(1, 3) | st.tuples(*[st.integers(1, 3)] * 2)),
                  padding=draw(mostly(st.sampled_from(["valid", "same"]), ["full"], one_in=20)),
                  activation=draw(st.sampled_from([None, "relu", "sigmoid"])))
             for _ in range(draw(st.integers(1, 2)))]
    pool = draw(st.none() | st.fixed_dictionaries(dict(
        pool_size=st.integers(1, 3) | st.tuples(*[st.integers(1, 3)] * 2),
        strides=st.none() | st.integers(1, 3), padding=st.sampled_from(["valid", "same"]))))
    side = st.integers(1, 12)  # larger than `sizes`, so that two windows in a row often fit
    return dict(image=(draw(side), draw(side), draw(st.integers(1, 4))), convs=convs, pool=pool,
                units=draw(st.integers(1, 5)), head=draw(st.sampled_from(["softmax", "linear"])))


def build(spec):
    return models.Sequential(
        [layers.Input(spec["image"])] + [layers.Conv2D(**conv) for conv in spec["convs"]]
        + ([layers.MaxPooling2D(**spec["pool"])] if spec["pool"] else [])
        + [layers.Flatten(), layers.Dense(spec["units"], activation=spec["head"])])


def activate(name, z):
    return {"relu": reference.relu_forward, "sigmoid": reference.sigmoid_forward,
            "softmax": reference.softmax_forward}.get(name, lambda z: z)(z)


def reference_forward(spec, x, weights=None):
    """The model's output from cnnkit.reference in float64 (zero weights when None), and the
    (kind, settings, input, weights, pre-activation z, output) of each layer for backward."""
    given = iter(weights or [])
    take = lambda shape: next(given).astype(np.float64) if weights else np.zeros(shape)
    trace = []
    for conv in spec["convs"]:
        k = take(conv["kernel_size"] + (x.shape[3], conv["filters"]))
        z = reference.conv2d_forward(x, k, take(conv["filters"]), conv["strides"], conv["padding"])
        trace.append(("conv", conv, x, k, z, activate(conv["activation"], z)))
        x = trace[-1][-1]
    if spec["pool"]:
        y = reference.maxpool2d_forward(x, **spec["pool"])
        trace.append(("pool", spec["pool"], x, None, None, y))
        x = y
    flat = x.reshape(len(x), -1)
    k = take((flat.shape[1], spec["units"]))
    z = reference.dense_forward(flat, k, take(spec["units"]))
    trace.append(("dense", dict(activation=spec["head"]), flat, k, z, activate(spec["head"], z)))
    return trace[-1][-1], trace


def reference_gradients(trace, dz):
    """The weight gradients (in model.weights order) given dz, the gradient of the last
    layer's pre-activation, through the layers in `trace`."""
    grads = []
    for i, (kind, cfg, x, k, z, y) in enumerate(reversed(trace)):
        if i > 0 and cfg.get("activation") in ("relu", "sigmoid"):
            dz = getattr(reference, cfg["activation"] + "_backward")(dz, y)
        if kind == "pool":
            dz = reference.maxpool2d_backward(dz, x, **cfg)
        elif kind == "dense":
            dx, dk, db = reference.dense_backward(dz, x, k)
            dz, grads = dx.reshape(trace[-2][-1].shape), [dk, db]  # undoes Flatten
        else:
            dz, dk, db = reference.conv2d_backward(dz, x, k, cfg["strides"], cfg["padding"])
            grads = [dk, db] + grads
    return grads


@settings(max_examples=600, **FUZZ)
@given(model_specs(), st.data())
def test_model_fuzz(spec, data):
    draw = data.draw
    try:  # the oracle for building: does the reference pass run through these sizes at all?
        reference_forward(spec, np.zeros((1,) + spec["image"]))
        fits = True
    except ValueError:
        fits = False
    try:
        model = build(spec)
    except (ValueError, TypeError) as error:
        assert not fits, f"building raised {error!r}, but the reference runs this model"
        return
    assert fits, "the model built, but its windows do not fit (the reference raised)"
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    model.set_weights([rng.standard_normal(w.shape) * 0.5 for w in model.get_weights()])
    weights = model.get_weights()
    n = draw(sizes)
    # Models take any numeric input (an integer image is fine); complex and object are not.
    x = draw(arrays((n,) + spec["image"], dtypes=FLOATS + [np.int32, np.uint8, np.bool_],
                    bad=draw(st.integers(0, 15)) == 0))
    if x.dtype.kind not in "fiub":
        with pytest.raises(TypeError):
            model.predict(x)
        return
    x64 = x.astype(np.float32).astype(np.float64)
    want, trace = reference_forward(spec, x64, weights)
    got = model.predict(x, batch_size=draw(st.integers(1, n)))
    # Rounding grows with the largest value on the way (a uint8 image of 255s, then cancelling)
    scale = max(1.0, *(np.abs(a).max() for _, _, inp, _, z, _ in trace for a in (inp, z)
                       if a is not None))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)

    # One SGD step with learning rate 1: the weights move by exactly minus the gradient.
    softmax = spec["head"] == "softmax"
    y = (np.eye(spec["units"])[rng.integers(0, spec["units"], n)] if softmax
         else rng.standard_normal((n, spec["units"])))
    y = in_layout(y.astype(draw(st.sampled_from(FLOATS))), draw(st.sampled_from(LAYOUTS)), 0)
    if softmax:  # fused with cross-entropy: dz is the gradient of the logits
        loss, dz = reference.softmax_cross_entropy(as_float64(y), trace[-1][4])  # the logits
    else:
        loss, dz = reference.mean_squared_error(as_float64(y), want)
    model.compile(optimizer=optimizers.SGD(learning_rate=1.0),
                  loss="categorical_crossentropy" if softmax else "mse")
    got_loss = model.train_on_batch(x, y)
    assert isinstance(got_loss, float) and np.isfinite(got_loss)
    assert got_loss == pytest.approx(loss, rel=1e-4, abs=1e-5)
    for i, (old, new, grad) in enumerate(zip(weights, model.get_weights(),
                                             reference_gradients(trace, dz))):
        np.testing.assert_allclose(old - new, grad, rtol=0, err_msg=f"weight {i}",
                                   atol=2e-5 * max(scale, np.abs(grad).max()))
