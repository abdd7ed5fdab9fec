// bind_image.cpp: the Python binding of the decoders' image resize (cpp/image_resize.cpp).
#include "check.h"

namespace cnnkit_bind {
namespace {

template <class T>
void resize_typed(float* out, const py::array& image, int h, int w, int c, int oh, int ow) {
    const auto typed = py::reinterpret_borrow<py::array_t<T, py::array::c_style>>(image);
    const T* inp = aligned(typed, "image");
    without_gil([&] { cnnkit::resize_bilinear_image<T>(out, inp, h, w, c, oh, ow); });
}

// image: (H,W,C) uint8 (straight from the decoder) or float32, C-contiguous; taken as it is.
farray resize_bilinear_image(const py::array& image, int height, int width, const py::object& out_) {
    require_ndim(image, 3, "image");
    const bool is_uint8 = image.dtype().equal(py::dtype::of<uint8_t>());
    if (!is_uint8 && !image.dtype().equal(py::dtype::of<float>()))
        throw py::type_error("image must have dtype uint8 or float32, got " +
                             py::str(image.dtype()).cast<std::string>());
    require((image.flags() & py::array::c_style) != 0, "image must be C-contiguous");
    const int h = as_int(image.shape(0), "image height"), w = as_int(image.shape(1), "image width");
    const int c = as_int(image.shape(2), "image channels");
    require(height >= 1 && width >= 1, "height and width must be >= 1, got " +
                                           std::to_string(height) + "x" + std::to_string(width));
    farray y = output(out_, {height, width, c}, "out", {{"image", image}});
    float* out = y.mutable_data();
    if (is_uint8)
        resize_typed<uint8_t>(out, image, h, w, c, height, width);
    else
        resize_typed<float>(out, image, h, w, c, height, width);
    return y;
}

}  // namespace

void bind_image(py::module_& m) {
    m.def("resize_bilinear_image", &resize_bilinear_image, nc("image"), "height"_a, "width"_a,
          out("out"),
          "One (H,W,C) uint8 or float32 image resized to (height,width,C) float32 as "
          "tf.image.resize(method='bilinear') does.");
}

}  // namespace cnnkit_bind
