// gemm.h: packed, register-blocked single-precision GEMM (after BLIS), shared by conv2d and dense.
//
// C[M,N] (=, or += with `accumulate`) A[M,K] * B[K,N] (+ a bias row). A and B are read through
// views (a strided matrix, or an implicit im2col of an NHWC batch, so no patch matrix is ever
// built) and packed into MR-row / NR-column micro-panels in KC-deep blocks; a micro-kernel keeps
// an MR x NR tile of C in registers. The micro-kernels live in gemm.cpp: AVX-512 (6x32), AVX2+FMA
// (6x16) and portable C++, picked by cpu::active_isa() (cpu_features.h). Everything here is
// baseline C++; only the micro-kernels use wider instructions. Packing buffers are thread_local
// and grow, so a warm caller allocates nothing. Nothing here throws or checks arguments.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnnkit {
namespace gemm {

// ---------------------------------------------------------------- micro-kernels (gemm.cpp)
// c[MR x NR, row stride ldc] (=, or += when acc) sum over k < kc of a[k*MR + i] * b[k*NR + j],
// plus bias[j] when bias is not null.
using UKernel = void (*)(int kc, const float* a, const float* b, float* c, int64_t ldc, bool acc,
                         const float* bias);

struct Kernel {
    const char* name;
    int mr, nr;  // register tile
    int mc, kc;  // cache blocks: an MC x KC block of A stays in L2, a KC x NR panel of B in L1
    int nc;      // columns of B packed at a time by gemm_serial
    UKernel fn;
};
constexpr int kMaxMR = 8, kMaxNR = 64;  // bounds of every kernel's tile (edge-tile scratch)

// The kernel chosen by simd_isa()/set_simd_isa(); callers copy it once per call so a switch in
// the middle of a call cannot mix tile shapes.
const Kernel& active_kernel();

// ---------------------------------------------------------------- buffers
template <class T>
struct AlignedAllocator {
    using value_type = T;
    AlignedAllocator() = default;
    template <class U>
    AlignedAllocator(const AlignedAllocator<U>&) {}
    T* allocate(std::size_t n) {
        return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
    }
    void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
    template <class U>
    bool operator==(const AlignedAllocator<U>&) const { return true; }
    template <class U>
    bool operator!=(const AlignedAllocator<U>&) const { return false; }
};
using Buffer = std::vector<float, AlignedAllocator<float>>;

// Grows b to at least n floats (never shrinks) and returns its storage.
inline float* reserve(Buffer& b, std::size_t n) {
    if (b.size() < n) b.resize(n);
    return b.data();
}

// The runs copied while packing are short (KW*C floats of a patch row, often < 16): fixed-size
// chunks the compiler inlines beat a call to memcpy.
inline void copy_strided(const float* s, int n, float* d, int64_t ds) {
    if (ds == 1) {
        int i = 0;
        for (; i + 4 <= n; i += 4) std::memcpy(d + i, s + i, 4 * sizeof(float));
        for (; i < n; ++i) d[i] = s[i];
    } else {
        for (int i = 0; i < n; ++i) d[i * ds] = s[i];
    }
}
inline void zero_strided(int n, float* d, int64_t ds) {
    for (int i = 0; i < n; ++i) d[i * ds] = 0.f;
}

// ---------------------------------------------------------------- views
// Every view has copy_row(r, c0, n, dst, ds): logical elements (r, c0 .. c0+n-1) to
// dst[0], dst[ds], ... The GEMM asks for the view or its transpose, as the packing needs.

// Views also have pack_rows(r0, mr, c0, n, dst, S): rows r0 .. r0+mr-1, columns c0 .. c0+n-1,
// element (i, c) to dst[(c - c0) * S + i] (an MR-row panel of A, or an NR-column panel of a
// transposed B); rows mr .. S-1 are left alone.

// A row-major matrix with leading dimension ld.
struct MatView {
    const float* p;
    int64_t ld;
    void copy_row(int64_t r, int64_t c0, int n, float* dst, int64_t ds) const {
        copy_strided(p + r * ld + c0, n, dst, ds);
    }
    void copy_rows(int64_t r0, int nr, int64_t c0, int n, float* dst, int64_t dld) const {
        for (int r = 0; r < nr; ++r) std::memcpy(dst + r * dld, p + (r0 + r) * ld + c0, sizeof(float) * n);
    }
    void pack_rows(int64_t r0, int mr, int64_t c0, int n, float* dst, int S) const {
        for (int i = 0; i < mr; ++i) copy_strided(p + (r0 + i) * ld + c0, n, dst + i, S);
    }
};

// d[q*S + i] = src[i][q] for q < n, i < S: interleaves S rows into one packed panel.
template <int S>
inline void interleave(const float* const* src, int n, float* d) {
    for (int q = 0; q < n; ++q)
        for (int i = 0; i < S; ++i) d[q * S + i] = src[i][q];
}

// The patch matrix of an NHWC batch: row m is output pixel (n, oh, ow) of the (N,OH,OW) grid,
// column k is (dy, dx, c) in (KH, KW, C) order, so that patches * weight (KH*KW*C, OC) is the
// convolution. Positions outside the image read as zero.
struct Im2colView {
    const float* inp;
    int H, W, C, KH, KW, SH, SW, PT, PL, OH, OW;

