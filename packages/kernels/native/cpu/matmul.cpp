// CPU matmul: out[M,N] (+)= alpha * op(a)[M,K] @ op(b)[K,N], row-major, f32 accumulation.
//
// Design (after the BLIS/GotoBLAS layering, kept small): the output is cut into tiles of
// MC x NC; each tile is one task of the thread pool and owns an f32 accumulator over the whole
// K, so bf16 outputs are rounded once and tasks never synchronise. Per K-block of KC, the task
// packs its slice of op(a) into MR-row panels and its slice of op(b) into NR-column panels
// (transposes and bf16->f32 happen in packing), then a 6x16 register-blocked micro-kernel runs
// over the panels: written with AVX2+FMA intrinsics where the CPU has them (chosen at run time,
// so one binary serves any x86-64 machine; TINYLLAMA_CPU_KERNELS=generic forces the portable
// loop, itself cloned for AVX2 by the compiler, without FMA, so it gives the same bits on every
// x86-64 CPU). 2-2.9x the portable loop on the development machine (tools/bench/kernels/RESULTS.md).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../common/backend.h"
#include "access.h"
#include "parallel.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TK_X86_AVX2 1
#include <immintrin.h>
#endif

namespace tk::backend {
namespace {

constexpr int64_t MR = 6, NR = 16, MC = 96, NC = 128, KC = 256;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// "avx2", not "arch=haswell": GCC dispatches an arch= clone on the CPU model (Haswell only, so
// every later CPU ran the baseline copy), and that clone fused multiply-adds into FMAs, so the
// generic kernel's bits differed on Haswell from every other CPU. AVX2 alone vectorises the
// loop and rounds as the baseline does.
#define TK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TK_CLONES
#endif

#ifdef TK_X86_AVX2

// The 6 x 16 micro-kernel in AVX2 + FMA: 12 accumulators (6 rows x 2 vectors of 8) stay in
// registers for the whole k loop; one broadcast of a and two loads of b feed 12 FMAs. The
// generic loop below leaves its accumulator array in memory (GCC cannot prove the edge-tile
// store loop does not alias it), which halved the throughput.
__attribute__((target("avx2,fma"))) void computeBlockAvx2(int64_t mc, int64_t nc, int64_t kc,
                                                          const float* Ap, const float* Bp,
                                                          float* acc, int64_t ldAcc) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const float* bp = Bp + (jr / NR) * kc * NR;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const float* ap = Ap + (ir / MR) * kc * MR;
      __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
             c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
             c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(),
             c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
      for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_loadu_ps(bp + k * NR), b1 = _mm256_loadu_ps(bp + k * NR + 8);
        const float* a = ap + k * MR;
        __m256 av = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(av, b0, c00);
        c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(av, b0, c10);
        c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(av, b0, c20);
        c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(av, b0, c30);
        c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(av, b0, c40);
        c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(av, b0, c50);
        c51 = _mm256_fmadd_ps(av, b1, c51);
      }
      alignas(32) float c[MR][NR];
      _mm256_store_ps(c[0], c00), _mm256_store_ps(c[0] + 8, c01);
      _mm256_store_ps(c[1], c10), _mm256_store_ps(c[1] + 8, c11);
      _mm256_store_ps(c[2], c20), _mm256_store_ps(c[2] + 8, c21);
      _mm256_store_ps(c[3], c30), _mm256_store_ps(c[3] + 8, c31);
      _mm256_store_ps(c[4], c40), _mm256_store_ps(c[4] + 8, c41);
      _mm256_store_ps(c[5], c50), _mm256_store_ps(c[5] + 8, c51);
      int64_t rows = std::min(MR, mc - ir), cols = std::min(NR, nc - jr);
      for (int64_t r = 0; r < rows; ++r) {
        float* dst = acc + (ir + r) * ldAcc + jr;
        if (cols == NR) {
          _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), _mm256_load_ps(c[r])));
          _mm256_storeu_ps(dst + 8, _mm256_add_ps(_mm256_loadu_ps(dst + 8), _mm256_load_ps(c[r] + 8)));
        } else {
          for (int64_t j = 0; j < cols; ++j) dst[j] += c[r][j];
        }
      }
    }
  }
}


// Decoding path (M <= 4 rows against W^T, W [N,K] row-major: every linear layer of a decode
// step). The blocked path packs all of W into panels for one row of output, which held M = 1 to
// about 4 GB/s of weights. Here 8 rows of W are loaded as they lie, transposed 8 x 8 in registers,
// and each k's column of 8 weights meets a broadcast of a[m][k]: one FMA chain per output
// element in k order, restarted at every KC block and the blocks summed in order, exactly as the
// micro-kernel above does, so a row computes to the same bits whichever path M selects (KV-cache
// decoding stays bit-identical to recomputing the sequence).
constexpr int64_t GEMV_MAX_M = 4;

