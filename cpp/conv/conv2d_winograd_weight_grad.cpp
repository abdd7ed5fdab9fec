// conv/conv2d_winograd_weight_grad.cpp: the weight gradient of a 3x3 stride-1 convolution by
// Winograd's tiles, either size (conv2d_winograd.h). Workers each take a run of blocks of tiles:
// a block's V and dM transformed row-major, then one GEMM per position xi, dU[xi] += V[xi]^T
// dM[xi], into the worker's partial sums; the sums are added and turned back into the 3x3 kernel.
#include "conv2d_winograd.h"

namespace cnnkit {
namespace conv {
namespace winograd {
namespace {

gemm::Buffer& tl_partial() { thread_local gemm::Buffer b; return b; }  // dU and dbias per worker

}  // namespace

void weight_grad(const WeightGradTiles& tf, float* dweight, float* dbias, const float* dout,
                 const float* inp, const Window2d& g, int OC) {
    const int C = g.C, tm = tf.m, xis = (tm + 2) * (tm + 2);
    const TileGrid grid(g, tm);
    const int64_t tiles = grid.count(g);
    const int64_t CO = (int64_t)C * OC;
    // The tiles are the sums' depth: blocks of 2 MB of V and dM (against the forward pass's
    // 1.5 MB) amortise reading and writing the worker's xis x C x OC partial sums. Measured on
    // F(2x2) at 0.5, 1, 2 and 24 MB: 1-2 MB best, 24 MB 1.5-2x slower (V and dM left the caches).
    const int64_t TB = block_tiles(tiles, xis, C, OC, 2 << 20, 16, 2048);
    const int64_t nblocks = (tiles + TB - 1) / TB;
    // Each worker takes a fixed, contiguous run of blocks: the sums' order, and so the result,
    // depends on the thread count only, as gemm_backward's does.
    const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(gemm::max_threads(), nblocks));
    const int64_t per = (nblocks + workers - 1) / workers;
    const int64_t stride = xis * CO + OC;  // a worker's dU and dbias
    float* part = gemm::reserve(tl_partial(), (std::size_t)(workers * stride));
#pragma omp parallel for schedule(static)
    for (int64_t w = 0; w < workers; ++w) {
        float* du = part + w * stride;
        float* db = du + xis * CO;
        std::fill(db, db + OC, 0.f);
        float* v = gemm::reserve(tl_v(), (std::size_t)(xis * TB * C));
        float* dm = gemm::reserve(tl_m(), (std::size_t)(xis * TB * OC));
        const int64_t wmax = std::max(C, OC);
        float* rows = gemm::reserve(tl_rows(), (std::size_t)wmax);
        std::fill(rows, rows + wmax, 0.f);
        const float* zeros = rows;
        bool first = true;
        for (int64_t blk = w * per; blk < std::min(nblocks, (w + 1) * per); ++blk) {
            const int64_t t0 = blk * TB;
            const int nt = (int)std::min(TB, tiles - t0);
            const float* d[kMaxXi];
            const float* dy[16];
            TileCursor at(grid, t0);
            for (int r = 0; r < nt; ++r, at.next()) {
                if (dweight) {
                    tile_input_rows(inp, g, tm, at.n, at.oh0, at.ow0, zeros, d);
                    tf.input(d, C, v + (int64_t)r * C, TB * C);
                }
                tile_output_rows(dout, g, tm, OC, at.n, at.oh0, at.ow0, zeros, dy);
                if (dweight) tf.dout(dy, OC, dm + (int64_t)r * OC, TB * OC);
                if (dbias)
                    for (int k = 0; k < tm * tm; ++k)
                        if (dy[k] != zeros)
                            for (int oc = 0; oc < OC; ++oc) db[oc] += dy[k][oc];
            }
            if (dweight)
                for (int xi = 0; xi < xis; ++xi)
                    gemm::gemm_serial(C, OC, nt, gemm::MatView{v + xi * TB * C, C}, true,
                                      gemm::MatView{dm + xi * TB * OC, OC}, false, du + xi * CO,
                                      OC, !first);
            first = false;
        }
        if (first && dweight) std::fill(du, du + xis * CO, 0.f);  // a worker without blocks
    }
    // The workers' sums, added into worker 0's, then turned back into the 3x3 kernel.
    const int64_t nsum = dweight ? xis * CO : 0;
#pragma omp parallel for schedule(static) if (nsum > 16384)
    for (int64_t e = 0; e < nsum; ++e) {
        float s = part[e];
        for (int64_t w = 1; w < workers; ++w) s += part[w * stride + e];
        part[e] = s;
    }
    if (dweight) tf.weight(part, C, OC, dweight);
    if (dbias)
        for (int oc = 0; oc < OC; ++oc) {
            float s = 0.f;
            for (int64_t w = 0; w < workers; ++w) s += part[w * stride + xis * CO + oc];
            dbias[oc] = s;
        }
}

}  // namespace winograd
}  // namespace conv
}  // namespace cnnkit
