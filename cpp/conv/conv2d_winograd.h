// conv/conv2d_winograd.h: what Winograd's two tile sizes share (conv2d_winograd.cpp: F(2x2, 3x3),
// conv2d_winograd_f4.cpp: F(4x4, 3x3)): where a tile's pixels are, how many tiles go in a block,
// and the passes themselves (conv2d_winograd_forward.cpp, conv2d_winograd_weight_grad.cpp),
// which run either size through the table of its transforms.
//
// F(m x m, 3x3) reads an (m+2) x (m+2) block of input per m x m block of outputs (a "tile"). Its
// (m+2)^2 positions xi each make one GEMM, M[xi] (tiles x OC) = V[xi] (tiles x C) * U[xi]
// (C x OC), on the packed micro-kernels of gemm.h: (m+2)^2 multiplications per tile and channel
// pair where the direct sum takes 9 m^2 (F(2x2): 16 for 36, F(4x4): 36 for 144).
#pragma once
#include <algorithm>
#include <cstdint>

#include "conv2d_impl.h"
#ifdef CNNKIT_X86_KERNELS
#include <immintrin.h>
#endif

namespace cnnkit {
namespace conv {
namespace winograd {

#define CNNKIT_WINO_INLINE inline __attribute__((always_inline))

constexpr int kMaxXi = 36;  // positions of the largest transformed tile, F(4x4)'s 6x6

// Scratch of the calling thread (one Winograd pass runs at a time per thread).
inline gemm::Buffer& tl_v() { thread_local gemm::Buffer b; return b; }     // a block's V
inline gemm::Buffer& tl_m() { thread_local gemm::Buffer b; return b; }     // a block's M or dM
inline gemm::Buffer& tl_rows() { thread_local gemm::Buffer b; return b; }  // zeros, and a sink
inline gemm::Buffer& tl_u() { thread_local gemm::Buffer b; return b; }     // U, xis x C x OC

// V[xi] of MR tiles, channels c0..c1 of one K block, written straight into the GEMM's packed
// layout (gemm::pack_a): element (tile i, channel c) of V[xi] at dst[xi * xs + (c - c0) * MR + i].
// d[i * xis + k]: tile i's xis input rows (C floats each; zeros for tiles past the last).
using PanelFn = void (*)(const float* const* d, int MR, int c0, int c1, float* dst, int64_t xs);
// The m x m outputs y[a*m + b] (OC floats each) = (A^T M A)[a][b] + bias (+ res[a*m + b]), then
// max(0, .) with ReLU (NaN passes, as relu_forward), from m[xi * xs + oc].
using OutputFn = void (*)(const float* m, int64_t xs, int OC, const float* bias,
                          const float* const* res, float* const* y);
// V of one tile, row-major: v[xi * xs + c] for c < C, from its (m+2)^2 input rows.
using InputFn = void (*)(const float* const* d, int C, float* v, int64_t xs);
// u[(xi*C + c)*OC + oc] = (G g G^T)[xi] of weight (3,3,C,OC).
using KernelFn = void (*)(const float* weight, int C, int OC, float* u);

// One tile size's forward transforms, compiled for one instruction set.
struct ForwardTiles {
    int m;                  // outputs per tile side; the input tile is m + 2 wide
    KernelFn kernel;
    PanelFn panel;          // any MR
    PanelFn panel_mr6;      // MR = 6 (the AVX2 and AVX-512 micro-kernels' rows), vectorised
    InputFn input;          // row-major V, for forward_fused
    OutputFn output[2][2];  // [relu][residual]
};

// The forward pass of a 3x3 stride-1 convolution by the tiles of tf (conv2d_winograd_forward.cpp).
// inp (N,H,W,C), weight (3,3,C,OC), bias (OC) or null, residual (N,OH,OW,OC) or null.
// prepared: the kernels as prepare() made them for this driver (then weight is not read), or
// null to transform weight in this call.
void forward(const ForwardTiles& tf, float* out, const float* inp, const float* weight,
             const float* bias, const Window2d& g, int OC, bool relu, const float* residual,
             const float* prepared = nullptr);

// The same pass without packing, for few channels (conv2d_winograd_fused.cpp): row-major V and
// U, a micro-kernel that broadcasts from the rows of V. Needs fused_available(OC): OC a multiple
// of 8, and AVX2 the active instruction set.
bool fused_available(int OC);
void forward_fused(const ForwardTiles& tf, float* out, const float* inp, const float* weight,
                   const float* bias, const Window2d& g, int OC, bool relu, const float* residual,
                   const float* prepared = nullptr);

// The kernels of weight (3,3,C,OC) as the forward driver reads them, made once for many calls
// (an inference plan's passes): transformed (U), and for forward() also packed.
int64_t prepared_floats(const ForwardTiles& tf, int C, int OC, bool fused);
void prepare(const ForwardTiles& tf, const float* weight, int C, int OC, bool fused, float* dst);

// dM of one tile: dm[xi * xs + oc] = (A dY A^T)[xi], from its m^2 rows of output gradient.
using DoutFn = void (*)(const float* const* dy, int OC, float* dm, int64_t xs);
// dweight (3,3,C,OC) = G^T dU G, from du[(xi*C + c)*OC + oc].
using WeightFn = void (*)(const float* du, int C, int OC, float* dweight);

// One tile size's weight-gradient transforms, compiled for one instruction set. The weight
// gradient is the adjoint of the forward chain: dM = A dY A^T, dU[xi] = sum over tiles of
// V[xi]^T dM[xi], dW = G^T dU G.
struct WeightGradTiles {
    int m;
    InputFn input;
    DoutFn dout;
    WeightFn weight;
};

// The weight gradient by the tiles of tf (conv2d_winograd_weight_grad.cpp): dout (N,OH,OW,OC),
// inp (N,H,W,C); dweight (3,3,C,OC) and dbias (OC), either may be null.
void weight_grad(const WeightGradTiles& tf, float* dweight, float* dbias, const float* dout,
                 const float* inp, const Window2d& g, int OC);

// F(4x4, 3x3)'s transforms for the active instruction set (conv2d_winograd_f4.cpp).
const ForwardTiles& f4_tiles();
const WeightGradTiles& f4_weight_grad_tiles();

// Where a tile's pixels are: the tile grid is TH x TW per image, tile t of the whole batch.
struct TileGrid {
    int m, TH, TW;
    TileGrid(const Window2d& g, int m_) : m(m_), TH((g.OH + m_ - 1) / m_), TW((g.OW + m_ - 1) / m_) {}
    int64_t count(const Window2d& g) const { return (int64_t)g.N * TH * TW; }
    void locate(int64_t t, int64_t* n, int* oh0, int* ow0) const {
        const int64_t per = (int64_t)TH * TW;
        *n = t / per;
        const int r = (int)(t - *n * per);
        *oh0 = (r / TW) * m;
        *ow0 = (r % TW) * m;
    }
    // Whether the grid overhangs the output by at most a third of its area (tiles past the edge
    // compute outputs nobody reads; more than that lost to the direct paths).
    bool fits(const Window2d& g) const {
        return (int64_t)TH * TW * m * m * 3 <= (int64_t)g.OH * g.OW * 4;
    }
};

// The tiles of a grid from tile t0 on, in order: the image and first output of each, found by
// one division for the first and counting after it (two divisions a tile, and the bounds checks
// below, took a third of the instructions of the unpacked driver at 16 channels: callgrind).
struct TileCursor {
    const TileGrid& grid;
    int64_t n;
    int oh0, ow0;
    TileCursor(const TileGrid& grid_, int64_t t0) : grid(grid_) { grid.locate(t0, &n, &oh0, &ow0); }
    void next() {
        if ((ow0 += grid.m) == grid.TW * grid.m) {
            ow0 = 0;
            if ((oh0 += grid.m) == grid.TH * grid.m) oh0 = 0, ++n;
        }
    }
};

// The (m+2)^2 input rows of the tile whose first output is (n, oh0, ow0): inside the image in
// place, outside it a row of zeros.
inline void tile_input_rows(const float* inp, const Window2d& g, int m, int64_t n, int oh0,
                            int ow0, const float* zeros, const float** d) {
    const int a = m + 2, ih0 = oh0 - g.PT, iw0 = ow0 - g.PL;
    if (ih0 >= 0 && iw0 >= 0 && ih0 + a <= g.H && iw0 + a <= g.W) {  // all inside: no checks
        const float* base = inp + ((n * g.H + ih0) * g.W + iw0) * g.C;
        const int64_t rs = (int64_t)g.W * g.C;
        for (int y = 0; y < a; ++y)
            for (int x = 0; x < a; ++x) d[y * a + x] = base + y * rs + (int64_t)x * g.C;
        return;
    }
    for (int y = 0; y < a; ++y)
        for (int x = 0; x < a; ++x) {
            const int ih = ih0 + y, iw = iw0 + x;
            d[y * a + x] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W
                               ? inp + ((n * g.H + ih) * g.W + iw) * g.C
                               : zeros;
        }
}

// The rows of the tile's m x m outputs in t (N,OH,OW,OC): in place, or `outside` past the edge.
template <class P>
void tile_output_rows(P t, const Window2d& g, int m, int OC, int64_t n, int oh0, int ow0,
                      P outside, P* y) {
    if (oh0 + m <= g.OH && ow0 + m <= g.OW) {  // all inside: no checks
        const P base = t + ((n * g.OH + oh0) * g.OW + ow0) * OC;
        const int64_t rs = (int64_t)g.OW * OC;
        for (int a = 0; a < m; ++a)
            for (int b = 0; b < m; ++b) y[a * m + b] = base + a * rs + (int64_t)b * OC;
        return;
    }
    for (int a = 0; a < m; ++a)
        for (int b = 0; b < m; ++b) {
            const int oh = oh0 + a, ow = ow0 + b;
            y[a * m + b] = oh < g.OH && ow < g.OW ? t + ((n * g.OH + oh) * g.OW + ow) * OC : outside;
        }
}

// The outputs of a block's nt tiles, from tile t0 on: M (m[(xi*TB + r)*OC + oc]) turned back by
// output, with the bias (or zeros), the residual (or zeros) and the ReLU output fuses; outputs
// past the bottom or right edge go to the row `sink`.
inline void block_outputs(OutputFn output, const float* m, int64_t TB, int64_t t0, int nt,
                          const TileGrid& grid, const Window2d& g, int OC, const float* bias,
                          const float* residual, const float* zeros, float* sink, float* out) {
    const int tm = grid.m;
    const float* b = bias ? bias : zeros;
    float* y[16];
    const float* res[16];
    if (!residual) std::fill(res, res + tm * tm, zeros);
    TileCursor at(grid, t0);
    for (int r = 0; r < nt; ++r, at.next()) {
        tile_output_rows(out, g, tm, OC, at.n, at.oh0, at.ow0, sink, y);
        if (residual) tile_output_rows(residual, g, tm, OC, at.n, at.oh0, at.ow0, zeros, res);
        output(m + (int64_t)r * OC, TB * OC, OC, b, res, y);
    }
}

// Tiles per block: a block's transformed input and output (xis x tiles x (C + OC) floats) within
// `bytes`, a multiple of the micro-kernel's rows, and no more than an even share per thread.
inline int64_t block_tiles(int64_t tiles, int xis, int C, int OC, int64_t bytes, int mr,
                           int64_t most) {
    int64_t tb = bytes / (int64_t)(xis * sizeof(float) * (C + OC));
    const int64_t share = (tiles + gemm::max_threads() - 1) / gemm::max_threads();
    tb = std::min(std::min(tb, most), share);
    return std::max<int64_t>(mr, tb / mr * mr);
}

// The variant of a transform table for the active instruction set, picked once per call:
// CNNKIT_WINO_PICK(forward) is forward_avx512, forward_avx2 or forward_base.
template <class T>
const T& pick_isa(const T& base, const T* avx2, const T* avx512) {
    switch (cpu::active_isa()) {
        case cpu::Isa::kAvx512: return avx512 ? *avx512 : base;
        case cpu::Isa::kAvx2: return avx2 ? *avx2 : base;
        default: return base;
    }
}
#ifdef CNNKIT_X86_KERNELS
#define CNNKIT_WINO_PICK(NAME) pick_isa(NAME##_base, &NAME##_avx2, &NAME##_avx512)
#else
#define CNNKIT_WINO_PICK(NAME) (NAME##_base)  // only the baseline is compiled
#endif

#ifdef CNNKIT_X86_KERNELS
// v[i] holds 8 channels of tile i (i < 6): stored transposed, as 8 runs of 6 floats (channel l's
// 6 tiles at p + 6 l). An 8 x 8 transpose in registers with two zero rows; each store's last 2
// floats are overwritten by the next, and the eighth stores exactly 6.
__attribute__((target("avx2,fma"))) inline void store_6x8_transposed(const __m256* v, float* p) {
    const __m256 z = _mm256_setzero_ps();
    const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]),
                 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]),
                 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
                 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
                 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
                 s4 = _mm256_shuffle_ps(t4, z, _MM_SHUFFLE(1, 0, 1, 0)),
                 s5 = _mm256_shuffle_ps(t4, z, _MM_SHUFFLE(3, 2, 3, 2)),
                 s6 = _mm256_shuffle_ps(t5, z, _MM_SHUFFLE(1, 0, 1, 0)),
                 s7 = _mm256_shuffle_ps(t5, z, _MM_SHUFFLE(3, 2, 3, 2));
    // column l (channel l) of the 6 tiles, in lanes 0..5
    const __m256 o[8] = {_mm256_permute2f128_ps(s0, s4, 0x20), _mm256_permute2f128_ps(s1, s5, 0x20),
                         _mm256_permute2f128_ps(s2, s6, 0x20), _mm256_permute2f128_ps(s3, s7, 0x20),
                         _mm256_permute2f128_ps(s0, s4, 0x31), _mm256_permute2f128_ps(s1, s5, 0x31),
                         _mm256_permute2f128_ps(s2, s6, 0x31), _mm256_permute2f128_ps(s3, s7, 0x31)};
    for (int l = 0; l < 7; ++l) _mm256_storeu_ps(p + l * 6, o[l]);
    _mm_storeu_ps(p + 42, _mm256_castps256_ps128(o[7]));
    _mm_storel_pi(reinterpret_cast<__m64*>(p + 46), _mm256_extractf128_ps(o[7], 1));
}
#endif

}  // namespace winograd
}  // namespace conv
}  // namespace cnnkit
