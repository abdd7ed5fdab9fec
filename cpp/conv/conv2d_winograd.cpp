// conv/conv2d_winograd.cpp: 3x3, stride-1 convolutions by Winograd's minimal filtering
// F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015): the
// forward pass and the weight gradient. The input gradient of a stride-1 convolution is the
// forward pass of the turned kernel (conv2d_input_grad.cpp), so it runs here too.
//
// Each 2x2 block of outputs (a "tile") reads a 4x4 block of input. Transformed, the 3x3
// convolution of a tile becomes an elementwise product: for each of the 16 positions xi of the
// 4x4 block, M[xi] (tiles x OC) = V[xi] (tiles x C) * U[xi] (C x OC), 16 GEMMs on the packed
// micro-kernels of gemm.h; the 2x2 outputs are then A^T M A. That is 16 multiplications per tile
// and channel pair instead of 36, 2.25x fewer, for transforms made of additions along NHWC rows
// (vectorised over the channels).
//   U = G g G^T  kernel, G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   V = B^T d B  input,  B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   Y = A^T M A  output, A^T = [1 1 1 0; 0 1 -1 -1]
// The weight gradient is the adjoint of the same chain: dM = A dY A^T, dU[xi] = sum over tiles
// of V[xi]^T dM[xi], dW = G^T dU G.
//
// Tiles go in blocks small enough for a block's V and M to stay in the caches; the 16 U[xi] are
// transformed and packed once per call. The transforms are compiled for the build's baseline and,
// where the x86 kernels are, for AVX2 and AVX-512 (picked by cpu::active_isa() once per call).
// F(2x2, 3x3)'s float32 error is of the order of the direct sum's (its constants are 1 and 1/2);
// the larger tiles F(4x4, 3x3) would save more multiplications but lose digits.
#include <algorithm>
#include <atomic>

#include "conv2d_impl.h"
#ifdef CNNKIT_X86_KERNELS
#include <immintrin.h>
#endif

