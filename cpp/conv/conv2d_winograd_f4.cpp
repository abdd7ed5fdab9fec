// conv/conv2d_winograd_f4.cpp: the transforms of Winograd's F(4x4, 3x3) (Lavin and Gray, 2015),
// for the forward pass of conv2d_winograd_forward.cpp. Each 4x4 block of outputs reads a 6x6
// block of input; its 36 transformed positions make 36 GEMMs, 36 multiplications per tile and
// channel pair where the direct sum takes 144 (4x fewer; F(2x2)'s 16 for 36 are 2.25x).
//   U = G g G^T  kernel, G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
//                                1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   V = B^T d B  input,  B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
//                                0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   Y = A^T M A  output, A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// The weight gradient is the adjoint chain (conv2d_winograd.h): dM = A dY A^T (6x6 from 4x4),
// dU[xi] = sum over tiles of V[xi]^T dM[xi], dW = G^T dU G.
// The price is rounding: constants up to 8 (and 1/6, 1/24, which float32 cannot hold) make its
// float32 error several times the direct sum's (tests/test_kernels_winograd.py bounds it).
#include "conv2d_winograd.h"

namespace cnnkit {
namespace conv {
namespace winograd {
namespace {

constexpr int kXi = 36;  // positions of the 6x6 transformed tile

// r[k] = (B^T d)[k] of one column d0..d5, in the fewest operations: B^T's rows 1-4 pair up.
template <class T>
CNNKIT_WINO_INLINE void bt(const T& d0, const T& d1, const T& d2, const T& d3, const T& d4,
                           const T& d5, T* r) {
    const T t0 = d4 - 4.f * d2, t1 = d3 - 4.f * d1, t2 = d4 - d2, t3 = 2.f * (d3 - d1);
    r[0] = 4.f * d0 - 5.f * d2 + d4;
    r[1] = t0 + t1;
    r[2] = t0 - t1;
    r[3] = t2 + t3;
    r[4] = t2 - t3;
    r[5] = 4.f * d1 - 5.f * d3 + d5;
}

// y[a] = (A^T m)[a] of one column m0..m5.
template <class T>
CNNKIT_WINO_INLINE void at(const T& m0, const T& m1, const T& m2, const T& m3, const T& m4,
                           const T& m5, T* y) {
    const T p = m1 + m2, q = m1 - m2, s = m3 + m4, t = m3 - m4;
    y[0] = m0 + p + s;
    y[1] = q + 2.f * t;
    y[2] = p + 4.f * s;
    y[3] = q + 8.f * t + m5;
}

// r[k] = (A y)[k] of one column y0..y3 of output gradients (A = (A^T)^T, 6x4).
template <class T>
CNNKIT_WINO_INLINE void a_col(const T& y0, const T& y1, const T& y2, const T& y3, T* r) {
    const T e = y0 + y2, o = y1 + y3, e4 = y0 + 4.f * y2, o8 = 2.f * y1 + 8.f * y3;
    r[0] = y0;
    r[1] = e + o;
    r[2] = e - o;
    r[3] = e4 + o8;
    r[4] = e4 - o8;
    r[5] = y3;
}

// r[k] = (G^T x)[k] of one column x0..x5 of dU (G^T is 3x6).
CNNKIT_WINO_INLINE void gt_col(float x0, float x1, float x2, float x3, float x4, float x5,
                               float* r) {
    const float p = x1 + x2, q = x2 - x1, s = x3 + x4, t = x3 - x4;
    r[0] = 0.25f * x0 - (1.f / 6.f) * p + (1.f / 24.f) * s;
    r[1] = (1.f / 6.f) * q + (1.f / 12.f) * t;
    r[2] = (1.f / 6.f) * (s - p) + x5;
}

// Channels in lanes of GCC's vector extension, so that bt's and at's formulas serve every width;
// memory is read and written by memcpy (unaligned, and aliasing the floats).
template <class Vec>
struct Lanes {
    using V = Vec;
    static CNNKIT_WINO_INLINE V load(const float* p) {
        V v;
        __builtin_memcpy(&v, p, sizeof v);
        return v;
    }
    static CNNKIT_WINO_INLINE void store(float* p, const V& v) { __builtin_memcpy(p, &v, sizeof v); }
};
typedef float v8sf __attribute__((vector_size(32)));
using Lanes1 = Lanes<float>;
using Lanes8 = Lanes<v8sf>;

// V of one tile, the channels c .. in L's lanes: out[xi * xs] = (B^T d B)[xi], from the 36
// input rows d[y*6 + x].
template <class L>
CNNKIT_WINO_INLINE void input_lanes(const float* const* d, int c, float* out, int64_t xs) {
    using V = typename L::V;
    V t[6][6];  // t[k][x] = (B^T d)[k][x]
    for (int x = 0; x < 6; ++x) {
        V r[6];
        bt(L::load(d[x] + c), L::load(d[6 + x] + c), L::load(d[12 + x] + c),
           L::load(d[18 + x] + c), L::load(d[24 + x] + c), L::load(d[30 + x] + c), r);
        for (int k = 0; k < 6; ++k) t[k][x] = r[k];
    }
    for (int k = 0; k < 6; ++k) {
        V r[6];
        bt(t[k][0], t[k][1], t[k][2], t[k][3], t[k][4], t[k][5], r);
#pragma GCC unroll 6
        for (int j = 0; j < 6; ++j) L::store(out + (k * 6 + j) * xs, r[j]);
    }
}

// V in the GEMM's packed layout (winograd::PanelFn), a channel at a time.
void input_panel_scalar(const float* const* d, int MR, int c0, int c1, float* dst, int64_t xs) {
    float v[kXi];
    for (int i = 0; i < MR; ++i)
        for (int c = c0; c < c1; ++c) {
            input_lanes<Lanes1>(d + i * kXi, c, v, 1);
            for (int xi = 0; xi < kXi; ++xi) dst[xi * xs + (int64_t)(c - c0) * MR + i] = v[xi];
        }
}

#ifdef CNNKIT_X86_KERNELS
// MR = 6: 8 channels of 6 tiles at a time, transformed in vectors, then each xi's 6 x 8 block
// stored transposed.
__attribute__((target("avx2,fma"))) void input_panel_mr6_avx2(const float* const* d, int MR,
                                                               int c0, int c1, float* dst,
                                                               int64_t xs) {
    int c = c0;
    for (; c + 8 <= c1; c += 8) {
        alignas(32) float v[kXi][6][8];  // v[xi][tile][channel]
        for (int i = 0; i < 6; ++i) input_lanes<Lanes8>(d + i * kXi, c, v[0][i], 6 * 8);
        for (int xi = 0; xi < kXi; ++xi)
            store_6x8_transposed(reinterpret_cast<const __m256*>(v[xi]),
                                 dst + xi * xs + (int64_t)(c - c0) * 6);
    }
    if (c < c1) input_panel_scalar(d, MR, c, c1, dst + (int64_t)(c - c0) * 6, xs);
}
#endif

// The 4x4 outputs (winograd::OutputFn) of the output channels oc .. in L's lanes (the loop over
// channels did not vectorise by itself, through the arrays of partial sums).
template <bool RELU, bool RES, class L>
CNNKIT_WINO_INLINE void output_lanes(const float* m, int64_t xs, int oc, const float* bias,
                                     const float* const* res, float* const* y) {
    using V = typename L::V;
    const float* mo = m + oc;
    V s[4][6];  // s[a][j] = (A^T M)[a][j]
    for (int j = 0; j < 6; ++j) {
        V r[4];
        at(L::load(mo + j * xs), L::load(mo + (6 + j) * xs), L::load(mo + (12 + j) * xs),
           L::load(mo + (18 + j) * xs), L::load(mo + (24 + j) * xs), L::load(mo + (30 + j) * xs),
           r);
        for (int a = 0; a < 4; ++a) s[a][j] = r[a];
    }
    const V zero{}, b = L::load(bias + oc);
    for (int a = 0; a < 4; ++a) {
        V r[4];
        at(s[a][0], s[a][1], s[a][2], s[a][3], s[a][4], s[a][5], r);
        for (int k = 0; k < 4; ++k) {
            V o = r[k] + b;
            if (RES) o += L::load(res[a * 4 + k] + oc);
            if (RELU) o = o < zero ? zero : o;  // NaN is not < 0: it passes, as relu_forward's
            L::store(y[a * 4 + k] + oc, o);
        }
    }
}

// dM of one tile (winograd::DoutFn), output channels oc .. in L's lanes, from the 16 rows
// dy[a*4 + b].
template <class L>
CNNKIT_WINO_INLINE void dout_lanes(const float* const* dy, int oc, float* dm, int64_t xs) {
    using V = typename L::V;
    V t[6][4];  // t[k][b] = (A dY)[k][b]
    for (int b = 0; b < 4; ++b) {
        V r[6];
        a_col(L::load(dy[b] + oc), L::load(dy[4 + b] + oc), L::load(dy[8 + b] + oc),
              L::load(dy[12 + b] + oc), r);
        for (int k = 0; k < 6; ++k) t[k][b] = r[k];
    }
    for (int k = 0; k < 6; ++k) {
        V r[6];
        a_col(t[k][0], t[k][1], t[k][2], t[k][3], r);
#pragma GCC unroll 6
        for (int j = 0; j < 6; ++j) L::store(dm + (k * 6 + j) * xs + oc, r[j]);
    }
}

// dweight (3,3,C,OC) = G^T dU G, from du[(xi*C + c)*OC + oc]. Parallel over input channels.
void weight_grad_transform(const float* du, int C, int OC, float* dweight) {
    const int64_t CO = (int64_t)C * OC;
#pragma omp parallel for schedule(static) if (CO > 16384)
    for (int c = 0; c < C; ++c) {
        for (int oc = 0; oc < OC; ++oc) {
            float p[3][6];  // p[ky][j] = (G^T dU)[ky][j]
            for (int j = 0; j < 6; ++j) {
                float x[6], r[3];
                for (int i = 0; i < 6; ++i) x[i] = du[(int64_t)(i * 6 + j) * CO + (int64_t)c * OC + oc];
                gt_col(x[0], x[1], x[2], x[3], x[4], x[5], r);
                for (int ky = 0; ky < 3; ++ky) p[ky][j] = r[ky];
            }
            for (int ky = 0; ky < 3; ++ky) {
                float r[3];
                gt_col(p[ky][0], p[ky][1], p[ky][2], p[ky][3], p[ky][4], p[ky][5], r);
                for (int kx = 0; kx < 3; ++kx)
                    dweight[(int64_t)(ky * 3 + kx) * CO + (int64_t)c * OC + oc] = r[kx];
            }
        }
    }
}

// r[i] = (G w)[i] of one column w0..w2 of the kernel.
template <class T>
CNNKIT_WINO_INLINE void g_col(const T& w0, const T& w1, const T& w2, T* r) {
    const T p = w0 + w2;
    r[0] = 0.25f * w0;
    r[1] = (-1.f / 6.f) * (p + w1);
    r[2] = (-1.f / 6.f) * (p - w1);
    r[3] = (1.f / 24.f) * w0 + (1.f / 12.f) * w1 + (1.f / 6.f) * w2;
    r[4] = (1.f / 24.f) * w0 - (1.f / 12.f) * w1 + (1.f / 6.f) * w2;
    r[5] = w2;
}

// U = G g G^T of the output channels in L's lanes of one input channel: tap k of the 3x3 kernel
// at w[k * CO], position xi of U at u[xi * CO].
template <class L>
CNNKIT_WINO_INLINE void kernel_lanes(const float* w, int64_t CO, float* u) {
    using V = typename L::V;
    V t[6][3];  // t[i][x] = (G g)[i][x]
    for (int x = 0; x < 3; ++x) {
        V r[6];
        g_col(L::load(w + x * CO), L::load(w + (3 + x) * CO), L::load(w + (6 + x) * CO), r);
        for (int i = 0; i < 6; ++i) t[i][x] = r[i];
    }
    for (int i = 0; i < 6; ++i) {
        V r[6];
        g_col(t[i][0], t[i][1], t[i][2], r);
#pragma GCC unroll 6
        for (int j = 0; j < 6; ++j) L::store(u + (i * 6 + j) * CO, r[j]);
    }
}

// L: the lanes the channels go in, W of them; the last OC % W channels go one at a time. AVX-512
// keeps AVX2's 8 lanes (a 64-byte vector returned by value would change the ABI between
// translation units built without it).
#define CNNKIT_WINO_F4_VARIANT(SUFFIX, ATTR, PANEL, L, W)                                          \
    /* u[(xi*C + c)*OC + oc] = (G g G^T)[xi] of weight (3,3,C,OC), input channel c */              \
    ATTR void kernel_row_##SUFFIX(const float* weight, int64_t CO, int OC, int c, float* u) {      \
        const int64_t at = (int64_t)c * OC;                                                       \
        int oc = 0;                                                                               \
        for (; oc + W <= OC; oc += W) kernel_lanes<L>(weight + at + oc, CO, u + at + oc);         \
        for (; oc < OC; ++oc) kernel_lanes<Lanes1>(weight + at + oc, CO, u + at + oc);            \
    }                                                                                             \
    void kernel_##SUFFIX(const float* weight, int C, int OC, float* u) {                          \
        const int64_t CO = (int64_t)C * OC;                                                       \
        _Pragma("omp parallel for schedule(static) if (CO > 16384)")                              \
        for (int c = 0; c < C; ++c) kernel_row_##SUFFIX(weight, CO, OC, c, u);                    \
    }                                                                                             \
    template <bool RELU, bool RES>                                                                \
    ATTR void output_##SUFFIX(const float* m, int64_t xs, int OC, const float* bias,              \
                              const float* const* res, float* const* y) {                         \
        int oc = 0;                                                                               \
        for (; oc + W <= OC; oc += W) output_lanes<RELU, RES, L>(m, xs, oc, bias, res, y);        \
        for (; oc < OC; ++oc) output_lanes<RELU, RES, Lanes1>(m, xs, oc, bias, res, y);           \
    }                                                                                             \
    ATTR void input_rows_##SUFFIX(const float* const* d, int C, float* v, int64_t xs) {           \
        int c = 0;                                                                                \
        for (; c + W <= C; c += W) input_lanes<L>(d, c, v + c, xs);                              \
        for (; c < C; ++c) input_lanes<Lanes1>(d, c, v + c, xs);                                 \
    }                                                                                             \
    ATTR void dout_##SUFFIX(const float* const* dy, int OC, float* dm, int64_t xs) {              \
        int oc = 0;                                                                               \
        for (; oc + W <= OC; oc += W) dout_lanes<L>(dy, oc, dm, xs);                              \
        for (; oc < OC; ++oc) dout_lanes<Lanes1>(dy, oc, dm, xs);                                 \
    }                                                                                             \
    const ForwardTiles tiles_##SUFFIX = {                                                         \
        4, kernel_##SUFFIX, input_panel_scalar, PANEL, input_rows_##SUFFIX,                       \
        {{output_##SUFFIX<false, false>, output_##SUFFIX<false, true>},                           \
         {output_##SUFFIX<true, false>, output_##SUFFIX<true, true>}}};                           \
    const WeightGradTiles weight_grad_##SUFFIX = {4, input_rows_##SUFFIX, dout_##SUFFIX,          \
                                                  weight_grad_transform};

CNNKIT_WINO_F4_VARIANT(base, , nullptr, Lanes1, 1)
#ifdef CNNKIT_X86_KERNELS
CNNKIT_WINO_F4_VARIANT(avx2, __attribute__((target("avx2,fma"))), input_panel_mr6_avx2, Lanes8, 8)
CNNKIT_WINO_F4_VARIANT(avx512, __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"))),
                       input_panel_mr6_avx2, Lanes8, 8)
#endif

}  // namespace

const ForwardTiles& f4_tiles() { return CNNKIT_WINO_PICK(tiles); }

const WeightGradTiles& f4_weight_grad_tiles() { return CNNKIT_WINO_PICK(weight_grad); }

}  // namespace winograd
}  // namespace conv
}  // namespace cnnkit
