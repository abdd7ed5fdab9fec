"""The decoders' image resize kernel (cpp/image_resize.cpp, _core.resize_bilinear_image): its
pixels against the NumPy reference (cnnkit.utils._resize, itself checked against
tf.image.resize in test_image_dataset.py) and its refusals. The sanitizer run includes this file.
No ISA dispatch: the kernel is plain C++ compiled for the build's target."""
import numpy as np
import pytest


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_resize_bilinear_kernel_equals_its_numpy_reference(dtype):
    """The decoders' C++ bilinear resize (what image_dataset_from_directory runs for the default
    interpolation) against _resize's NumPy version of TF's arithmetic: the same pixels, bit for
    bit, shrinking (a photo to a model's size), enlarging, one pixel, 1 to 5 channels."""
    from cnnkit import _core
    from cnnkit.utils import _resize
    rng = np.random.default_rng(5)
    for shape, size in [((180, 180, 3), (128, 128)), ((32, 32, 3), (64, 48)),
                        ((7, 13, 4), (3, 29)), ((300, 200, 2), (31, 17)), ((1, 1, 1), (5, 4)),
                        ((9, 5, 5), (9, 5)), ((2, 3, 3), (1, 1))]:
        image = (rng.random(shape) * 255).astype(dtype)
        fast = _core.resize_bilinear_image(image, *size)
        assert fast.dtype == np.float32 and fast.shape == size + shape[2:]
        np.testing.assert_array_equal(fast, _resize._resize_bilinear(image, *size),
                                      err_msg=f"{shape} -> {size}")
        out = np.empty_like(fast)
        assert _core.resize_bilinear_image(image, *size, out=out) is out
        np.testing.assert_array_equal(out, fast)
    # resize() takes the kernel for uint8/float32 (a view too) and NumPy for other dtypes
    view = (rng.random((20, 30, 3)) * 255).astype(dtype)[2:15, 3:29]
    np.testing.assert_array_equal(_resize.resize(view, (8, 9), "bilinear"),
                                  _resize._resize_bilinear(view, 8, 9))
    wide = view.astype(np.float64)
    np.testing.assert_allclose(_resize.resize(wide, (8, 9), "bilinear"),
                               _resize._resize_bilinear(view, 8, 9), atol=1e-3)


def test_resize_bilinear_kernel_refuses_what_it_cannot_read():
    from cnnkit import _core
    image = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(TypeError, match="uint8 or float32"):
        _core.resize_bilinear_image(image.astype(np.int16), 2, 2)
    with pytest.raises(ValueError, match="3-D"):
        _core.resize_bilinear_image(image[..., 0], 2, 2)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.resize_bilinear_image(image[:, ::2], 2, 2)
    with pytest.raises(ValueError, match="image height"):
        _core.resize_bilinear_image(image[:0], 2, 2)
    with pytest.raises(ValueError, match="height and width"):
        _core.resize_bilinear_image(image, 0, 2)
    with pytest.raises(ValueError, match="shape"):
        _core.resize_bilinear_image(image, 2, 2, out=np.empty((2, 3, 3), np.float32))