namespace cnnkit {
namespace conv {
namespace {

constexpr int kXi = 16;  // positions of the 4x4 transformed tile
std::atomic<bool> g_enabled{true};

gemm::Buffer& tl_u() { thread_local gemm::Buffer b; return b; }        // U, kXi x C x OC
gemm::Buffer& tl_upacked() { thread_local gemm::Buffer b; return b; }  // U, packed for the GEMM
gemm::Buffer& tl_v() { thread_local gemm::Buffer b; return b; }        // a block's V
gemm::Buffer& tl_m() { thread_local gemm::Buffer b; return b; }        // a block's M or dM
gemm::Buffer& tl_rows() { thread_local gemm::Buffer b; return b; }     // zeros, and a sink
gemm::Buffer& tl_partial() { thread_local gemm::Buffer b; return b; }  // dU and dbias per worker

#define CNNKIT_WINO_INLINE inline __attribute__((always_inline))

// v[xi * xs + c] = (B^T d B)[xi] for c < C, from the 16 input rows d[y*4 + x] (C floats each).
CNNKIT_WINO_INLINE void input_transform_body(const float* const* d, int C, float* v, int64_t xs) {
#pragma GCC ivdep
    for (int c = 0; c < C; ++c) {
        float r[4][4];
        for (int s = 0; s < 4; ++s) {
            const float d0 = d[s][c], d1 = d[4 + s][c], d2 = d[8 + s][c], d3 = d[12 + s][c];
            r[0][s] = d0 - d2;
            r[1][s] = d1 + d2;
            r[2][s] = d2 - d1;
            r[3][s] = d1 - d3;
        }
        for (int i = 0; i < 4; ++i) {
            v[(i * 4 + 0) * xs + c] = r[i][0] - r[i][2];
            v[(i * 4 + 1) * xs + c] = r[i][1] + r[i][2];
            v[(i * 4 + 2) * xs + c] = r[i][2] - r[i][1];
            v[(i * 4 + 3) * xs + c] = r[i][1] - r[i][3];
        }
    }
}

// The forward pass writes V straight into the GEMM's packed layout (gemm::pack_a): for a panel of
// MR tiles and the channels c0..c1 of one K block, element (tile i, channel c) of V[xi] at
// dst[xi * xs + (c - c0) * MR + i]. A separate pack_a of row-major V cost more than the GEMM at
// 64 channels (a strided scalar copy); here each transformed value is stored once.
// d[i * 16 + k]: tile i's 16 input rows (zeros for tiles past the last).
void input_panel_scalar(const float* const* d, int MR, int c0, int c1, float* dst, int64_t xs) {
    float v[16];
    const float* dk[16];
    for (int i = 0; i < MR; ++i) {
        for (int k = 0; k < 16; ++k) dk[k] = d[i * 16 + k] + c0;
        for (int c = c0; c < c1; ++c) {
            input_transform_body(dk, 1, v, 1);  // of channel c, through rows offset by c
            for (int k = 0; k < 16; ++k) dk[k] += 1;
            for (int xi = 0; xi < kXi; ++xi) dst[xi * xs + (int64_t)(c - c0) * MR + i] = v[xi];
        }
    }
}

#ifdef CNNKIT_X86_KERNELS
// MR = 6 (the AVX2 and AVX-512 micro-kernels' rows): 8 channels of 6 tiles at a time, transformed
// in vectors, then each xi's 6 x 8 block transposed in registers (an 8 x 8 transpose with two
// zero rows) and stored as 8 runs of 6 floats, each store's last 2 floats overwritten by the
// next; the eighth stores exactly 6.
__attribute__((target("avx2,fma"))) void input_panel_mr6_avx2(const float* const* d, int MR,
                                                               int c0, int c1, float* dst,
                                                               int64_t xs) {
    int c = c0;
    for (; c + 8 <= c1; c += 8) {
        __m256 v[kXi][6];
        for (int i = 0; i < 6; ++i) {
            const float* const* di = d + i * 16;
            __m256 r[4][4];
            for (int s = 0; s < 4; ++s) {
                const __m256 d0 = _mm256_loadu_ps(di[s] + c), d1 = _mm256_loadu_ps(di[4 + s] + c),
                             d2 = _mm256_loadu_ps(di[8 + s] + c), d3 = _mm256_loadu_ps(di[12 + s] + c);
                r[0][s] = _mm256_sub_ps(d0, d2);
                r[1][s] = _mm256_add_ps(d1, d2);
                r[2][s] = _mm256_sub_ps(d2, d1);
                r[3][s] = _mm256_sub_ps(d1, d3);
            }
            for (int a = 0; a < 4; ++a) {
                v[a * 4 + 0][i] = _mm256_sub_ps(r[a][0], r[a][2]);
                v[a * 4 + 1][i] = _mm256_add_ps(r[a][1], r[a][2]);
                v[a * 4 + 2][i] = _mm256_sub_ps(r[a][2], r[a][1]);
                v[a * 4 + 3][i] = _mm256_sub_ps(r[a][1], r[a][3]);
            }
        }
        const __m256 z = _mm256_setzero_ps();
        for (int xi = 0; xi < kXi; ++xi) {
            const __m256 t0 = _mm256_unpacklo_ps(v[xi][0], v[xi][1]),
                         t1 = _mm256_unpackhi_ps(v[xi][0], v[xi][1]),
                         t2 = _mm256_unpacklo_ps(v[xi][2], v[xi][3]),
                         t3 = _mm256_unpackhi_ps(v[xi][2], v[xi][3]),
                         t4 = _mm256_unpacklo_ps(v[xi][4], v[xi][5]),
                         t5 = _mm256_unpackhi_ps(v[xi][4], v[xi][5]);
            const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
                         s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                         s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
                         s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
                         s4 = _mm256_shuffle_ps(t4, z, _MM_SHUFFLE(1, 0, 1, 0)),
                         s5 = _mm256_shuffle_ps(t4, z, _MM_SHUFFLE(3, 2, 3, 2)),
                         s6 = _mm256_shuffle_ps(t5, z, _MM_SHUFFLE(1, 0, 1, 0)),
                         s7 = _mm256_shuffle_ps(t5, z, _MM_SHUFFLE(3, 2, 3, 2));
            // column l (channel c + l) of the 6 tiles, in lanes 0..5
            const __m256 o[8] = {_mm256_permute2f128_ps(s0, s4, 0x20),
                                 _mm256_permute2f128_ps(s1, s5, 0x20),
                                 _mm256_permute2f128_ps(s2, s6, 0x20),
                                 _mm256_permute2f128_ps(s3, s7, 0x20),
                                 _mm256_permute2f128_ps(s0, s4, 0x31),
                                 _mm256_permute2f128_ps(s1, s5, 0x31),
                                 _mm256_permute2f128_ps(s2, s6, 0x31),
                                 _mm256_permute2f128_ps(s3, s7, 0x31)};
            float* p = dst + xi * xs + (int64_t)(c - c0) * 6;
            for (int l = 0; l < 7; ++l) _mm256_storeu_ps(p + l * 6, o[l]);
            _mm_storeu_ps(p + 42, _mm256_castps256_ps128(o[7]));
            _mm_storel_pi(reinterpret_cast<__m64*>(p + 46), _mm256_extractf128_ps(o[7], 1));
        }
    }
    if (c < c1) input_panel_scalar(d, MR, c, c1, dst + (int64_t)(c - c0) * 6, xs);
}
#endif

// The 2x2 outputs y[a*2 + b] (OC floats each) = (A^T M A)[a][b] + bias (+ res[a*2 + b]), then
// max(0, .) with RELU (NaN passes, as relu_forward), from m[xi * xs + oc].
template <bool RELU, bool RES>
CNNKIT_WINO_INLINE void output_transform_body(const float* m, int64_t xs, int OC,
                                              const float* bias, const float* const* res,
                                              float* const* y) {
#pragma GCC ivdep
    for (int oc = 0; oc < OC; ++oc) {
        float s[2][4];
        for (int j = 0; j < 4; ++j) {
            const float m0 = m[j * xs + oc], m1 = m[(4 + j) * xs + oc],
                        m2 = m[(8 + j) * xs + oc], m3 = m[(12 + j) * xs + oc];
            s[0][j] = m0 + m1 + m2;
            s[1][j] = m1 - m2 - m3;
        }
        for (int a = 0; a < 2; ++a) {
            float y0 = s[a][0] + s[a][1] + s[a][2] + bias[oc];
            float y1 = s[a][1] - s[a][2] - s[a][3] + bias[oc];
            if (RES) {
                y0 += res[a * 2][oc];
                y1 += res[a * 2 + 1][oc];
            }
            if (RELU) {
                y0 = y0 < 0.f ? 0.f : y0;
                y1 = y1 < 0.f ? 0.f : y1;
            }
            y[a * 2][oc] = y0;
            y[a * 2 + 1][oc] = y1;
        }
    }
}

// dm[xi * xs + oc] = (A dY A^T)[xi] from the tile's output gradients dy[a*2 + b] (OC floats each;
// zeros outside the output).
CNNKIT_WINO_INLINE void dout_transform_body(const float* const* dy, int OC, float* dm, int64_t xs) {
#pragma GCC ivdep
    for (int oc = 0; oc < OC; ++oc) {
        float t[4][2];
        for (int b = 0; b < 2; ++b) {
            const float y0 = dy[b][oc], y1 = dy[2 + b][oc];
            t[0][b] = y0;
            t[1][b] = y0 + y1;
            t[2][b] = y0 - y1;
            t[3][b] = -y1;
        }
        for (int i = 0; i < 4; ++i) {
            dm[(i * 4 + 0) * xs + oc] = t[i][0];
            dm[(i * 4 + 1) * xs + oc] = t[i][0] + t[i][1];
            dm[(i * 4 + 2) * xs + oc] = t[i][0] - t[i][1];
            dm[(i * 4 + 3) * xs + oc] = -t[i][1];
        }
    }
}

struct Transforms {
    void (*input)(const float* const*, int, float*, int64_t);
    void (*panel)(const float* const*, int, int, int, float*, int64_t);  // where MR fits it
    void (*output[2][2])(const float*, int64_t, int, const float*, const float* const*,
                         float* const*);  // [relu][res]
    void (*dout)(const float* const*, int, float*, int64_t);
};

#define CNNKIT_WINO_VARIANT(SUFFIX, ATTR, PANEL)                                                       \
    ATTR void input_##SUFFIX(const float* const* d, int C, float* v, int64_t xs) {                \
        input_transform_body(d, C, v, xs);                                                        \
    }                                                                                             \
    template <bool RELU, bool RES>                                                                \
    ATTR void output_##SUFFIX(const float* m, int64_t xs, int OC, const float* bias,              \
                              const float* const* res, float* const* y) {                         \
        output_transform_body<RELU, RES>(m, xs, OC, bias, res, y);                                \
    }                                                                                             \
    ATTR void dout_##SUFFIX(const float* const* dy, int OC, float* dm, int64_t xs) {              \
        dout_transform_body(dy, OC, dm, xs);                                                      \
    }                                                                                             \
    const Transforms transforms_##SUFFIX = {                                                      \
        input_##SUFFIX, PANEL,                                                                    \
        {{output_##SUFFIX<false, false>, output_##SUFFIX<false, true>},                           \
         {output_##SUFFIX<true, false>, output_##SUFFIX<true, true>}},                            \
        dout_##SUFFIX};

CNNKIT_WINO_VARIANT(base, , input_panel_scalar)
#ifdef CNNKIT_X86_KERNELS
CNNKIT_WINO_VARIANT(avx2, __attribute__((target("avx2,fma"))), input_panel_mr6_avx2)
CNNKIT_WINO_VARIANT(avx512, __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"))),
                    input_panel_mr6_avx2)
#endif

const Transforms& active_transforms() {
#ifdef CNNKIT_X86_KERNELS
    switch (cpu::active_isa()) {
        case cpu::Isa::kAvx512: return transforms_avx512;
        case cpu::Isa::kAvx2: return transforms_avx2;
        default: break;
    }
#endif
    return transforms_base;
}

// u[(xi*C + c)*OC + oc] = (G g G^T)[xi] of weight (3,3,C,OC). Parallel over input channels.
void kernel_transform(const float* weight, int C, int OC, float* u) {
    const int64_t CO = (int64_t)C * OC;
#pragma omp parallel for schedule(static) if (CO > 16384)
    for (int c = 0; c < C; ++c) {
        for (int oc = 0; oc < OC; ++oc) {
            float w[3][3], t[4][3];
            for (int k = 0; k < 9; ++k) w[k / 3][k % 3] = weight[k * CO + (int64_t)c * OC + oc];
            for (int x = 0; x < 3; ++x) {
                t[0][x] = w[0][x];
                t[1][x] = 0.5f * (w[0][x] + w[1][x] + w[2][x]);
                t[2][x] = 0.5f * (w[0][x] - w[1][x] + w[2][x]);
                t[3][x] = w[2][x];
            }
            for (int i = 0; i < 4; ++i) {
                float* ui = u + ((int64_t)(i * 4) * C + c) * OC + oc;
                ui[0] = t[i][0];
                ui[CO] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                ui[2 * CO] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                ui[3 * CO] = t[i][2];
            }
        }
    }
}

// dweight (3,3,C,OC) = G^T dU G, from du[(xi*C + c)*OC + oc]. Parallel over input channels.
void weight_grad_transform(const float* du, int C, int OC, float* dweight) {
    const int64_t CO = (int64_t)C * OC;
#pragma omp parallel for schedule(static) if (CO > 16384)
    for (int c = 0; c < C; ++c) {
        for (int oc = 0; oc < OC; ++oc) {
            float d[4][4], p[3][4];
            for (int xi = 0; xi < kXi; ++xi) d[xi / 4][xi % 4] = du[xi * CO + (int64_t)c * OC + oc];
            for (int j = 0; j < 4; ++j) {
                p[0][j] = d[0][j] + 0.5f * (d[1][j] + d[2][j]);
                p[1][j] = 0.5f * (d[1][j] - d[2][j]);
                p[2][j] = 0.5f * (d[1][j] + d[2][j]) + d[3][j];
            }
            for (int ky = 0; ky < 3; ++ky) {
                float* dw = dweight + (int64_t)(ky * 3) * CO + (int64_t)c * OC + oc;
                dw[0] = p[ky][0] + 0.5f * (p[ky][1] + p[ky][2]);
                dw[CO] = 0.5f * (p[ky][1] - p[ky][2]);
                dw[2 * CO] = 0.5f * (p[ky][1] + p[ky][2]) + p[ky][3];
            }
        }
    }
}

// Where a tile's pixels are: the tile grid is TH x TW per image, tile t of the whole batch.
struct TileGrid {
    int TH, TW;
    explicit TileGrid(const Window2d& g) : TH((g.OH + 1) / 2), TW((g.OW + 1) / 2) {}
    int64_t count(const Window2d& g) const { return (int64_t)g.N * TH * TW; }
    void locate(int64_t t, int64_t* n, int* oh0, int* ow0) const {
        const int64_t per = (int64_t)TH * TW;
        *n = t / per;
        const int r = (int)(t - *n * per);
        *oh0 = (r / TW) * 2;
        *ow0 = (r % TW) * 2;
    }
};

// The 16 input rows of the tile whose first output is (n, oh0, ow0): inside the image in
// place, outside it a row of zeros.
void tile_input_rows(const float* inp, const Window2d& g, int64_t n, int oh0, int ow0,
                     const float* zeros, const float** d) {
    const int ih0 = oh0 - g.PT, iw0 = ow0 - g.PL;
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) {
            const int ih = ih0 + y, iw = iw0 + x;
            d[y * 4 + x] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W
                               ? inp + ((n * g.H + ih) * g.W + iw) * g.C
                               : zeros;
        }
}

// The rows of the tile's 2x2 outputs in t (N,OH,OW,OC): in place, or `outside` past the edge.
template <class P>
void tile_output_rows(P t, const Window2d& g, int OC, int64_t n, int oh0, int ow0, P outside,
                      P* y) {
    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
            const int oh = oh0 + a, ow = ow0 + b;
            y[a * 2 + b] = oh < g.OH && ow < g.OW ? t + ((n * g.OH + oh) * g.OW + ow) * OC : outside;
        }
}

// Tiles per block: a block's transformed input and output (16 x tiles x (C + OC) floats) within
// `bytes`, a multiple of the micro-kernel's rows, and no more than an even share per thread.
int64_t block_tiles(int64_t tiles, int C, int OC, int64_t bytes, int mr, int64_t most) {
    int64_t tb = bytes / (int64_t)(kXi * sizeof(float) * (C + OC));
    const int64_t share = (tiles + gemm::max_threads() - 1) / gemm::max_threads();
    tb = std::min(std::min(tb, most), share);
    return std::max<int64_t>(mr, tb / mr * mr);
}

}  // namespace