    // The columns of one kernel row dy are KW*C consecutive floats of the input row (the
    // horizontal neighbours of a pixel are adjacent in NHWC), so a row copies as at most KH runs.
    void copy_row(int64_t r, int64_t c0, int n, float* dst, int64_t ds) const {
        const int64_t per_img = (int64_t)OH * OW;
        const int64_t img = r / per_img;
        const int rem = (int)(r - img * per_img);
        copy_pixel(img, rem / OW, rem % OW, c0, n, dst, ds);
    }
    // Rows r0 .. r0+nr-1 to dst, dst + ld, ...: consecutive output pixels, stepped, not divided.
    void copy_rows(int64_t r0, int nr, int64_t c0, int n, float* dst, int64_t ld) const {
        const int64_t per_img = (int64_t)OH * OW;
        int64_t img = r0 / per_img;
        const int rem = (int)(r0 - img * per_img);
        int oh = rem / OW, ow = rem % OW;
        for (int r = 0; r < nr; ++r) {
            copy_pixel(img, oh, ow, c0, n, dst + r * ld, 1);
            if (++ow == OW) {
                ow = 0;
                if (++oh == OH) {
                    oh = 0;
                    ++img;
                }
            }
        }
    }
    void copy_pixel(int64_t img, int oh, int ow, int64_t c0, int n, float* dst, int64_t ds) const {
        const int ih0 = oh * SH - PT, iw0 = ow * SW - PL;
        const int rowlen = KW * C;
        const int qa = std::max(0, -iw0) * C;                      // first valid column in a row
        const int qb = std::max(0, std::min(KW, W - iw0)) * C;     // one past the last
        const float* base = inp + img * H * W * C;
        int dy = (int)(c0 / rowlen), q = (int)(c0 - (int64_t)dy * rowlen);
        while (n > 0) {
            const int qe = std::min(rowlen, q + n);
            const int ih = ih0 + dy;
            if (ih < 0 || ih >= H) {
                zero_strided(qe - q, dst, ds);
            } else {
                const int lo = std::min(std::max(qa, q), qe), hi = std::min(std::max(qb, lo), qe);
                const int64_t off = ((int64_t)ih * W + iw0) * C;  // offset of column q = 0
                zero_strided(lo - q, dst, ds);
                copy_strided(base + off + lo, hi - lo, dst + (lo - q) * ds, ds);
                zero_strided(qe - hi, dst + (hi - q) * ds, ds);
            }
            dst += (qe - q) * ds;
            n -= qe - q;
            q = 0;
            ++dy;
        }
    }

