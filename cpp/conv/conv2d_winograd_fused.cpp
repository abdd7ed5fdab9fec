// conv/conv2d_winograd_fused.cpp: the forward pass of Winograd's tiles for layers of few channels
// (ResNet-20's 16 to 64), where conv2d_winograd_forward.cpp's packed GEMMs cost more than they
// save. There, with K = C = 16, the transposes into the GEMM's packed panels (6x8 blocks per
// position and channel octet) and the macro-kernel's edge handling took 50% of the time and the
// multiplications 20% (perf, 16->16 at 32x32, batch 64, AVX2 Zen 3).
//
// Here nothing is packed. A block of tiles is transformed row-major, V[xi] (tiles x C) with the
// channels contiguous; the GEMM of each position broadcasts its A operand straight from those
// rows (a broadcast reads any address as cheaply as a packed one) and reads U[xi] (C x OC) as
// the kernel transform left it; M[xi] (tiles x OC) is turned back into outputs with the bias,
// residual and ReLU, as the packed driver does. A block's V and M stay in L2; a micro-row's
// 6 x 16 sums stay in registers over the whole K = C.
#include "conv2d_winograd.h"

namespace cnnkit {
namespace conv {
namespace winograd {
namespace {

typedef float v8sf __attribute__((vector_size(32)));
// The same, at any float's address. Read and written through this type, not by memcpy into a
// v8sf, whose address GCC then kept: the 12 sums went through the stack, zeroed there first and
// copied out in 16-byte halves (perf put a quarter of the GEMM's samples there at 16 channels;
// callgrind: its instructions fell from 12.9M to 10.8M, 16->16 at 32x32, batch 16, 4 calls).
typedef float v8sf_u __attribute__((vector_size(32), aligned(alignof(float))));

CNNKIT_WINO_INLINE v8sf load8(const float* p) { return *reinterpret_cast<const v8sf_u*>(p); }
CNNKIT_WINO_INLINE void store8(float* p, v8sf v) { *reinterpret_cast<v8sf_u*>(p) = v; }

// c[i * ldc + j] = sum over k < K of a[i * lda + k] * b[k * ldb + j], for i < R (rows of tiles)
// and j < 8 NV (output channels): R x NV vectors of sums in registers (R = 6, NV = 2: 12 of
// AVX2's 16). Each k broadcasts R values of a and loads NV vectors of b.
template <int R, int NV>
CNNKIT_WINO_INLINE void rows_gemm(const float* a, int64_t lda, int K, const float* b, int64_t ldb,
                                  float* c, int64_t ldc) {
    v8sf acc[R][NV];
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < NV; ++j) acc[i][j] = v8sf{};
    for (int k = 0; k < K; ++k) {
        v8sf bv[NV];
        for (int j = 0; j < NV; ++j) bv[j] = load8(b + (int64_t)k * ldb + 8 * j);
        for (int i = 0; i < R; ++i) {
            const float s = a[i * lda + k];
            for (int j = 0; j < NV; ++j) acc[i][j] += s * bv[j];
        }
    }
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < NV; ++j) store8(c + i * ldc + 8 * j, acc[i][j]);
}

// M (rows x OC, row stride OC) = V (rows x C, row stride C) * U (C x OC), OC a multiple of 8:
// 16 output channels at a time, then 8; 6 rows at a time, then the rest.
template <int NV>
CNNKIT_WINO_INLINE void column_block(const float* v, int rows, int C, const float* u, int OC,
                                     float* m) {
    int r = 0;
    for (; r + 6 <= rows; r += 6) rows_gemm<6, NV>(v + (int64_t)r * C, C, C, u, OC, m + (int64_t)r * OC, OC);
    const float* vr = v + (int64_t)r * C;
    float* mr = m + (int64_t)r * OC;
    switch (rows - r) {
        case 5: return rows_gemm<5, NV>(vr, C, C, u, OC, mr, OC);
        case 4: return rows_gemm<4, NV>(vr, C, C, u, OC, mr, OC);
        case 3: return rows_gemm<3, NV>(vr, C, C, u, OC, mr, OC);
        case 2: return rows_gemm<2, NV>(vr, C, C, u, OC, mr, OC);
        case 1: return rows_gemm<1, NV>(vr, C, C, u, OC, mr, OC);
        default: return;
    }
}

#ifdef CNNKIT_X86_KERNELS
__attribute__((target("avx2,fma"))) void position_gemm_avx2(const float* v, int rows, int C,
                                                             const float* u, int OC, float* m) {
    int oc = 0;
    for (; oc + 16 <= OC; oc += 16) column_block<2>(v, rows, C, u + oc, OC, m + oc);
    if (oc < OC) column_block<1>(v, rows, C, u + oc, OC, m + oc);
}
#endif

// M[xi] = V[xi] * U[xi] for one position, compiled for the active instruction set; null where
// there is none (the packed driver runs). AVX2 only: its 8-float vectors are the AVX2 GEMM's
// width, but AVX-512's packed micro-kernels are 16 floats wide, and no AVX-512 machine has
// measured this driver against them; there the packed driver keeps these shapes.
using PositionGemmFn = void (*)(const float* v, int rows, int C, const float* u, int OC, float* m);

PositionGemmFn position_gemm() {
#ifdef CNNKIT_X86_KERNELS
    return cpu::active_isa() == cpu::Isa::kAvx2 ? position_gemm_avx2 : nullptr;
#else
    return nullptr;
#endif
}

}  // namespace

bool fused_available(int OC) { return OC % 8 == 0 && position_gemm() != nullptr; }

void forward_fused(const ForwardTiles& tf, float* out, const float* inp, const float* weight,
                   const float* bias, const Window2d& g, int OC, bool relu, const float* residual,
                   const float* prepared) {
    const int C = g.C, tm = tf.m, xis = (tm + 2) * (tm + 2);
    const PositionGemmFn gemm_xi = position_gemm();
    const TileGrid grid(g, tm);
    const int64_t tiles = grid.count(g), CO = (int64_t)C * OC;
    const float* u = prepared;
    if (!u) {
        float* made = gemm::reserve(tl_u(), (std::size_t)(xis * CO));
        tf.kernel(weight, C, OC, made);
        u = made;
    }

    // A block's V and M within 256 KB (half of Zen 3's L2), at most 96 tiles: against 128 KB,
    // 512 KB and 1.5 MB, and 384 tiles, it was the fastest at ResNet-20's shapes (2 threads).
    const int64_t TB = block_tiles(tiles, xis, C, OC, 1 << 18, 6, 96);
    const int64_t nblocks = (tiles + TB - 1) / TB;
    const OutputFn output = tf.output[relu][residual != nullptr];
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
        const int64_t t0 = blk * TB;
        const int nt = (int)std::min(TB, tiles - t0);
        float* v = gemm::reserve(tl_v(), (std::size_t)(xis * TB * C));  // v[(xi*TB + t)*C + c]
        float* m = gemm::reserve(tl_m(), (std::size_t)(xis * TB * OC));  // m[(xi*TB + t)*OC + oc]
        // Row 0: zeros (padding, a missing bias, a missing residual); row 1: a sink for the
        // outputs of tiles that pass the bottom or right edge.
        const int64_t wmax = std::max(C, OC);
        float* rows = gemm::reserve(tl_rows(), (std::size_t)(2 * wmax));
        std::fill(rows, rows + wmax, 0.f);
        const float* zeros = rows;
        const float* d[kMaxXi];
        TileCursor at(grid, t0);
        for (int r = 0; r < nt; ++r, at.next()) {
            tile_input_rows(inp, g, tm, at.n, at.oh0, at.ow0, zeros, d);
            // The next tile but one starts 2 m pixels to the right, in the same input rows: perf
            // put the transform's stalls on its loads of the input (a 4 MB activation at batch 64
            // is read from L3), and asking for them two tiles ahead was up to a few percent faster.
            for (int k = 0; k < xis; ++k)
                for (int c = 0; c < C; c += 16) __builtin_prefetch(d[k] + 2 * tm * C + c);
            tf.input(d, C, v + (int64_t)r * C, TB * C);
        }
        for (int xi = 0; xi < xis; ++xi)
            gemm_xi(v + xi * TB * C, nt, C, u + xi * CO, OC, m + xi * TB * OC);
        block_outputs(output, m, TB, t0, nt, grid, g, OC, bias, residual, zeros, rows + wmax, out);
    }
}

}  // namespace winograd
}  // namespace conv
}  // namespace cnnkit