bool winograd_applies(const Window2d& g, int OC) {
    // Measured against the direct paths (bench/winograd.py, batch 32-128, 2 threads, AVX2 Zen 3):
    // the forward pass gains 1.2-2.4x from 24 channels in and out on images of 7x7 and more
    // (airbench94's 24->64 at 31x31 1.3x, 64->256 at 15x15 2.4x); 16->16 lost (0.8x). A tile
    // grid that overhangs the output by more than a third of its area loses too: 3x3 images
    // (4x4 computed per 3x3 used) ran 0.9x.
    if (!g_enabled.load(std::memory_order_relaxed)) return false;
    const TileGrid grid(g);
    return g.KH == 3 && g.KW == 3 && g.SH == 1 && g.SW == 1 && g.DH == 1 && g.DW == 1 &&
           g.C >= kWinogradMinChannels && OC >= kWinogradMinChannels && g.OH >= 2 &&
           g.OW >= 2 && (int64_t)grid.TH * grid.TW * 4 * 3 <= (int64_t)g.OH * g.OW * 4;
}

bool winograd_weight_grad_applies(const Window2d& g, int OC) {
    // The weight gradient's GEMMs sum over tiles into 16 C x OC partial sums; with fewer than
    // 64 outputs they ran slower than the direct kernels (32->32: 0.8-0.9x; 64->64 1.0-1.3x,
    // 64->256 1.5-1.7x, 256->256 at 7x7 1.1-1.35x, same bench).
    return winograd_applies(g, OC) && OC >= kWinogradWeightGradMinOC;
}