__attribute__((target("avx2,fma"))) inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,fma"))) inline __m256 load8(const uint16_t* p) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// r[i] (row i, 8 consecutive k) -> r[j] = column j: {row0[j], ..., row7[j]}.
__attribute__((target("avx2,fma"))) inline void transpose8(__m256* r) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// total[m][0..8) = a[m] . W[n0 + j] for 8 rows of W starting at w (row stride K); a is f32 [M,K].
template <typename T>
__attribute__((target("avx2,fma"))) void gemvRows8(const T* w, int64_t K, const float* a, int64_t M,
                                                   float* total) {
  __m256 tot[GEMV_MAX_M];
  for (int64_t m = 0; m < M; ++m) tot[m] = _mm256_setzero_ps();
  for (int64_t p0 = 0; p0 < K; p0 += KC) {
    int64_t kc = std::min(KC, K - p0);
    __m256 c[GEMV_MAX_M];
    for (int64_t m = 0; m < M; ++m) c[m] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = load8(w + i * K + p0 + k);
      transpose8(r);
      for (int kk = 0; kk < 8; ++kk)
        for (int64_t m = 0; m < M; ++m)
          c[m] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + m * K + p0 + k + kk), r[kk], c[m]);
    }
    for (; k < kc; ++k) {
      alignas(32) float col[8];
      for (int i = 0; i < 8; ++i) col[i] = cpu::ld(w, i * K + p0 + k);
      __m256 cv = _mm256_load_ps(col);
      for (int64_t m = 0; m < M; ++m)
        c[m] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + m * K + p0 + k), cv, c[m]);
    }
    for (int64_t m = 0; m < M; ++m) tot[m] = _mm256_add_ps(tot[m], c[m]);
  }
  for (int64_t m = 0; m < M; ++m) _mm256_storeu_ps(total + m * 8, tot[m]);
}

template <typename T>
void gemvTransB(const TensorDesc& out, const T* a, const T* w, int64_t M, int64_t N, int64_t K,
                const MatmulOptions& o) {
  std::vector<float> af(static_cast<size_t>(M * K));
  for (int64_t i = 0; i < M * K; ++i) af[i] = cpu::ld(a, i);
  cpu::parallelFor((N + 7) / 8, 32, [&](int64_t b0, int64_t e0) {
    float total[GEMV_MAX_M * 8];
    for (int64_t blk = b0; blk < e0; ++blk) {
      int64_t n0 = blk * 8, nn = std::min<int64_t>(8, N - n0);
      if (nn == 8) {
        gemvRows8(w + n0 * K, K, af.data(), M, total);
      } else {
        // Tail rows: the same chains in scalar fmaf.
        for (int64_t j = 0; j < nn; ++j)
          for (int64_t m = 0; m < M; ++m) {
            float t = 0.0f;
            for (int64_t p0 = 0; p0 < K; p0 += KC) {
              float c = 0.0f;
              for (int64_t k = p0; k < std::min(K, p0 + KC); ++k)
                c = std::fma(af[m * K + k], cpu::ld(w, (n0 + j) * K + k), c);
              t += c;
            }
            total[m * 8 + j] = t;
          }
      }
      cpu::dispatchFloat(out.dtype, [&](auto tag) {
        using O = decltype(tag);
        O* c = out.as<O>();
        for (int64_t m = 0; m < M; ++m)
          for (int64_t j = 0; j < nn; ++j) {
            int64_t idx = m * N + n0 + j;
            float v = o.alpha * total[m * 8 + j];
            if (o.accumulate) v += cpu::ld(c, idx);
            cpu::st(c, idx, v);
          }
      });
    }
  });
}
#endif

// "generic" when asked for or when the CPU lacks AVX2/FMA; "" for a bad TINYLLAMA_CPU_KERNELS.
const char* pickMatmulKernel() {
  const char* e = std::getenv("TINYLLAMA_CPU_KERNELS");
  std::string want = e ? e : "";
  if (!want.empty() && want != "auto" && want != "generic") return "";
#ifdef TK_X86_AVX2
  if (want != "generic" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return "avx2+fma";
#endif
  return "generic";
}

// acc[mc x nc] += Ap (panels of MR rows, k-major) * Bp (panels of NR cols, k-major).
TK_CLONES void computeBlock(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp,
                            float* acc, int64_t ldAcc) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const float* bp = Bp + (jr / NR) * kc * NR;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const float* ap = Ap + (ir / MR) * kc * MR;
      float c[MR][NR] = {};
      for (int64_t k = 0; k < kc; ++k) {
        const float* b = bp + k * NR;
        const float* a = ap + k * MR;
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
          float av = a[r];
#pragma GCC ivdep
          for (int j = 0; j < NR; ++j) c[r][j] += av * b[j];
        }
      }
      int64_t rows = std::min(MR, mc - ir), cols = std::min(NR, nc - jr);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < cols; ++j) acc[(ir + r) * ldAcc + jr + j] += c[r][j];
    }
  }
}

