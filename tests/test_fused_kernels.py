"""The fused and special-case kernel paths against cnnkit.reference and the naive C++ kernels:
ReLU fused into the conv/dense store (relu=True), and the few-output-channel convolution
(OC <= 4, read in place instead of a GEMM), on awkward shapes, 1 and 2 threads and every
micro-kernel instruction set this CPU runs."""

import numpy as np
import pytest

from cnnkit import _args, _core, reference


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(a, b, tol=1e-4):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# (N, H, W, C, KH, KW, OC, strides, padding): OC 1-4 take the few-channel path, 5 and 16 the GEMM;
# KW*C not a multiple of 8, fewer output columns than a pixel block, strides, even kernels.
CASES = [
    (1, 5, 5, 1, 3, 3, 1, (1, 1), "valid"),
    (2, 7, 6, 3, 3, 3, 2, (1, 1), "same"),
    (2, 9, 7, 5, 3, 2, 3, (2, 2), "same"),
    (3, 10, 11, 2, 3, 3, 4, (3, 3), "valid"),
    (2, 8, 8, 32, 3, 3, 3, (1, 1), "same"),
    (1, 3, 2, 7, 3, 3, 3, (1, 1), "same"),
    (2, 9, 7, 4, 4, 4, 3, (2, 1), "same"),
    (2, 6, 6, 3, 1, 1, 4, (1, 1), "valid"),
    (2, 8, 9, 6, 3, 3, 5, (1, 1), "same"),
    (2, 12, 12, 8, 3, 3, 16, (1, 1), "valid"),
]


def conv_args(x, k, strides, padding):
    g = _args.conv_geometry(x.shape, k.shape, strides, padding, "test")
    return g, (g.SH, g.SW, g.PT, g.PL)


@pytest.mark.parametrize("n,h,w,c,kh,kw,oc,strides,padding", CASES)
def test_conv2d_paths_match_reference(isa_threads, n, h, w, c, kh, kw, oc, strides, padding):
    rng = np.random.default_rng(n + h * 10 + c * 100 + oc * 1000)
    x, k, b = rand(rng, n, h, w, c), rand(rng, kh, kw, c, oc), rand(rng, oc)
    g, geo = conv_args(x, k, strides, padding)
    want = reference.conv2d_forward(x, k, b, strides=strides, padding=padding)
    y = _core.conv2d_forward(x, k, b, *geo, g.OH, g.OW)
    close(y, want)
    close(_core.conv2d_forward(x, k, None, *geo, g.OH, g.OW),
          reference.conv2d_forward(x, k, None, strides=strides, padding=padding))
    # Fused ReLU equals ReLU after the unfused kernel, and the naive kernel's own relu.
    yr = _core.conv2d_forward(x, k, b, *geo, g.OH, g.OW, relu=True)
    np.testing.assert_array_equal(yr, _core.relu_forward(y))
    close(yr, _core.conv2d_forward(x, k, b, *geo, g.OH, g.OW, naive=True, relu=True))
    dy = rand(rng, *y.shape)
    want_grads = reference.conv2d_backward(dy, x, k, strides=strides, padding=padding)
    dx, dw, db = _core.conv2d_backward(dy, x, k, *geo)
    for got, ref in zip((dx, dw, db), want_grads):
        assert got.shape == ref.shape
        close(got, ref, 1e-3)
    dx2, dw2, db2 = _core.conv2d_backward(dy, x, k, *geo, need_dx=False)
    assert dx2 is None
    close(dw2, dw, 1e-5)
    close(db2, db, 1e-5)


def test_fused_relu_keeps_nan_and_zeroes_negatives(isa_threads):
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[0, 1, 1, 0] = np.nan
    k = np.ones((1, 1, 2, 3), np.float32)
    b = np.array([-1.0, 0.0, 2.0], np.float32)
    y = _core.conv2d_forward(x, k, b, 1, 1, 0, 0, 4, 4, relu=True)
    assert np.isnan(y[0, 1, 1]).all()
    assert (y[0, 0, 0] == [0.0, 0.0, 2.0]).all()
    for oc in (3, 20):  # the few-channel path and the GEMM
        k = np.ones((1, 1, 2, oc), np.float32)
        y = _core.conv2d_forward(x - 1, k, None, 1, 1, 0, 0, 4, 4, relu=True)
        assert np.isnan(y[0, 1, 1]).all() and (np.nan_to_num(y) == 0).all()


@pytest.mark.parametrize("batch,n_in,n_out", [(1, 1, 1), (3, 7, 5), (64, 2304, 128), (64, 128, 10),
                                              (5, 33, 17), (200, 16, 300)])
def test_dense_fused_relu(isa_threads, batch, n_in, n_out):
    rng = np.random.default_rng(batch * n_in + n_out)
    x, w, b = rand(rng, batch, n_in), rand(rng, n_in, n_out), rand(rng, n_out)
    y = _core.dense_forward(x, w, b)
    close(y, reference.dense_forward(x, w, b), 1e-3)
    yr = _core.dense_forward(x, w, b, relu=True)
    np.testing.assert_array_equal(yr, _core.relu_forward(y))
    close(yr, _core.dense_forward(x, w, b, naive=True, relu=True), 1e-3)


def test_layers_fuse_relu_and_train_as_before():
    """Conv2D/Dense with activation='relu' produce relu(kernel output) and the same gradients."""
    from cnnkit.layers import Conv2D, Dense
    rng = np.random.default_rng(0)
    x = rand(rng, 2, 6, 6, 3)
    for layer, inp in ((Conv2D(4, 3, padding="same", activation="relu"), x),
                       (Conv2D(8, 3, activation="relu"), x),
                       (Dense(7, activation="relu"), x.reshape(2, -1))):
        y = layer(inp, training=True)
        call = layer.new_state()  # what backward needs lives on the call's state
        assert np.array_equal(layer.forward(call, inp, training=True), y)
        if isinstance(layer, Dense):
            z = reference.dense_forward(inp, layer.kernel, layer.bias)
        else:
            z = reference.conv2d_forward(inp, layer.kernel, layer.bias, padding=layer.padding)
        close(y, np.maximum(z, 0))
        dy = rand(rng, *y.shape)
        dx = layer.backward(call, dy)
        dz = dy * (z > 0)
        if isinstance(layer, Dense):
            want = reference.dense_backward(dz, inp, layer.kernel)
        else:
            want = reference.conv2d_backward(dz, inp, layer.kernel, padding=layer.padding)
        close(dx, want[0], 1e-3)
        close(call.grads[0], want[1], 1e-3)