void winograd_forward(float* out, const float* inp, const float* weight, const float* bias,
                      const Window2d& g, int OC, bool relu, const float* residual) {
    // inp is (N,H,W,C), weight (3,3,C,OC), bias (OC) or null, residual (N,OH,OW,OC) or null
    const int C = g.C;
    const gemm::Kernel kr = gemm::active_kernel();
    const Transforms& tf = active_transforms();
    const TileGrid grid(g);
    const int64_t tiles = grid.count(g);

    // The 16 kernels, transformed, then packed as the B operands of the GEMM.
    const int64_t CO = (int64_t)C * OC, Npad = gemm::round_up(OC, kr.nr);
    float* u = gemm::reserve(tl_u(), (std::size_t)(kXi * CO));
    kernel_transform(weight, C, OC, u);
    float* up = gemm::reserve(tl_upacked(), (std::size_t)(kXi * C * Npad));
    const gemm::KSplit ks(C, kr.kc);
    const int64_t npan = Npad / kr.nr, per_xi = ks.nblk * npan;
#pragma omp parallel for schedule(static) if (kXi * CO > 65536)
    for (int64_t task = 0; task < kXi * per_xi; ++task) {
        const int64_t xi = task / per_xi, rest = task - xi * per_xi;
        const int64_t blk = rest / npan, jp = rest - blk * npan;
        const int64_t k0 = ks.begin(blk), kc = ks.begin(blk + 1) - k0, j0 = jp * kr.nr;
        gemm::pack_b_panel(gemm::MatView{u + xi * CO, OC}, false, k0, (int)kc, j0,
                           (int)std::min<int64_t>(kr.nr, OC - j0), kr.nr,
                           up + xi * C * Npad + k0 * Npad + j0 * kc);
    }

    const int64_t TB = block_tiles(tiles, C, OC, 3 << 19, kr.mr, 1024);
    const int64_t nblocks = (tiles + TB - 1) / TB, MR = kr.mr, TBp = gemm::round_up(TB, MR);
    const auto panel = MR == 6 ? tf.panel : input_panel_scalar;  // the AVX2 one needs MR = 6
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
        const int64_t t0 = blk * TB;
        const int nt = (int)std::min(TB, tiles - t0);
        // V[xi] in packed panels (K block b at k0 * TBp), 8 floats of slack for the last store
        float* v = gemm::reserve(tl_v(), (std::size_t)(kXi * TBp * C + 8));
        float* m = gemm::reserve(tl_m(), (std::size_t)(kXi * TB * OC));
        // Row 0: zeros (padding, a missing bias, a missing residual); row 1: a sink for the
        // outputs of tiles that pass the bottom or right edge.
        const int64_t wmax = std::max(C, OC);
        float* rows = gemm::reserve(tl_rows(), (std::size_t)(2 * wmax));
        std::fill(rows, rows + wmax, 0.f);
        const float* zeros = rows;
        const float* d[gemm::kMaxMR * 16];
        for (int r0 = 0; r0 < nt; r0 += (int)MR) {
            for (int i = 0; i < MR; ++i) {
                if (r0 + i < nt) {
                    int64_t n;
                    int oh0, ow0;
                    grid.locate(t0 + r0 + i, &n, &oh0, &ow0);
                    tile_input_rows(inp, g, n, oh0, ow0, zeros, d + i * 16);
                } else {
                    std::fill(d + i * 16, d + i * 16 + 16, zeros);
                }
            }
            for (int64_t kb = 0; kb < ks.nblk; ++kb) {
                const int64_t k0 = ks.begin(kb), kc = ks.begin(kb + 1) - k0;
                panel(d, (int)MR, (int)k0, (int)(k0 + kc), v + k0 * TBp + r0 * kc, TBp * C);
            }
        }
        for (int xi = 0; xi < kXi; ++xi) {
            const gemm::PackedB pb{up + xi * C * Npad, C, OC, Npad, ks};
            for (int64_t kb = 0; kb < ks.nblk; ++kb) {
                const int64_t k0 = ks.begin(kb), kc = ks.begin(kb + 1) - k0;
                gemm::macro_kernel(kr, nt, OC, (int)kc, v + xi * TBp * C + k0 * TBp,
                                   pb.block(kb, 0), m + xi * TB * OC, OC, kb > 0, nullptr);
            }
        }
        const auto output = tf.output[relu][residual != nullptr];
        const float* b = bias ? bias : zeros;
        for (int r = 0; r < nt; ++r) {
            int64_t n;
            int oh0, ow0;
            grid.locate(t0 + r, &n, &oh0, &ow0);
            float* y[4];
            tile_output_rows(out, g, OC, n, oh0, ow0, rows + wmax, y);
            const float* res[4] = {zeros, zeros, zeros, zeros};
            if (residual) tile_output_rows(residual, g, OC, n, oh0, ow0, zeros, res);
            output(m + (int64_t)r * OC, TB * OC, OC, b, res, y);
        }
    }
}

