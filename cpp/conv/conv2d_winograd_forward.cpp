// conv/conv2d_winograd_forward.cpp: the forward pass of a 3x3 stride-1 convolution by Winograd's
// tiles, either size (conv2d_winograd.h): the kernels transformed and packed once per call, then
// blocks of tiles, each block's V written straight into the GEMM's packed panels, (m+2)^2 GEMMs
// into M, and M turned back into outputs with the bias, residual and ReLU fused.
#include "conv2d_winograd.h"

namespace cnnkit {
namespace conv {
namespace winograd {
namespace {

gemm::Buffer& tl_upacked() { thread_local gemm::Buffer b; return b; }  // U, packed for the GEMM

// up (xis x C x Npad): U[xi], transformed from weight and packed as the GEMM's B operands.
void pack_kernels(const ForwardTiles& tf, const gemm::Kernel& kr, const float* weight, int C,
                  int OC, float* up) {
    const int xis = (tf.m + 2) * (tf.m + 2);
    const int64_t CO = (int64_t)C * OC, Npad = gemm::round_up(OC, kr.nr);
    float* u = gemm::reserve(tl_u(), (std::size_t)(xis * CO));
    tf.kernel(weight, C, OC, u);
    const gemm::KSplit ks(C, kr.kc);
    const int64_t npan = Npad / kr.nr, per_xi = ks.nblk * npan;
#pragma omp parallel for schedule(static) if (xis * CO > 65536)
    for (int64_t task = 0; task < xis * per_xi; ++task) {
        const int64_t xi = task / per_xi, rest = task - xi * per_xi;
        const int64_t blk = rest / npan, jp = rest - blk * npan;
        const int64_t k0 = ks.begin(blk), kc = ks.begin(blk + 1) - k0, j0 = jp * kr.nr;
        gemm::pack_b_panel(gemm::MatView{u + xi * CO, OC}, false, k0, (int)kc, j0,
                           (int)std::min<int64_t>(kr.nr, OC - j0), kr.nr,
                           up + xi * C * Npad + k0 * Npad + j0 * kc);
    }
}

}  // namespace

int64_t prepared_floats(const ForwardTiles& tf, int C, int OC, bool fused) {
    const int64_t xis = (tf.m + 2) * (tf.m + 2);
    return fused ? xis * C * OC : xis * C * gemm::round_up(OC, gemm::active_kernel().nr);
}

void prepare(const ForwardTiles& tf, const float* weight, int C, int OC, bool fused, float* dst) {
    if (fused)
        tf.kernel(weight, C, OC, dst);
    else
        pack_kernels(tf, gemm::active_kernel(), weight, C, OC, dst);
}

void forward(const ForwardTiles& tf, float* out, const float* inp, const float* weight,
             const float* bias, const Window2d& g, int OC, bool relu, const float* residual,
             const float* prepared) {
    const int C = g.C, tm = tf.m, xis = (tm + 2) * (tm + 2);
    const gemm::Kernel kr = gemm::active_kernel();
    const TileGrid grid(g, tm);
    const int64_t tiles = grid.count(g);

    // The xis kernels, transformed, then packed as the B operands of the GEMM.
    const int64_t Npad = gemm::round_up(OC, kr.nr);
    const float* up = prepared;
    if (!up) {
        float* packed = gemm::reserve(tl_upacked(), (std::size_t)(xis * C * Npad));
        pack_kernels(tf, kr, weight, C, OC, packed);
        up = packed;
    }
    const gemm::KSplit ks(C, kr.kc);

    // A block's V and M within 1.5 MB (F(2x2) measured; F(4x4)'s larger tiles keep the bytes).
    const int64_t TB = block_tiles(tiles, xis, C, OC, 3 << 19, kr.mr, 1024);
    const int64_t nblocks = (tiles + TB - 1) / TB, MR = kr.mr, TBp = gemm::round_up(TB, MR);
    const PanelFn panel = MR == 6 && tf.panel_mr6 ? tf.panel_mr6 : tf.panel;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
        const int64_t t0 = blk * TB;
        const int nt = (int)std::min(TB, tiles - t0);
        // V[xi] in packed panels (K block b at k0 * TBp), 8 floats of slack for the last store
        float* v = gemm::reserve(tl_v(), (std::size_t)(xis * TBp * C + 8));
        float* m = gemm::reserve(tl_m(), (std::size_t)(xis * TB * OC));
        // Row 0: zeros (padding, a missing bias, a missing residual); row 1: a sink for the
        // outputs of tiles that pass the bottom or right edge.
        const int64_t wmax = std::max(C, OC);
        float* rows = gemm::reserve(tl_rows(), (std::size_t)(2 * wmax));
        std::fill(rows, rows + wmax, 0.f);
        const float* zeros = rows;
        const float* d[gemm::kMaxMR * kMaxXi];
        TileCursor at(grid, t0);
        for (int r0 = 0; r0 < nt; r0 += (int)MR) {
            for (int i = 0; i < MR; ++i) {
                if (r0 + i < nt) {
                    tile_input_rows(inp, g, tm, at.n, at.oh0, at.ow0, zeros, d + i * xis);
                    at.next();
                } else {
                    std::fill(d + i * xis, d + (i + 1) * xis, zeros);
                }
            }
            for (int64_t kb = 0; kb < ks.nblk; ++kb) {
                const int64_t k0 = ks.begin(kb), kc = ks.begin(kb + 1) - k0;
                panel(d, (int)MR, (int)k0, (int)(k0 + kc), v + k0 * TBp + r0 * kc, TBp * C);
            }
        }
        for (int xi = 0; xi < xis; ++xi) {
            const gemm::PackedB pb{up + xi * C * Npad, C, OC, Npad, ks};
            for (int64_t kb = 0; kb < ks.nblk; ++kb) {
                const int64_t k0 = ks.begin(kb), kc = ks.begin(kb + 1) - k0;
                gemm::macro_kernel(kr, nt, OC, (int)kc, v + xi * TBp * C + k0 * TBp,
                                   pb.block(kb, 0), m + xi * TB * OC, OC, kb > 0, nullptr);
            }
        }
        block_outputs(tf.output[relu][residual != nullptr], m, TB, t0, nt, grid, g, OC, bias,
                      residual, zeros, rows + wmax, out);
    }
}

}  // namespace winograd
}  // namespace conv
}  // namespace cnnkit