template <typename T>
void gemm(const TensorDesc& out, const T* a, const T* b, int64_t M, int64_t N, int64_t K,
          const MatmulOptions& o) {
  int64_t mTiles = (M + MC - 1) / MC, nTiles = (N + NC - 1) / NC;
  [[maybe_unused]] const bool avx2 = cpu::avx2Kernels();
  cpu::parallelFor(mTiles * nTiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> Ap(static_cast<size_t>(MC * KC)), Bp(static_cast<size_t>(KC * NC)),
        acc(static_cast<size_t>(MC * NC));
    for (int64_t task = begin; task < end; ++task) {
      int64_t i0 = (task / nTiles) * MC, j0 = (task % nTiles) * NC;
      int64_t mc = std::min(MC, M - i0), nc = std::min(NC, N - j0);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t p0 = 0; p0 < K; p0 += KC) {
        int64_t kc = std::min(KC, K - p0);
        // Pack op(a)[i0:i0+mc, p0:p0+kc] into MR-row panels, zero-padded.
        // The loop that walks op(a)'s contiguous dimension is innermost, so packing streams
        // through memory for both layouts (k for a plain a, rows for a transposed a).
        for (int64_t ir = 0; ir < mc; ir += MR) {
          float* ap = Ap.data() + (ir / MR) * kc * MR;
          if (o.transA) {
            for (int64_t k = 0; k < kc; ++k)
              for (int64_t r = 0; r < MR; ++r)
                ap[k * MR + r] = (ir + r < mc) ? cpu::ld(a, (p0 + k) * M + i0 + ir + r) : 0.0f;
          } else {
            for (int64_t r = 0; r < MR; ++r) {
              if (ir + r >= mc) {
                for (int64_t k = 0; k < kc; ++k) ap[k * MR + r] = 0.0f;
                continue;
              }
              int64_t row = (i0 + ir + r) * K + p0;
              for (int64_t k = 0; k < kc; ++k) ap[k * MR + r] = cpu::ld(a, row + k);
            }
          }
        }
        // Pack op(b)[p0:p0+kc, j0:j0+nc] into NR-column panels, zero-padded.
        for (int64_t jr = 0; jr < nc; jr += NR) {
          float* bp = Bp.data() + (jr / NR) * kc * NR;
          if (o.transB) {
            for (int64_t j = 0; j < NR; ++j) {
              if (jr + j >= nc) {
                for (int64_t k = 0; k < kc; ++k) bp[k * NR + j] = 0.0f;
                continue;
              }
              int64_t col = (j0 + jr + j) * K + p0;
              for (int64_t k = 0; k < kc; ++k) bp[k * NR + j] = cpu::ld(b, col + k);
            }
          } else {
            for (int64_t k = 0; k < kc; ++k)
              for (int64_t j = 0; j < NR; ++j)
                bp[k * NR + j] = (jr + j < nc) ? cpu::ld(b, (p0 + k) * N + j0 + jr + j) : 0.0f;
          }
        }
#ifdef TK_X86_AVX2
        if (avx2) computeBlockAvx2(mc, nc, kc, Ap.data(), Bp.data(), acc.data(), NC);
        else
#endif
          computeBlock(mc, nc, kc, Ap.data(), Bp.data(), acc.data(), NC);
      }
      cpu::dispatchFloat(out.dtype, [&](auto tag) {
        using O = decltype(tag);
        O* c = out.as<O>();
        for (int64_t r = 0; r < mc; ++r)
          for (int64_t j = 0; j < nc; ++j) {
            int64_t idx = (i0 + r) * N + j0 + j;
            float v = o.alpha * acc[r * NC + j];
            if (o.accumulate) v += cpu::ld(c, idx);
            cpu::st(c, idx, v);
          }
      });
    }
  });
}

}  // namespace

void matmul(const TensorDesc& out, const TensorDesc& a, const TensorDesc& b, int64_t M, int64_t N,
            int64_t K, const MatmulOptions& o) {
  if (!*cpu::simdKernels())
    throw Error(std::string("TINYLLAMA_CPU_KERNELS must be auto or generic, got \"") +
                std::getenv("TINYLLAMA_CPU_KERNELS") + "\"");
  if (M == 0 || N == 0) return;
  cpu::dispatchFloat(a.dtype, [&](auto tag) {
    using T = decltype(tag);
#ifdef TK_X86_AVX2
    if (M <= GEMV_MAX_M && o.transB && !o.transA && K > 0 && cpu::avx2Kernels()) {
      gemvTransB<T>(out, a.as<T>(), b.as<T>(), M, N, K, o);
      return;
    }
#endif
    gemm<T>(out, a.as<T>(), b.as<T>(), M, N, K, o);
  });
}

}  // namespace tk::backend

namespace tk::cpu {
const char* simdKernels() {
  static const char* kernel = backend::pickMatmulKernel();
  return kernel;
}
bool avx2Kernels() {
  static const bool on = std::strcmp(simdKernels(), "avx2+fma") == 0;
  return on;
}
}  // namespace tk::cpu