void winograd_weight_grad(float* dweight, float* dbias, const float* dout, const float* inp,
                          const Window2d& g, int OC) {
    // dout is (N,OH,OW,OC), inp (N,H,W,C); dweight (3,3,C,OC) and dbias (OC), either may be null
    const int C = g.C;
    const Transforms& tf = active_transforms();
    const TileGrid grid(g);
    const int64_t tiles = grid.count(g);
    const int64_t CO = (int64_t)C * OC;
    // The tiles are the sums' depth: blocks of 2 MB of V and dM (against the forward pass's
    // 1.5 MB) amortise reading and writing the worker's 16 x C x OC partial sums. Measured
    // at 0.5, 1, 2 and 24 MB: 1-2 MB best, 24 MB 1.5-2x slower (V and dM left the caches).
    const int64_t TB = block_tiles(tiles, C, OC, 2 << 20, 16, 2048);
    const int64_t nblocks = (tiles + TB - 1) / TB;
    // Each worker takes a fixed, contiguous run of blocks: the sums' order, and so the result,
    // depends on the thread count only, as gemm_backward's does.
    const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(gemm::max_threads(), nblocks));
    const int64_t per = (nblocks + workers - 1) / workers;
    const int64_t stride = kXi * CO + OC;  // a worker's dU and dbias
    float* part = gemm::reserve(tl_partial(), (std::size_t)(workers * stride));