    // Consecutive rows are neighbouring output pixels: their geometry is stepped, not divided,
    // and a run of columns where every row reads inside the image is one interleave of mr
    // streams (the common case away from the borders).
    void pack_rows(int64_t r0, int mr, int64_t c0, int n, float* dst, int S) const {
        const int64_t per_img = (int64_t)OH * OW;
        int64_t img = r0 / per_img;
        int rem = (int)(r0 - img * per_img);
        int oh = rem / OW, ow = rem - (rem / OW) * OW;
        int64_t base[kMaxNR];  // offset of the image, row ih0, column iw0 (maybe outside)
        int ih0[kMaxNR], qa[kMaxNR], qb[kMaxNR];
        for (int i = 0; i < mr; ++i) {
            ih0[i] = oh * SH - PT;
            const int iw0 = ow * SW - PL;
            qa[i] = std::max(0, -iw0) * C;
            qb[i] = std::max(0, std::min(KW, W - iw0)) * C;
            base[i] = img * H * W * C + ((int64_t)ih0[i] * W + iw0) * C;
            if (++ow == OW) {
                ow = 0;
                if (++oh == OH) {
                    oh = 0;
                    ++img;
                }
            }
        }
        const int rowlen = KW * C;
        int dy = (int)(c0 / rowlen), q = (int)(c0 - (int64_t)dy * rowlen);
        const float* src[kMaxNR];
        while (n > 0) {
            const int qe = std::min(rowlen, q + n), len = qe - q;
            bool inside = mr == S;
            for (int i = 0; i < mr && inside; ++i) {
                const int ih = ih0[i] + dy;
                inside = ih >= 0 && ih < H && qa[i] <= q && qe <= qb[i];
                if (inside) src[i] = inp + base[i] + (int64_t)dy * W * C + q;
            }
            if (inside && S == 6) {
                interleave<6>(src, len, dst);
            } else if (inside && S == 4) {
                interleave<4>(src, len, dst);
            } else {
                for (int i = 0; i < mr; ++i) {
                    float* d = dst + i;
                    const int ih = ih0[i] + dy;
                    if (ih < 0 || ih >= H) {
                        zero_strided(len, d, S);
                        continue;
                    }
                    const int lo = std::min(std::max(qa[i], q), qe), hi = std::min(std::max(qb[i], lo), qe);
                    const int64_t off = base[i] + (int64_t)dy * W * C;  // of column 0
                    zero_strided(lo - q, d, S);
                    copy_strided(inp + off + lo, hi - lo, d + (int64_t)(lo - q) * S, S);
                    zero_strided(qe - hi, d + (int64_t)(hi - q) * S, S);
                }
            }
            dst += (int64_t)len * S;
            n -= len;
            q = 0;
            ++dy;
        }
    }
};

// A view whose rows start at row r0 of another (a slice of the M or K range).
template <class V>
struct RowOffset {
    V v;
    int64_t r0;
    void copy_row(int64_t r, int64_t c0, int n, float* dst, int64_t ds) const {
        v.copy_row(r + r0, c0, n, dst, ds);
    }
    void copy_rows(int64_t r, int nr, int64_t c0, int n, float* dst, int64_t ld) const {
        v.copy_rows(r + r0, nr, c0, n, dst, ld);
    }
    void pack_rows(int64_t r, int mr, int64_t c0, int n, float* dst, int S) const {
        v.pack_rows(r + r0, mr, c0, n, dst, S);
    }
};

// ---------------------------------------------------------------- packing
// K is cut into equal blocks of at most KC, so that e.g. K = 288 runs as 2 x 144, not 256 + 32.
struct KSplit {
    int64_t K, nblk, step;
    KSplit(int64_t K_, int kc)
        : K(K_), nblk(std::max<int64_t>(1, (K_ + kc - 1) / kc)), step((K_ + nblk - 1) / nblk) {}
    int64_t begin(int64_t b) const { return std::min(b * step, K); }
};

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Panel p of a transposed A from the staged block t (kc rows of V, row stride ld): element
// (i, k) of the panel is t[k * ld + p*S + i]; rows past mr are zero.
template <int S>
inline void transpose_panel(const float* t, int64_t ld, int kc, int mr, float* d) {
    if (mr == S) {
        for (int k = 0; k < kc; ++k)
            for (int i = 0; i < S; ++i) d[k * S + i] = t[k * ld + i];
    } else {
        for (int k = 0; k < kc; ++k)
            for (int i = 0; i < S; ++i) d[k * S + i] = i < mr ? t[k * ld + i] : 0.f;
    }
}

// Rows i0..i0+mc of A, columns k0..k0+kc, into MR-row panels: panel p holds rows p*MR.. at
// dst + p*MR*kc, element (i, k) at [k*MR + i]; rows past mc are zero. For a transposed A, tmp
// holds kc*mc floats.
template <class AV>
void pack_a(const AV& a, bool ta, int64_t i0, int mc, int64_t k0, int kc, int MR, float* dst,
            float* tmp) {
    if (!ta) {
        for (int ip = 0; ip < mc; ip += MR) {
            const int mr = std::min(MR, mc - ip);
            float* p = dst + (int64_t)ip * kc;
            a.pack_rows(i0 + ip, mr, k0, kc, p, MR);
            if (mr < MR)
                for (int k = 0; k < kc; ++k)
                    for (int i = mr; i < MR; ++i) p[(int64_t)k * MR + i] = 0.f;
        }
    } else {
        // A(i, k) = V(k, i): stage the kc rows of V as they lie (contiguous runs), then
        // transpose them panel by panel.
        a.copy_rows(k0, kc, i0, mc, tmp, mc);
        for (int ip = 0; ip < mc; ip += MR) {
            const int mr = std::min(MR, mc - ip);
            float* p = dst + (int64_t)ip * kc;
            if (MR == 6)
                transpose_panel<6>(tmp + ip, mc, kc, mr, p);
            else if (MR == 4)
                transpose_panel<4>(tmp + ip, mc, kc, mr, p);
            else
                for (int k = 0; k < kc; ++k)
                    for (int i = 0; i < MR; ++i) p[k * MR + i] = i < mr ? tmp[k * mc + ip + i] : 0.f;
        }
    }
}

// Rows k0..k0+kc of B, columns j0..j0+nc, into NR-column panels: panel p at dst + p*NR*kc,
// element (k, j) at [k*NR + j]; columns past nc are zero.
template <class BV>
void pack_b_panel(const BV& b, bool tb, int64_t k0, int kc, int64_t j0, int nr, int NR, float* p) {
    if (!tb) {
        for (int k = 0; k < kc; ++k) {
            float* d = p + (int64_t)k * NR;
            b.copy_row(k0 + k, j0, nr, d, 1);
            for (int j = nr; j < NR; ++j) d[j] = 0.f;
        }
    } else {
        b.pack_rows(j0, nr, k0, kc, p, NR);
        if (nr < NR)
            for (int k = 0; k < kc; ++k)
                for (int j = nr; j < NR; ++j) p[(int64_t)k * NR + j] = 0.f;
    }
}

// All of B (K x N) packed once, for callers that sweep many row blocks of A against it.
// Block b of K (rows k0.., depth kc) sits at k0*Npad; its panel of columns j0.. at + j0*kc.
struct PackedB {
    const float* p;
    int64_t K, N, Npad;
    KSplit ks;
    const float* block(int64_t b, int64_t j0) const {
        const int64_t k0 = ks.begin(b), kc = ks.begin(b + 1) - k0;
        return p + k0 * Npad + j0 * kc;
    }
};

template <class BV>
PackedB pack_b_full(const Kernel& kr, const BV& b, bool tb, int64_t K, int64_t N, Buffer& buf) {
    const int64_t Npad = round_up(N, kr.nr);
    float* p = reserve(buf, (std::size_t)(K * Npad));
    const KSplit ks(K, kr.kc);
    const int64_t npan = Npad / kr.nr, ntask = ks.nblk * npan;
#pragma omp parallel for schedule(static) if (ntask * ks.step * kr.nr > 65536)
    for (int64_t t = 0; t < ntask; ++t) {
        const int64_t blk = t / npan, jp = t - blk * npan;
        const int64_t k0 = ks.begin(blk), kc = ks.begin(blk + 1) - k0, j0 = jp * kr.nr;
        pack_b_panel(b, tb, k0, (int)kc, j0, (int)std::min<int64_t>(kr.nr, N - j0), kr.nr,
                     p + k0 * Npad + j0 * kc);
    }
    return PackedB{p, K, N, Npad, ks};
}

// ---------------------------------------------------------------- macro-kernel
// C block (mc x nc) (=, or +=) packed A block (mc x kc) * packed B block (kc x nc) (+ bias,
// the block's own nc entries, if not null), then max(0, C) when relu (the last K block only).
// ReLU runs on each tile right after the micro-kernel stored it, while it is still in L1: a
// separate pass would read and write the whole output again.
inline void macro_kernel(const Kernel& kr, int mc, int nc, int kc, const float* pa,
                         const float* pb, float* c, int64_t ldc, bool acc, const float* bias,
                         bool relu = false) {
    const int MR = kr.mr, NR = kr.nr;
    for (int jp = 0; jp < nc; jp += NR) {
        const int nr = std::min(NR, nc - jp);
        const float* b = pb + (int64_t)jp * kc;
        for (int ip = 0; ip < mc; ip += MR) {
            const int mr = std::min(MR, mc - ip);
            const float* a = pa + (int64_t)ip * kc;
            float* cc = c + ip * ldc + jp;
            const float* bj = bias ? bias + jp : nullptr;
            if (mr == MR && nr == NR) {
                kr.fn(kc, a, b, cc, ldc, acc, bj);
            } else {
                // Edge tile: compute the whole tile aside, keep the part inside C.
                alignas(64) float t[kMaxMR * kMaxNR];
                kr.fn(kc, a, b, t, NR, false, nullptr);
                for (int i = 0; i < mr; ++i)
                    for (int j = 0; j < nr; ++j)
                        cc[i * ldc + j] = (acc ? cc[i * ldc + j] : 0.f) + t[i * NR + j] +
                                          (bj ? bj[j] : 0.f);
            }
            if (relu)
                for (int i = 0; i < mr; ++i)
                    for (int j = 0; j < nr; ++j) {
                        const float v = cc[i * ldc + j];
                        cc[i * ldc + j] = v < 0.f ? 0.f : v;  // NaN passes, as relu_forward
                    }
        }
    }
}

// Packing scratch of the calling thread: A blocks, B blocks (gemm_serial), staged rows of a
// transposed A.
inline Buffer& tl_buf_a() { thread_local Buffer b; return b; }
inline Buffer& tl_buf_b() { thread_local Buffer b; return b; }
inline Buffer& tl_buf_tmp() { thread_local Buffer b; return b; }
// The calling thread's whole-B buffer (PackedB), distinct from the others because the caller
// also works as thread 0 of the team while the packed B is being read.
inline Buffer& tl_buf_fullb() { thread_local Buffer b; return b; }

// C rows i0..i0+mc, columns j0..j0+nc (j0 a multiple of NR) from A rows i0.. and a PackedB.
// Serial; C here points at element (i0, j0). With bias, C = bias (+ C if acc) + A*B; with
// relu, C = max(0, that).
template <class AV>
void gemm_rows(const Kernel& kr, int64_t i0, int64_t mc_total, int64_t j0, int64_t nc,
               const AV& a, bool ta, const PackedB& pb, float* c, int64_t ldc, bool acc,
               const float* bias, bool relu = false) {
    const int MC = kr.mc;
    const int64_t maxkc = pb.ks.step;
    float* pa = reserve(tl_buf_a(), (std::size_t)(round_up(std::min<int64_t>(MC, mc_total), kr.mr) * maxkc));
    float* tmp = ta ? reserve(tl_buf_tmp(), (std::size_t)(MC * maxkc)) : nullptr;
    for (int64_t ic = 0; ic < mc_total; ic += MC) {
        const int mc = (int)std::min<int64_t>(MC, mc_total - ic);
        float* cb = c + ic * ldc;
        for (int64_t blk = 0; blk < pb.ks.nblk; ++blk) {
            const int64_t k0 = pb.ks.begin(blk);
            const int kc = (int)(pb.ks.begin(blk + 1) - k0);
            pack_a(a, ta, i0 + ic, mc, k0, kc, kr.mr, pa, tmp);
            macro_kernel(kr, mc, (int)nc, kc, pa, pb.block(blk, j0), cb, ldc, acc || blk > 0,
                         blk == 0 && bias ? bias + j0 : nullptr, relu && blk == pb.ks.nblk - 1);
        }
    }
}

inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// C (M x N, row stride ldc) (=, or +=) A * B (+ bias) (then max(0, C) with relu), parallel:
// B is packed once, then tiles
// of C (row blocks, and column blocks too when M is too short to feed every thread) are spread
// over the threads; each tile is written by one thread only.
template <class AV, class BV>
void gemm_parallel(int64_t M, int64_t N, int64_t K, const AV& a, bool ta, const BV& b, bool tb,
                   float* c, int64_t ldc, bool acc, const float* bias, bool relu = false) {
    if (M <= 0 || N <= 0) return;
    const Kernel kr = active_kernel();
    if (K <= 0) {
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                const float v = (acc ? c[i * ldc + j] : 0.f) + (bias ? bias[j] : 0.f);
                c[i * ldc + j] = relu && v < 0.f ? 0.f : v;
            }
        return;
    }
    const PackedB pb = pack_b_full(kr, b, tb, K, N, tl_buf_fullb());
    const int T = max_threads();
    int64_t rb = kr.mc;
    if ((M + rb - 1) / rb < T) rb = std::max<int64_t>(kr.mr, round_up((M + T - 1) / T, kr.mr));
    const int64_t mblocks = (M + rb - 1) / rb;
    const int64_t npan = pb.Npad / kr.nr;
    int64_t nblocks = 1;
    if (mblocks < T) nblocks = std::min<int64_t>(npan, (T + mblocks - 1) / mblocks);
    const int64_t cb = ((npan + nblocks - 1) / nblocks) * kr.nr;
    nblocks = (pb.Npad + cb - 1) / cb;
    const int64_t ntask = mblocks * nblocks;
    // Below ~1e5 multiply-adds the team costs more than it saves. Tiles are uneven (edges, a
    // shared machine), hence dynamic; the result does not depend on which thread takes which.
#pragma omp parallel for schedule(dynamic, 1) if (ntask > 1 && (double)M * N * K > 1e5)
    for (int64_t t = 0; t < ntask; ++t) {
        const int64_t ib = t / nblocks, jb = t - ib * nblocks;
        const int64_t i0 = ib * rb, j0 = jb * cb;
        const int64_t mc = std::min(rb, M - i0), nc = std::min(cb, N - j0);
        gemm_rows(kr, i0, mc, j0, nc, a, ta, pb, c + i0 * ldc + j0, ldc, acc, bias, relu);
    }
}

