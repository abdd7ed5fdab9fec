// bind_plan.cpp: cnnkit._core.InferencePlan, a model's inference pass as one call
// (inference_plan.h; engine/inference_plan.py builds it from a model's graph).
#include <memory>

#include "../inference_plan.h"
#include "check.h"

namespace cnnkit_bind {
namespace {

using cnnkit::plan::Kind;
using cnnkit::plan::Op;
using cnnkit::plan::Plan;

Kind kind_of(const std::string& name) {
    if (name == "conv") return Kind::Conv;
    if (name == "depthwise") return Kind::Depthwise;
    if (name == "add") return Kind::Add;
    if (name == "relu") return Kind::Relu;
    if (name == "max_pool") return Kind::MaxPool;
    if (name == "global_avg_pool") return Kind::GlobalAvgPool;
    if (name == "dense") return Kind::Dense;
    if (name == "softmax") return Kind::Softmax;
    throw py::value_error("inference plan: unknown op kind '" + name + "'");
}

// (kind, in, in2, out, window or None, oc, features, relu); window: (H, W, C, KH, KW, SH, SW,
// PT, PL, OH, OW, DH, DW) of one image.
Op op_of(const py::tuple& t) {
    require(t.size() == 8, "inference plan: an op is (kind, in, in2, out, window, oc, features, relu)");
    Op op;
    op.kind = kind_of(t[0].cast<std::string>());
    op.in = t[1].cast<int>();
    op.in2 = t[2].cast<int>();
    op.out = t[3].cast<int>();
    if (!t[4].is_none()) {
        const auto w = t[4].cast<std::vector<int>>();
        require(w.size() == 13, "inference plan: a window is 13 integers");
        cnnkit::Window2d& g = op.g;
        g.N = 1, g.H = w[0], g.W = w[1], g.C = w[2], g.KH = w[3], g.KW = w[4], g.SH = w[5];
        g.SW = w[6], g.PT = w[7], g.PL = w[8], g.OH = w[9], g.OW = w[10], g.DH = w[11], g.DW = w[12];
    } else {
        require(op.kind != Kind::Conv && op.kind != Kind::Depthwise && op.kind != Kind::MaxPool,
                "inference plan: a convolution or pooling op needs its window");
    }
    op.oc = t[5].cast<int>();
    op.features = t[6].cast<int>();
    op.relu = t[7].cast<bool>();
    return op;
}

std::unique_ptr<Plan> make_plan(const std::vector<int64_t>& floats, int input, int output,
                                const std::vector<py::tuple>& ops, int whole_from) {
    std::vector<Op> parsed;
    parsed.reserve(ops.size());
    for (const auto& t : ops) parsed.push_back(op_of(t));
    try {
        return std::make_unique<Plan>(floats, input, output, std::move(parsed), whole_from);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
}

// Floats per image of an (N, ...) array.
int64_t per_image(const farray& a) {
    int64_t f = 1;
    for (py::ssize_t d = 1; d < a.ndim(); ++d) f *= a.shape(d);
    return f;
}

// An op's (weight, bias) for one run, checked against the sizes it reads.
cnnkit::plan::Weights weights_of(const Op& op, std::size_t i, const py::handle& given,
                                 const farray& out, std::vector<farray>& keep) {
    cnnkit::plan::Weights w;
    const bool has = op.kind == Kind::Conv || op.kind == Kind::Depthwise || op.kind == Kind::Dense;
    const std::string at = "weights[" + std::to_string(i) + "]";
    if (!has) {
        require(given.is_none(), at + " must be None: op " + std::to_string(i) + " has no weights");
        return w;
    }
    require(py::isinstance<py::tuple>(given) && py::len(given) == 2, at + " must be (kernel, bias or None)");
    const auto pair = py::reinterpret_borrow<py::tuple>(given);
    const int64_t k_size = op.kind == Kind::Conv        ? (int64_t)op.g.KH * op.g.KW * op.g.C * op.oc
                           : op.kind == Kind::Depthwise ? (int64_t)op.g.KH * op.g.KW * op.oc
                                                        : (int64_t)op.features * op.oc;
    for (int j = 0; j < 2; ++j) {
        if (j == 1 && pair[1].is_none()) continue;
        const std::string name = at + (j ? " bias" : " kernel");
        require(py::isinstance<farray>(pair[j]), name + " must be a C-contiguous float32 array");
        farray a = py::reinterpret_borrow<farray>(pair[j]);
        require(a.size() == (j ? op.oc : k_size),
                name + " has " + std::to_string(a.size()) + " values, expected " +
                    std::to_string(j ? op.oc : k_size));
        require(!overlap(a, out), "out must not share memory with " + name);
        (j ? w.bias : w.weight) = aligned(a, name.c_str());
        keep.push_back(a);
    }
    return w;
}

farray run(Plan& plan, const farray& x, const py::list& weights, int images, const py::object& out_) {
    require(x.ndim() >= 1, "x must have a batch axis");
    require(per_image(x) == plan.floats(plan.input()),
            "x has " + std::to_string(per_image(x)) + " values per sample, the plan takes " +
                std::to_string(plan.floats(plan.input())));
    require(images >= 1, "images must be >= 1, got " + std::to_string(images));
    const int64_t N = x.shape(0);
    farray y = output(out_, {N, (py::ssize_t)plan.floats(plan.output())}, "out", {{"x", x}});
    require(weights.size() == plan.ops().size(),
            "weights must have one entry per op (" + std::to_string(plan.ops().size()) + "), got " +
                std::to_string(weights.size()));
    std::vector<farray> keep;  // the arrays stay referenced while the GIL is released
    std::vector<cnnkit::plan::Weights> ws;
    for (std::size_t i = 0; i < plan.ops().size(); ++i)
        ws.push_back(weights_of(plan.ops()[i], i, weights[i], y, keep));
    float* py_out = y.mutable_data();
    const float* px = aligned(x, "x");
    without_gil([&] { plan.run(py_out, px, N, images, ws); });
    return y;
}

}  // namespace

void bind_plan(py::module_& m) {
    py::class_<Plan>(m, "InferencePlan",
                     "A model's inference pass as one call, run a few images at a time "
                     "(engine/inference_plan.py builds it).")
        .def(py::init(&make_plan), "floats"_a, "input"_a, "output"_a, "ops"_a, "whole_from"_a)
        .def("run", &run, nc("x"), "weights"_a, "images"_a, out("out"),
             "out (N, output floats) = the pass over x (N, ...), `images` images at a time.")
        .def_property_readonly("slots", &Plan::slots)
        .def_property_readonly("whole_slots", &Plan::whole_slots)
        .def_property_readonly("whole_from", &Plan::whole_from)
        .def_property_readonly("arena_floats_per_image", &Plan::arena_floats_per_image)
        .def("winograd_tile", [](const Plan& p, int op) {
            require(op >= 0 && op < (int)p.ops().size(), "no op " + std::to_string(op));
            return p.winograd(op).tile;
        }, "op"_a, "The Winograd tile op's convolution runs with (0: none).");
}

}  // namespace cnnkit_bind