#pragma omp parallel for schedule(static)
    for (int64_t w = 0; w < workers; ++w) {
        float* du = part + w * stride;
        float* db = du + kXi * CO;
        std::fill(db, db + OC, 0.f);
        float* v = gemm::reserve(tl_v(), (std::size_t)(kXi * TB * C));
        float* dm = gemm::reserve(tl_m(), (std::size_t)(kXi * TB * OC));
        const int64_t wmax = std::max(C, OC);
        float* rows = gemm::reserve(tl_rows(), (std::size_t)wmax);
        std::fill(rows, rows + wmax, 0.f);
        const float* zeros = rows;
        bool first = true;
        for (int64_t blk = w * per; blk < std::min(nblocks, (w + 1) * per); ++blk) {
            const int64_t t0 = blk * TB;
            const int nt = (int)std::min(TB, tiles - t0);
            const float* d[16];
            const float* dy[4];
            for (int r = 0; r < nt; ++r) {
                int64_t n;
                int oh0, ow0;
                grid.locate(t0 + r, &n, &oh0, &ow0);
                if (dweight) {
                    tile_input_rows(inp, g, n, oh0, ow0, zeros, d);
                    tf.input(d, C, v + (int64_t)r * C, TB * C);
                }
                tile_output_rows(dout, g, OC, n, oh0, ow0, zeros, dy);
                if (dweight) tf.dout(dy, OC, dm + (int64_t)r * OC, TB * OC);
                if (dbias)
                    for (int k = 0; k < 4; ++k)
                        if (dy[k] != zeros)
                            for (int oc = 0; oc < OC; ++oc) db[oc] += dy[k][oc];
            }
            if (dweight)
                for (int xi = 0; xi < kXi; ++xi)
                    gemm::gemm_serial(C, OC, nt, gemm::MatView{v + xi * TB * C, C}, true,
                                      gemm::MatView{dm + xi * TB * OC, OC}, false, du + xi * CO,
                                      OC, !first);
            first = false;
        }
        if (first && dweight) std::fill(du, du + kXi * CO, 0.f);  // a worker without blocks
    }
    // The workers' sums, added into worker 0's, then turned back into the 3x3 kernel.
    const int64_t nsum = dweight ? kXi * CO : 0;
#pragma omp parallel for schedule(static) if (nsum > 16384)
    for (int64_t e = 0; e < nsum; ++e) {
        float s = part[e];
        for (int64_t w = 1; w < workers; ++w) s += part[w * stride + e];
        part[e] = s;
    }
    if (dweight) weight_grad_transform(part, C, OC, dweight);
    if (dbias)
        for (int oc = 0; oc < OC; ++oc) {
            float s = 0.f;
            for (int64_t w = 0; w < workers; ++w) s += part[w * stride + kXi * CO + oc];
            dbias[oc] = s;
        }
}

}  // namespace conv

void set_winograd(bool enabled) { conv::g_enabled.store(enabled); }
bool winograd_enabled() { return conv::g_enabled.load(); }

}  // namespace cnnkit