// C (M x N) (=, or +=) A * B on the calling thread only, packing B block by block (for a long
// K, as in a weight gradient, where packing all of B at once would leave the caches).
template <class AV, class BV>
void gemm_serial(int64_t M, int64_t N, int64_t K, const AV& a, bool ta, const BV& b, bool tb,
                 float* c, int64_t ldc, bool acc) {
    if (M <= 0 || N <= 0) return;
    const Kernel kr = active_kernel();
    if (K <= 0) {
        if (!acc)
            for (int64_t i = 0; i < M; ++i) std::fill(c + i * ldc, c + i * ldc + N, 0.f);
        return;
    }
    const KSplit ks(K, kr.kc);
    const int64_t NC = round_up(kr.nc, kr.nr);
    const int64_t mcap = round_up(std::min<int64_t>(kr.mc, M), kr.mr);
    float* pa = reserve(tl_buf_a(), (std::size_t)(mcap * ks.step));
    float* pbuf = reserve(tl_buf_b(), (std::size_t)(std::min(NC, round_up(N, kr.nr)) * ks.step));
    float* tmp = ta ? reserve(tl_buf_tmp(), (std::size_t)(kr.mc * ks.step)) : nullptr;
    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = std::min(NC, N - jc);
        for (int64_t blk = 0; blk < ks.nblk; ++blk) {
            const int64_t k0 = ks.begin(blk);
            const int kc = (int)(ks.begin(blk + 1) - k0);
            for (int64_t jp = 0; jp < nc; jp += kr.nr)
                pack_b_panel(b, tb, k0, kc, jc + jp, (int)std::min<int64_t>(kr.nr, nc - jp), kr.nr,
                             pbuf + jp * kc);
            for (int64_t ic = 0; ic < M; ic += kr.mc) {
                const int mc = (int)std::min<int64_t>(kr.mc, M - ic);
                pack_a(a, ta, ic, mc, k0, kc, kr.mr, pa, tmp);
                macro_kernel(kr, mc, (int)nc, kc, pa, pbuf, c + ic * ldc + jc, ldc, acc || blk > 0,
                             nullptr);
            }
        }
    }
}

}  // namespace gemm
}  // namespace cnnkit
