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
// The forward pass runs through conv2d_winograd_forward.cpp and the weight gradient through
// conv2d_winograd_weight_grad.cpp, which F(4x4, 3x3) (conv2d_winograd_f4.cpp) shares; this file
// holds F(2x2)'s transforms and which tile size runs where. The transforms are compiled for the
// build's baseline and, where the x86 kernels are, for AVX2 and AVX-512 (picked by
// cpu::active_isa() once per call).
// F(2x2, 3x3)'s float32 error is of the order of the direct sum's (its constants are 1 and 1/2).
#include <algorithm>
#include <atomic>

#include "conv2d_winograd.h"

namespace cnnkit {
namespace conv {
namespace {

using namespace winograd;

constexpr int kXi = 16;  // positions of the 4x4 transformed tile
std::atomic<bool> g_enabled{true};
std::atomic<int> g_tile{0};  // 0: the measured rule (winograd_output_tile), else 2 or 4
std::atomic<bool> g_fused{true};

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

// The forward pass writes V straight into the GEMM's packed layout (winograd::PanelFn). A separate
// pack_a of row-major V cost more than the GEMM at 64 channels (a strided scalar copy); here each
// transformed value is stored once.
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
// in vectors, then each xi's 6 x 8 block stored transposed (store_6x8_transposed).
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
        for (int xi = 0; xi < kXi; ++xi)
            store_6x8_transposed(v[xi], dst + xi * xs + (int64_t)(c - c0) * 6);
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

#define CNNKIT_WINO_VARIANT(SUFFIX, ATTR, PANEL)                                                   \
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
    const WeightGradTiles weight_grad_##SUFFIX = {2, input_##SUFFIX, dout_##SUFFIX,               \
                                                  weight_grad_transform};                         \
    const ForwardTiles forward_##SUFFIX = {                                                       \
        2, kernel_transform, input_panel_scalar, PANEL, input_##SUFFIX,                           \
        {{output_##SUFFIX<false, false>, output_##SUFFIX<false, true>},                           \
         {output_##SUFFIX<true, false>, output_##SUFFIX<true, true>}}};

CNNKIT_WINO_VARIANT(base, , nullptr)
#ifdef CNNKIT_X86_KERNELS
CNNKIT_WINO_VARIANT(avx2, __attribute__((target("avx2,fma"))), input_panel_mr6_avx2)
CNNKIT_WINO_VARIANT(avx512, __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"))),
                    input_panel_mr6_avx2)
#endif

const WeightGradTiles& f2_weight_grad_tiles() { return CNNKIT_WINO_PICK(weight_grad); }

const ForwardTiles& f2_tiles() { return CNNKIT_WINO_PICK(forward); }

// The shapes either tile size can take: 3x3, stride 1, undilated, at least a 2x2 output.
bool tiles_take(const Window2d& g) {
    return g.KH == 3 && g.KW == 3 && g.SH == 1 && g.SW == 1 && g.DH == 1 && g.DW == 1 &&
           g.OH >= 2 && g.OW >= 2;
}

bool f2_rule(const Window2d& g, int OC) {
    // Measured against the direct paths (bench/winograd.py, batch 32-128, 2 threads, AVX2 Zen 3):
    // the forward pass gains 1.2-2.4x from 24 channels in and out on images of 7x7 and more
    // (airbench94's 24->64 at 31x31 1.3x, 64->256 at 15x15 2.4x); 16->16 lost (0.8x). A tile
    // grid that overhangs the output by more than a third of its area loses too: 3x3 images
    // (4x4 computed per 3x3 used) ran 0.9x.
    return g.C >= kWinogradMinChannels && OC >= kWinogradMinChannels && TileGrid(g, 2).fits(g);
}

bool f4_rule(const Window2d& g, int OC) {
    // Where F(2x2) runs, F(4x4) wherever its tiles make fewer products: 36 per 4x4 tile against
    // 16 per 2x2 one, counting the tiles that overhang the output (a 6x6 image: 4 tiles of 4x4
    // against 9 of 2x2, 144 products each way, stays on F(2x2)). Measured against F(2x2) and the
    // direct paths (bench/winograd.py, batch 8-1024, 2 threads, AVX2 Zen 3, quiet): F(4x4) was
    // faster at every shape F(2x2) runs, forward 1.1-1.55x F(2x2)'s speed (airbench94's 64->256
    // on 15x15: 2.8x the direct path against 1.8x; 256->256 on 7x7: 2.1x against 1.6x; 64->64
    // on 9x9 1.3x against 1.2x), the backward passes 1.0-1.5x. Up to 256 channels in and out:
    // larger layers were not measured, and stay on F(2x2).
    const int64_t f4 = (int64_t)TileGrid(g, 4).TH * TileGrid(g, 4).TW * 36;
    const int64_t f2 = (int64_t)TileGrid(g, 2).TH * TileGrid(g, 2).TW * 16;
    return f2_rule(g, OC) && g.C + OC <= kWinogradF4MaxChannels && f4 < f2;
}

bool f4_weight_grad_rule(const Window2d& g, int OC) {
    // Where the forward pass takes it and F(2x2)'s weight gradient would run (64+ outputs).
    return f4_rule(g, OC) && OC >= kWinogradWeightGradMinOC;
}

// Whether the forward pass of tile size `tile` takes the unpacked driver (forward_fused), which
// gives the packed one's outputs bit for bit. Measured against it (bench/winograd.py, F(4x4)
// forced, batch 64-256, 1 and 2 threads, AVX2 Zen 3): faster on ResNet-20's 16->16 at 32x32
// (1.05-1.2x), 32->32 at 16x16 (1.0-1.25x) and 64->64 at 8x8 (1.0-1.25x), even at the seed CNN's
// 32->32 at 32x32, slower with more channels on larger images (airbench94's 24->64 at 31x31 and
// 64->64 at 15x15: 0.85-1.0x, where a block of few tiles reads all of U from L3; 256 channels:
// 0.4-0.6x; the seed CNN's 64->64 at 13x13 outputs 0.94-0.96x). So: up to 64 channels in and
// out together, or 128 on outputs up to 8x8. Only F(4x4)'s was measured.
bool fused_rule(const Window2d& g, int OC, int tile) {
    if (!g_fused.load(std::memory_order_relaxed) || tile != 4 || !fused_available(OC)) return false;
    return g.C + OC <= 64 || (g.C + OC <= 128 && g.OH <= 8 && g.OW <= 8);
}

}  // namespace

int winograd_output_tile(const Window2d& g, int OC) {
    if (!g_enabled.load(std::memory_order_relaxed) || !tiles_take(g)) return 0;
    const int forced = g_tile.load(std::memory_order_relaxed);
    if (forced) return forced;
    if (f4_rule(g, OC)) return 4;
    return f2_rule(g, OC) ? 2 : 0;
}

bool winograd_applies(const Window2d& g, int OC) { return winograd_output_tile(g, OC) != 0; }

int winograd_weight_grad_tile(const Window2d& g, int OC) {
    if (!g_enabled.load(std::memory_order_relaxed) || !tiles_take(g)) return 0;
    const int forced = g_tile.load(std::memory_order_relaxed);
    if (forced) return forced;
    if (f4_weight_grad_rule(g, OC)) return 4;
    // The weight gradient's GEMMs sum over tiles into 16 C x OC partial sums; with fewer than
    // 64 outputs they ran slower than the direct kernels (32->32: 0.8-0.9x; 64->64 1.0-1.3x,
    // 64->256 1.5-1.7x, 256->256 at 7x7 1.1-1.35x, same bench).
    return f2_rule(g, OC) && OC >= kWinogradWeightGradMinOC ? 2 : 0;
}

bool winograd_weight_grad_applies(const Window2d& g, int OC) {
    return winograd_weight_grad_tile(g, OC) != 0;
}

void winograd_forward(float* out, const float* inp, const float* weight, const float* bias,
                      const Window2d& g, int OC, bool relu, const float* residual) {
    const int tile = winograd_output_tile(g, OC);
    const ForwardTiles& tf = tile == 4 ? f4_tiles() : f2_tiles();
    if (fused_rule(g, OC, tile))
        return winograd::forward_fused(tf, out, inp, weight, bias, g, OC, relu, residual);
    winograd::forward(tf, out, inp, weight, bias, g, OC, relu, residual);
}

WinogradChoice winograd_choice(const Window2d& g, int OC, bool in_cache) {
    WinogradChoice c;
    c.tile = winograd_output_tile(g, OC);
    if (c.tile == 0 && in_cache && g_enabled.load(std::memory_order_relaxed) && tiles_take(g) &&
        g.C >= kWinogradHotMinChannels && OC >= kWinogradHotMinChannels &&
        g.C + OC <= 64 && fused_available(OC) && TileGrid(g, 4).fits(g))
        // An inference plan's passes keep their activations in cache, where the transforms'
        // reads no longer wait on memory: ResNet-20's .keras file (batch 64, 1 MB passes, AVX2
        // Zen 3, three alternating runs) predicted 1.06-1.20x faster with its 16->16 layers on
        // F(4x4) unpacked than on the direct kernel, at 1 and 2 threads.
        c.tile = 4;
    c.fused = c.tile != 0 && fused_rule(g, OC, c.tile);
    return c;
}

static const ForwardTiles& tiles_of(WinogradChoice c) { return c.tile == 4 ? f4_tiles() : f2_tiles(); }

int64_t winograd_prepared_floats(WinogradChoice c, const Window2d& g, int OC) {
    return winograd::prepared_floats(tiles_of(c), g.C, OC, c.fused);
}

void winograd_prepare(float* dst, WinogradChoice c, const float* weight, const Window2d& g, int OC) {
    winograd::prepare(tiles_of(c), weight, g.C, OC, c.fused, dst);
}

void winograd_forward_prepared(float* out, const float* inp, const float* prepared,
                               WinogradChoice c, const float* bias, const Window2d& g, int OC,
                               bool relu, const float* residual) {
    if (c.fused)
        return winograd::forward_fused(tiles_of(c), out, inp, nullptr, bias, g, OC, relu,
                                       residual, prepared);
    winograd::forward(tiles_of(c), out, inp, nullptr, bias, g, OC, relu, residual, prepared);
}

void winograd_weight_grad(float* dweight, float* dbias, const float* dout, const float* inp,
                          const Window2d& g, int OC) {
    const WeightGradTiles& tf =
        winograd_weight_grad_tile(g, OC) == 4 ? f4_weight_grad_tiles() : f2_weight_grad_tiles();
    winograd::weight_grad(tf, dweight, dbias, dout, inp, g, OC);
}

}  // namespace conv

void set_winograd(bool enabled) { conv::g_enabled.store(enabled); }
bool winograd_enabled() { return conv::g_enabled.load(); }
void set_winograd_tile(int m) { conv::g_tile.store(m == 2 || m == 4 ? m : 0); }
int winograd_tile() { return conv::g_tile.load(); }
void set_winograd_fused(bool enabled) { conv::g_fused.store(enabled); }
bool winograd_fused_enabled() { return conv::g_fused.load(); }

}  // namespace cnnkit
