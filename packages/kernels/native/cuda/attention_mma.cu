// Causal/non-causal grouped-query attention for bf16, head dim 64, FlashAttention-2 style on
// raw tensor-core instructions: mma.sync.m16n8k16 (bf16 in, fp32 accumulate) fed by ldmatrix,
// sm_80 instructions only (they run unchanged on sm_90; no wgmma/TMA). The default bf16 kernel
// (attention.cu; TINYLLAMA_ATTENTION=wmma selects the older attention_tc.cu). Verified on an
// H200 on 2026-11-28: cross-backend suite, PyTorch comparison, memcheck, and the same bits as the
// first mma version (one row tile per warp everywhere, 0.53x SDPA; tools/bench/kernels/RESULTS.md).
// Same contract as the other kernels: q/out [B,T,H,D], k/v [B,T,Hkv,D] contiguous, query head h
// reads KV head h / (H / Hkv) in place (no K/V copies), lse [B,H,T] f32 natural log-sum-exp of
// the scaled scores, outputs overwritten, any T (tails zero-filled).
//
// Forward: a block of 4 warps owns 128 query rows of one (batch, head); each warp owns 32 rows as
// two m16 tiles and keeps Q's A-fragments, the S accumulators and the O accumulators in
// registers, so every K/V fragment read from shared memory feeds two mma.sync (FlashAttention-2's
// layout for head dim 64). K/V tiles of 64 keys are double-buffered in shared memory
// with cp.async (tile j+1 loads while tile j computes). The online softmax runs in log2 units on
// the accumulator fragment of S = Q K^T (row max/sum over the 4 lanes of a quad with two
// shuffles, the sum kept per lane and reduced once at the end; each exponent is one FFMA,
// s * scale * log2(e) - max, with the row max scaled once), and the fp32
// S fragment is packed straight into the bf16 A-fragment of P @ V (the m16n8 C layout of two
// adjacent n-tiles is the m16k16 A layout): P never touches shared memory. Causal: key tiles
// past the block's last row are never loaded; a warp skips tiles past its own last row; masks
// are applied only on tiles that cross the diagonal or the end of the sequence. Blocks run the
// longest (last) query tiles first. Output goes through the warp's own Q rows in shared memory
// so global stores are 16-byte vectors.
// Backward (deterministic, no atomics; delta = rowsum(dO * O) comes from attention.cu's
// preprocessing kernel): (1) dK/dV: a block of 4 warps owns 128 keys of one KV head, 32 per warp
// as two m16 tiles; for every query head of the group and every 64-query tile (Q, dO, lse, delta
// double-buffered with cp.async) a warp computes S^T = K Q^T and
// P^T = exp2(S^T * scale*log2e - lse*log2e) for its keys in registers, dV += P^T dO (P^T reused
// as the A-fragment), dP^T = V dO^T, dS^T = P^T (dP^T - delta), dK += dS^T Q; each dK/dV element
// has one owner, summed in a fixed order. (2) dQ: a block of 8 warps owns 128 query rows of one
// head, 16 per warp, and walks the K/V tiles like the forward, recomputing S and dP, and
// accumulates dQ += dS K in registers (two tiles per warp measured slower here: the whole backward 2.33 vs 2.27 ms).
// The scale of dK and dQ is applied once at the end. The recomputation costs 7 tile matmuls
// instead of FA2's 5 (which needs atomics for dQ): the price of determinism. A deterministic
// 5-matmul version (one block per query head walking its key blocks, dQ summed in an fp32
// workspace, dK/dV per head summed by a second kernel) passed every check but took 2.37 ms
// against these kernels' 1.98 on an H200 (one block of 8 warps per SM and the dQ read-modify-
// write in the loop; tools/bench/kernels/RESULTS.md run 9), so it was removed (it is in commit afe5b7a).
#include <cstdint>
#include <initializer_list>

#include "common.cuh"

namespace tk::cuda {
namespace {

constexpr int D = 64;    // head dim
constexpr int LDS = 72;  // bf16 shared row stride: 144 B rows put ldmatrix's 8 rows on distinct banks
constexpr float kLog2e = 1.4426950408889634f;

struct MmaDims {
  int T, H, Hkv, group;
  float scale;
  bool causal;
};

__device__ __forceinline__ uint32_t smemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global -> shared; `valid` false writes zeros (src-size 0 reads nothing).
__device__ __forceinline__ void cpAsync16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cpAsync4(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smemAddr(dst)), "l"(src),
               "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Four 8x8 b16 matrices; lane l supplies the row address of matrix l / 8.
__device__ __forceinline__ void ldsm4(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smemAddr(p)));
}
__device__ __forceinline__ void ldsm4t(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smemAddr(p)));
}

// c += a (16x16, row) * b (16x8, col), bf16 operands, fp32 accumulators.
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 2^x on the special-function unit (ex2.approx.ftz: ~2 ulp, 2^-inf = 0), as FlashAttention does.
__device__ __forceinline__ float exp2Fast(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t packBf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (lower column) in the low half
  return *reinterpret_cast<uint32_t*>(&v);
}

// Fragment addressing, lane l, m = l / 8 (which 8x8 matrix), r = l % 8 (its row):
// A operand (16 rows x 16 cols at row0, col0), matrices (rows 0-7|8-15) x (cols 0-7|8-15):
__device__ __forceinline__ const bf16* aAddr(const bf16* base, int row0, int col0, int lane) {
  int m = lane >> 3;
  return base + (row0 + (lane & 7) + (m & 1) * 8) * LDS + col0 + (m >> 1) * 8;
}
// B operand from a row-major [n][k] tile (K for Q K^T): two n-tiles of 8 at n0, k-chunk k0;
// regs 0,1 = n-tile n0, regs 2,3 = n-tile n0 + 8.
__device__ __forceinline__ const bf16* bAddrNK(const bf16* base, int n0, int k0, int lane) {
  int m = lane >> 3;
  return base + (n0 + (lane & 7) + (m >> 1) * 8) * LDS + k0 + (m & 1) * 8;
}
// B operand from a row-major [k][n] tile (V for P V), read with .trans: same register order.
__device__ __forceinline__ const bf16* bAddrKN(const bf16* base, int k0, int n0, int lane) {
  int m = lane >> 3;
  return base + (k0 + (lane & 7) + (m & 1) * 8) * LDS + n0 + (m >> 1) * 8;
}

// ROWS x 64 bf16 tile, global row stride `stride` elements, rows >= rowsValid zero-filled.
template <int ROWS, int THREADS>
__device__ __forceinline__ void loadTileAsync(bf16* dst, const bf16* src, int64_t stride, int rowsValid) {
#pragma unroll
  for (int idx = threadIdx.x; idx < ROWS * 8; idx += THREADS) {
    int r = idx >> 3, c = (idx & 7) * 8;
    bool ok = r < rowsValid;
    cpAsync16(dst + r * LDS + c, ok ? src + r * stride + c : src, ok);
  }
}

// The K/V stream of the forward and dQ kernels (tiles of KB keys, double-buffered at Ks/Vs):
// at iteration j (keys from kv0), issue tile j + 1 into the other buffer, wait for tile j, then
// the block barrier.
template <int KB, int THREADS>
__device__ __forceinline__ void nextKvTile(int j, int nTiles, int kv0, bf16* Ks, bf16* Vs, const bf16* kB,
                                           const bf16* vB, int64_t kvStride, int T) {
  if (j + 1 < nTiles) {
    int nb = (j + 1) & 1;
    loadTileAsync<KB, THREADS>(Ks + nb * KB * LDS, kB + (kv0 + KB) * kvStride, kvStride, T - kv0 - KB);
    loadTileAsync<KB, THREADS>(Vs + nb * KB * LDS, vB + (kv0 + KB) * kvStride, kvStride, T - kv0 - KB);
    cpAsyncCommit();
    cpAsyncWait<1>();
  } else {
    cpAsyncWait<0>();
  }
  __syncthreads();
}

// acc[8][4] (16 rows x 64 cols, C layout) * 0 init
template <int N>
__device__ __forceinline__ void zero(float (&acc)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
}

// acc (16 x 64) += A (16 rows of `aBase` at aRow, 64 cols) * B^T, B = 64 rows of `bBase` ([n][k]).
__device__ __forceinline__ void mmaABt(float (&acc)[8][4], const bf16* aBase, int aRow, const bf16* bBase, int lane) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    uint32_t a[4];
    ldsm4(a, aAddr(aBase, aRow, kk * 16, lane));
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      ldsm4(b, bAddrNK(bBase, np * 16, kk * 16, lane));
      mma(acc[2 * np], a, b[0], b[1]);
      mma(acc[2 * np + 1], a, b[2], b[3]);
    }
  }
}

// acc (16 x 64) += P (16 x 64 from a C-layout fragment, as bf16) * B, B = 64 rows of `bBase` ([k][n]).
__device__ __forceinline__ void mmaPB(float (&acc)[8][4], const uint32_t (&p)[4][4], const bf16* bBase, int lane) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      ldsm4t(b, bAddrKN(bBase, kk * 16, np * 16, lane));
      mma(acc[2 * np], p[kk], b[0], b[1]);
      mma(acc[2 * np + 1], p[kk], b[2], b[3]);
    }
  }
}

// C-layout fp32 fragment (16 x 64) -> four bf16 A-fragments (k-chunks of 16).
__device__ __forceinline__ void toA(uint32_t (&p)[4][4], const float (&s)[8][4]) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    p[kk][0] = packBf16(s[2 * kk][0], s[2 * kk][1]);
    p[kk][1] = packBf16(s[2 * kk][2], s[2 * kk][3]);
    p[kk][2] = packBf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    p[kk][3] = packBf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
  }
}

// Two-tile forms for the forward and dK/dV kernels: each B fragment read from shared memory feeds both of
// a warp's 16-row tiles. Per accumulator element the order of the mma steps is the one-tile
// helpers' (k-chunks in order), so results match them bit for bit.
// acc[mt] (16 x 64) += A (the 16 rows of `aBase` at aRow0 + 16 mt, 64 cols) * B^T, B = 64 rows
// of `bBase` ([n][k]).
__device__ __forceinline__ void mmaABt2(float (&acc)[2][8][4], const bf16* aBase, int aRow0, const bf16* bBase,
                                        int lane) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    uint32_t a[2][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) ldsm4(a[mt], aAddr(aBase, aRow0 + mt * 16, kk * 16, lane));
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      ldsm4(b, bAddrNK(bBase, np * 16, kk * 16, lane));
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        mma(acc[mt][2 * np], a[mt], b[0], b[1]);
        mma(acc[mt][2 * np + 1], a[mt], b[2], b[3]);
      }
    }
  }
}

// acc[mt] (16 x 64) += A[mt] (16 x 64 as four k-chunk A-fragments in registers) * B, B = 64 rows
// of `bBase`: [k][n] read with .trans (V for P V, dO for P^T dO), or with BIsNK [n][k] (K for
// Q K^T with Q's fragments resident).
template <bool BIsNK = false>
__device__ __forceinline__ void mmaPB2(float (&acc)[2][8][4], const uint32_t (&p)[2][4][4], const bf16* bBase,
                                       int lane) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      if constexpr (BIsNK) ldsm4(b, bAddrNK(bBase, np * 16, kk * 16, lane));
      else ldsm4t(b, bAddrKN(bBase, kk * 16, np * 16, lane));
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        mma(acc[mt][2 * np], p[mt][kk], b[0], b[1]);
        mma(acc[mt][2 * np + 1], p[mt][kk], b[2], b[3]);
      }
    }
  }
}

// The backward's element-wise steps on one warp's m16 tile of transposed scores (rows = keys
// key0 and key1 = key0 + 8 of the lane, cols = the 64 queries from qi0):
// P^T = exp2(S^T * scale2 - lse * log2 e) in place, 0 where the query does not see the key or is
// past the sequence (only checked when `mask`). T and causal come by value: through a reference
// to the kernel's MmaDims nvcc unswitched the mask loop and the dK/dV kernel spilled 288 bytes
// instead of 148 (the PTX is now the same as with the loops written inline).
__device__ __forceinline__ void probsT(float (&s)[8][4], const float* Lt, float scale2, int qi0, int key0,
                                       int key1, bool mask, int T, bool causal, int t4) {
#pragma unroll
  for (int n = 0; n < 8; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      int c = n * 8 + 2 * t4 + (e & 1);
      float x = exp2Fast(fmaf(s[n][e], scale2, -Lt[c] * kLog2e));
      if (mask) {
        int qi = qi0 + c, key = e < 2 ? key0 : key1;
        if (qi >= T || (causal && qi < key)) x = 0.0f;
      }
      s[n][e] = x;
    }
  }
}
// dS^T = P^T (dP^T - delta) in place in dp, from the bf16 P^T fragments (as dV used them).
__device__ __forceinline__ void gradScoresT(float (&dp)[8][4], const uint32_t (&p)[4][4], const float* Dt, int t4) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
      int n = 2 * kk + hlf;
      int c = n * 8 + 2 * t4;
      float d0 = Dt[c], d1 = Dt[c + 1];
      __nv_bfloat162 lo = *reinterpret_cast<const __nv_bfloat162*>(&p[kk][2 * hlf]);
      __nv_bfloat162 hi = *reinterpret_cast<const __nv_bfloat162*>(&p[kk][2 * hlf + 1]);
      dp[n][0] = __low2float(lo) * (dp[n][0] - d0);
      dp[n][1] = __high2float(lo) * (dp[n][1] - d1);
      dp[n][2] = __low2float(hi) * (dp[n][2] - d0);
      dp[n][3] = __high2float(hi) * (dp[n][3] - d1);
    }
  }
}

// Writes a warp's 16 x 64 fp32 accumulator * mul as bf16 through `stage` (the warp's own 16
// rows of a shared tile) to global rows row0.. (stride `stride`), rows >= rowsValid skipped.
__device__ __forceinline__ void storeRows(bf16* dst, int64_t stride, int rowsValid, bf16* stage,
                                          const float (&acc)[8][4], float mul0, float mul1, int lane) {
  int g8 = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int n = 0; n < 8; ++n) {
    *reinterpret_cast<uint32_t*>(stage + g8 * LDS + n * 8 + 2 * t4) = packBf16(acc[n][0] * mul0, acc[n][1] * mul0);
    *reinterpret_cast<uint32_t*>(stage + (g8 + 8) * LDS + n * 8 + 2 * t4) =
        packBf16(acc[n][2] * mul1, acc[n][3] * mul1);
  }
  __syncwarp();
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    int idx = lane + 32 * i, r = idx >> 3, c = (idx & 7) * 8;
    if (r < rowsValid)
      *reinterpret_cast<uint4*>(dst + r * stride + c) = *reinterpret_cast<const uint4*>(stage + r * LDS + c);
  }
}

constexpr int FWD_BM = 128, BN = 64;

// Forward, two m16 row tiles per warp: against one tile per warp (8 warps of 16 rows) it halves
// shared-memory traffic per FLOP for about 64 more registers per thread (238, no spills);
// measured on an H200 at 8 x 2048: 0.604 ms against 0.680 ms, same bits.
constexpr int FWD2_WARPS = 4, FWD2_THREADS = FWD2_WARPS * 32;

__global__ void __launch_bounds__(FWD2_THREADS, 2) mmaForward2Kernel(bf16* out, float* lse, const bf16* q,
                                                                   const bf16* k, const bf16* v, MmaDims d) {
  extern __shared__ __align__(128) unsigned char smemRaw[];
  bf16* Qs = reinterpret_cast<bf16*>(smemRaw);  // [FWD_BM][LDS]
  bf16* Ks = Qs + FWD_BM * LDS;                 // [2][BN][LDS]
  bf16* Vs = Ks + 2 * BN * LDS;                 // [2][BN][LDS]
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g8 = lane >> 2, t4 = lane & 3;
  int q0 = (gridDim.y - 1 - blockIdx.y) * FWD_BM;  // longest causal rows first
  int bh = blockIdx.x, b = bh / d.H, h = bh % d.H, g = h / d.group;
  int64_t qStride = static_cast<int64_t>(d.H) * D, kvStride = static_cast<int64_t>(d.Hkv) * D;
  const bf16* kB = k + (static_cast<int64_t>(b) * d.T * d.Hkv + g) * D;
  const bf16* vB = v + (static_cast<int64_t>(b) * d.T * d.Hkv + g) * D;
  int kvEnd = d.causal ? min(d.T, q0 + FWD_BM) : d.T;
  int nTiles = (kvEnd + BN - 1) / BN;

  loadTileAsync<FWD_BM, FWD2_THREADS>(Qs, q + ((static_cast<int64_t>(b) * d.T + q0) * d.H + h) * D, qStride,
                                      d.T - q0);
  cpAsyncCommit();
  loadTileAsync<BN, FWD2_THREADS>(Ks, kB, kvStride, d.T);
  loadTileAsync<BN, FWD2_THREADS>(Vs, vB, kvStride, d.T);
  cpAsyncCommit();
  cpAsyncWait<1>();
  __syncthreads();
  uint32_t qf[2][4][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) ldsm4(qf[mt][kk], aAddr(Qs, warp * 32 + mt * 16, kk * 16, lane));

  int wr0 = q0 + warp * 32;  // the warp's rows: wr0 .. wr0 + 31; tile mt rows wr0 + 16 mt + g8 (+ 8)
  float m[2][2], l[2][2];    // [tile][upper/lower row of the lane]: max (scaled log2 units), per-lane sum
  float o[2][8][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0f;
    zero(o[mt]);
  }
  const float scale2 = d.scale * kLog2e;
  for (int j = 0; j < nTiles; ++j) {
    int kv0 = j * BN;
    nextKvTile<BN, FWD2_THREADS>(j, nTiles, kv0, Ks, Vs, kB, vB, kvStride, d.T);
    const bf16* Kt = Ks + (j & 1) * BN * LDS;
    const bf16* Vt = Vs + (j & 1) * BN * LDS;
    if (!d.causal || kv0 <= wr0 + 31) {  // warp-uniform: some key of the tile is visible to the warp
      float s[2][8][4];
      zero(s[0]);
      zero(s[1]);
      mmaPB2<true>(s, qf, Kt, lane);  // S = Q K^T, Q's fragments resident
      bool mask = (d.causal && kv0 + BN - 1 > wr0) || kv0 + BN > d.T;
      uint32_t p[2][4][4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        int row0 = wr0 + mt * 16 + g8, row1 = row0 + 8;
        // The scores stay unscaled: the max of s times scale * log2(e) (> 0) is the max of the
        // scaled scores, bit for bit, and each exponent is one FFMA, s * scale2 - base.
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
          if (mask) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              int key = kv0 + n * 8 + 2 * t4 + (e & 1);
              int row = e < 2 ? row0 : row1;
              if (key >= d.T || (d.causal && key > row)) s[mt][n][e] = -INFINITY;
            }
          }
          mx0 = fmaxf(mx0, fmaxf(s[mt][n][0], s[mt][n][1]));
          mx1 = fmaxf(mx1, fmaxf(s[mt][n][2], s[mt][n][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        float n0 = fmaxf(m[mt][0], mx0 * scale2), n1 = fmaxf(m[mt][1], mx1 * scale2);
        float base0 = n0 == -INFINITY ? 0.0f : n0, base1 = n1 == -INFINITY ? 0.0f : n1;
        float corr0 = exp2Fast(m[mt][0] - base0), corr1 = exp2Fast(m[mt][1] - base1);
        m[mt][0] = n0;
        m[mt][1] = n1;
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
          s[mt][n][0] = exp2Fast(fmaf(s[mt][n][0], scale2, -base0));
          s[mt][n][1] = exp2Fast(fmaf(s[mt][n][1], scale2, -base0));
          s[mt][n][2] = exp2Fast(fmaf(s[mt][n][2], scale2, -base1));
          s[mt][n][3] = exp2Fast(fmaf(s[mt][n][3], scale2, -base1));
          sum0 += s[mt][n][0] + s[mt][n][1];
          sum1 += s[mt][n][2] + s[mt][n][3];
          o[mt][n][0] *= corr0;
          o[mt][n][1] *= corr0;
          o[mt][n][2] *= corr1;
          o[mt][n][3] *= corr1;
        }
        l[mt][0] = l[mt][0] * corr0 + sum0;
        l[mt][1] = l[mt][1] * corr1 + sum1;
        toA(p[mt], s[mt]);
      }
      mmaPB2(o, p, Vt, lane);  // O += P V
    }
    __syncthreads();  // buffer j & 1 is refilled at iteration j + 1
  }
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
    float l0 = l[mt][0], l1 = l[mt][1];
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    int tr0 = wr0 + mt * 16, row0 = tr0 + g8, row1 = row0 + 8;
    // the warp's own Q rows in shared memory are free: stage the output there
    storeRows(out + ((static_cast<int64_t>(b) * d.T + tr0) * d.H + h) * D, qStride, d.T - tr0,
              Qs + (warp * 32 + mt * 16) * LDS, o[mt], 1.0f / l0, 1.0f / l1, lane);
    if (t4 == 0) {
      float* lr = lse + static_cast<int64_t>(bh) * d.T;
      if (row0 < d.T) lr[row0] = (m[mt][0] + log2f(l0)) / kLog2e;
      if (row1 < d.T) lr[row1] = (m[mt][1] + log2f(l1)) / kLog2e;
    }
  }
}

constexpr int KV_BN = 128, KV_BM = 64;

// dK/dV, two m16 key tiles per warp, so each Q or dO fragment read from shared memory feeds both
// tiles. P^T and dS^T are kept as packed bf16 (the A operands of dV += P^T dO and dK += dS^T Q
// are bf16 anyway) so both tiles' dK and dV accumulators fit in registers beside one tile pair of
// fp32 scores. ptxas (nvcc 13.0, sm_90) still spills 148 bytes at 255 registers; it pays anyway:
// on an H200 at 8 x 2048 the backward took 2.085 ms against 2.326 ms with one tile per warp.
constexpr int KV2_WARPS = 4, KV2_THREADS = KV2_WARPS * 32;

__global__ void __launch_bounds__(KV2_THREADS, 2) mmaDkv2Kernel(bf16* dk, bf16* dv, const bf16* dOut, const bf16* q,
                                                              const bf16* k, const bf16* v, const float* lse,
                                                              const float* delta, MmaDims d) {
  extern __shared__ __align__(128) unsigned char smemRaw[];
  bf16* Ks = reinterpret_cast<bf16*>(smemRaw);                 // [KV_BN][LDS]
  bf16* Vs = Ks + KV_BN * LDS;                                  // [KV_BN][LDS]
  bf16* Qs = Vs + KV_BN * LDS;                                  // [2][KV_BM][LDS]
  bf16* Gs = Qs + 2 * KV_BM * LDS;                              // [2][KV_BM][LDS] dO
  float* Ls = reinterpret_cast<float*>(Gs + 2 * KV_BM * LDS);  // [2][KV_BM]
  float* Ds = Ls + 2 * KV_BM;                                   // [2][KV_BM]
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g8 = lane >> 2, t4 = lane & 3;
  int k0 = blockIdx.y * KV_BN;
  int b = blockIdx.x / d.Hkv, g = blockIdx.x % d.Hkv;
  int64_t qStride = static_cast<int64_t>(d.H) * D, kvStride = static_cast<int64_t>(d.Hkv) * D;
  int64_t kvOff = ((static_cast<int64_t>(b) * d.T + k0) * d.Hkv + g) * D;
  loadTileAsync<KV_BN, KV2_THREADS>(Ks, k + kvOff, kvStride, d.T - k0);
  loadTileAsync<KV_BN, KV2_THREADS>(Vs, v + kvOff, kvStride, d.T - k0);
  cpAsyncCommit();
  int qStart = d.causal ? k0 : 0;
  int nQ = (d.T - qStart + KV_BM - 1) / KV_BM;
  int total = d.group * nQ;
  auto issue = [&](int it, int buf) {
    int h = g * d.group + it / nQ, qi0 = qStart + (it % nQ) * KV_BM;
    int64_t off = ((static_cast<int64_t>(b) * d.T + qi0) * d.H + h) * D;
    loadTileAsync<KV_BM, KV2_THREADS>(Qs + buf * KV_BM * LDS, q + off, qStride, d.T - qi0);
    loadTileAsync<KV_BM, KV2_THREADS>(Gs + buf * KV_BM * LDS, dOut + off, qStride, d.T - qi0);
    for (int i = threadIdx.x; i < 2 * KV_BM; i += KV2_THREADS) {
      const float* src = (i < KV_BM ? lse : delta) + (static_cast<int64_t>(b) * d.H + h) * d.T;
      int c = i % KV_BM;
      bool ok = qi0 + c < d.T;
      cpAsync4((i < KV_BM ? Ls : Ds) + buf * KV_BM + c, ok ? src + qi0 + c : src, ok);
    }
  };
  if (total > 0) issue(0, 0);
  cpAsyncCommit();

  int wk0 = k0 + warp * 32;  // tile mt: keys wk0 + 16 mt + g8 and + 8
  float dkAcc[2][8][4], dvAcc[2][8][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
    zero(dkAcc[mt]);
    zero(dvAcc[mt]);
  }
  const float scale2 = d.scale * kLog2e;
  for (int it = 0; it < total; ++it) {
    int qi0 = qStart + (it % nQ) * KV_BM;
    if (it + 1 < total) {
      issue(it + 1, (it + 1) & 1);
      cpAsyncCommit();
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
    const bf16* Qt = Qs + (it & 1) * KV_BM * LDS;
    const bf16* Gt = Gs + (it & 1) * KV_BM * LDS;
    const float* Lt = Ls + (it & 1) * KV_BM;
    const float* Dt = Ds + (it & 1) * KV_BM;
    if (!d.causal || qi0 + KV_BM - 1 >= wk0) {  // warp-uniform: some query sees some key of the warp
      bool mask = (d.causal && qi0 < wk0 + 31) || qi0 + KV_BM > d.T;
      uint32_t pk[2][4][4];  // P^T, bf16
      {
        float s[2][8][4];  // S^T: rows = keys, cols = the tile's 64 queries
        zero(s[0]);
        zero(s[1]);
        mmaABt2(s, Ks, warp * 32, Qt, lane);  // S^T = K Q^T
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          int key0 = wk0 + mt * 16 + g8, key1 = key0 + 8;
          probsT(s[mt], Lt, scale2, qi0, key0, key1, mask, d.T, d.causal, t4);
          toA(pk[mt], s[mt]);
        }
      }
      mmaPB2(dvAcc, pk, Gt, lane);  // dV += P^T dO
      uint32_t ds[2][4][4];  // dS^T, bf16
      {
        float dp[2][8][4];  // dP^T = V dO^T
        zero(dp[0]);
        zero(dp[1]);
        mmaABt2(dp, Vs, warp * 32, Gt, lane);  // dP^T = V dO^T
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {  // dS^T = P^T (dP^T - delta), from the bf16 P^T
          gradScoresT(dp[mt], pk[mt], Dt, t4);
          toA(ds[mt], dp[mt]);
        }
      }
      mmaPB2(dkAcc, ds, Qt, lane);  // dK += dS^T Q
    }
    __syncthreads();  // buffer it & 1 is refilled at iteration it + 1
  }
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {  // the warp's own K/V rows in shared memory stage the outputs
    int tk0 = wk0 + mt * 16;
    int64_t outOff = ((static_cast<int64_t>(b) * d.T + tk0) * d.Hkv + g) * D;
    storeRows(dk + outOff, kvStride, d.T - tk0, Ks + (warp * 32 + mt * 16) * LDS, dkAcc[mt], d.scale, d.scale, lane);
    storeRows(dv + outOff, kvStride, d.T - tk0, Vs + (warp * 32 + mt * 16) * LDS, dvAcc[mt], 1.0f, 1.0f, lane);
  }
}

constexpr int DQ_BM = 128, DQ_THREADS = DQ_BM / 16 * 32;

__global__ void __launch_bounds__(DQ_THREADS) mmaDqKernel(bf16* dq, const bf16* dOut, const bf16* q, const bf16* k,
                                                          const bf16* v, const float* lse, const float* delta,
                                                          MmaDims d) {
  extern __shared__ __align__(128) unsigned char smemRaw[];
  bf16* Qs = reinterpret_cast<bf16*>(smemRaw);  // [DQ_BM][LDS]
  bf16* Gs = Qs + DQ_BM * LDS;                  // [DQ_BM][LDS] dO
  bf16* Ks = Gs + DQ_BM * LDS;                  // [2][BN][LDS]
  bf16* Vs = Ks + 2 * BN * LDS;                 // [2][BN][LDS]
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g8 = lane >> 2, t4 = lane & 3;
  int q0 = (gridDim.y - 1 - blockIdx.y) * DQ_BM;  // longest causal rows first
  int bh = blockIdx.x, b = bh / d.H, h = bh % d.H, g = h / d.group;
  int64_t qStride = static_cast<int64_t>(d.H) * D, kvStride = static_cast<int64_t>(d.Hkv) * D;
  const bf16* kB = k + (static_cast<int64_t>(b) * d.T * d.Hkv + g) * D;
  const bf16* vB = v + (static_cast<int64_t>(b) * d.T * d.Hkv + g) * D;
  int kvEnd = d.causal ? min(d.T, q0 + DQ_BM) : d.T;
  int nTiles = (kvEnd + BN - 1) / BN;
  int64_t qOff = ((static_cast<int64_t>(b) * d.T + q0) * d.H + h) * D;
  loadTileAsync<DQ_BM, DQ_THREADS>(Qs, q + qOff, qStride, d.T - q0);
  loadTileAsync<DQ_BM, DQ_THREADS>(Gs, dOut + qOff, qStride, d.T - q0);
  loadTileAsync<BN, DQ_THREADS>(Ks, kB, kvStride, d.T);
  loadTileAsync<BN, DQ_THREADS>(Vs, vB, kvStride, d.T);
  cpAsyncCommit();

  int wr0 = q0 + warp * 16, row0 = wr0 + g8, row1 = row0 + 8;
  const float* lr = lse + static_cast<int64_t>(bh) * d.T;
  const float* dr = delta + static_cast<int64_t>(bh) * d.T;
  float lse0 = row0 < d.T ? lr[row0] * kLog2e : 0.0f, lse1 = row1 < d.T ? lr[row1] * kLog2e : 0.0f;
  float del0 = row0 < d.T ? dr[row0] : 0.0f, del1 = row1 < d.T ? dr[row1] : 0.0f;
  float dqAcc[8][4];
  zero(dqAcc);
  const float scale2 = d.scale * kLog2e;
  for (int j = 0; j < nTiles; ++j) {
    int kv0 = j * BN;
    nextKvTile<BN, DQ_THREADS>(j, nTiles, kv0, Ks, Vs, kB, vB, kvStride, d.T);
    const bf16* Kt = Ks + (j & 1) * BN * LDS;
    const bf16* Vt = Vs + (j & 1) * BN * LDS;
    if (!d.causal || kv0 <= wr0 + 15) {
      bool mask = (d.causal && kv0 + BN - 1 > wr0) || kv0 + BN > d.T;
      float s[8][4];
      zero(s);
      mmaABt(s, Qs, warp * 16, Kt, lane);
      float dp[8][4];
      zero(dp);
      mmaABt(dp, Gs, warp * 16, Vt, lane);
#pragma unroll
      for (int n = 0; n < 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          bool hi = e >= 2;
          float pr = exp2Fast(fmaf(s[n][e], scale2, -(hi ? lse1 : lse0)));
          // round P to bf16 as the dK/dV kernel does, so both kernels use the same dS
          pr = __bfloat162float(__float2bfloat16_rn(pr));
          if (mask) {
            int key = kv0 + n * 8 + 2 * t4 + (e & 1);
            if (key >= d.T || (d.causal && key > (hi ? row1 : row0))) pr = 0.0f;
          }
          dp[n][e] = pr * (dp[n][e] - (hi ? del1 : del0));
        }
      }
      uint32_t ds[4][4];
      toA(ds, dp);
      mmaPB(dqAcc, ds, Kt, lane);  // dQ += dS K
    }
    __syncthreads();
  }
  // Q's shared rows of this warp are read only by this warp: stage the output there.
  storeRows(dq + ((static_cast<int64_t>(b) * d.T + wr0) * d.H + h) * D, qStride, d.T - wr0, Qs + warp * 16 * LDS,
            dqAcc, d.scale, d.scale, lane);
}

constexpr size_t kFwdSmem = (FWD_BM + 4 * BN) * LDS * sizeof(bf16);
constexpr size_t kDkvSmem = (2 * KV_BN + 4 * KV_BM) * LDS * sizeof(bf16) + 4 * KV_BM * sizeof(float);
constexpr size_t kDqSmem = (2 * DQ_BM + 4 * BN) * LDS * sizeof(bf16);

MmaDims mmaDims(const TensorDesc& q, const TensorDesc& k, const AttentionOptions& o) {
  MmaDims d;
  d.T = static_cast<int>(q.shape[1]);
  d.H = static_cast<int>(q.shape[2]);
  d.Hkv = static_cast<int>(k.shape[2]);
  d.group = d.H / d.Hkv;
  d.scale = o.scale;
  d.causal = o.causal;
  return d;
}

}  // namespace

bool mmaAttentionSupported(std::initializer_list<const TensorDesc*> ts) {
  for (const TensorDesc* t : ts)
    if (t->dtype != DType::BF16 || (reinterpret_cast<uintptr_t>(t->data) & 15) != 0) return false;
  if (ts.size() == 0) return false;
  const TensorDesc& q = **ts.begin();
  // grid: x = batch * heads (< 2^31), y = 128-row tiles (<= 65535)
  return q.shape[3] == D && q.shape[1] <= int64_t{65535} * 128;
}

void mmaAttentionForward(const TensorDesc& out, const TensorDesc& lse, const TensorDesc& q, const TensorDesc& k,
                         const TensorDesc& v, const AttentionOptions& o) {
  MmaDims d = mmaDims(q, k, o);
  TK_CUDA(cudaFuncSetAttribute(mmaForward2Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(kFwdSmem)));
  dim3 grid(static_cast<unsigned>(q.shape[0] * d.H), (d.T + FWD_BM - 1) / FWD_BM);
  mmaForward2Kernel<<<grid, FWD2_THREADS, kFwdSmem, stream()>>>(out.as<bf16>(), lse.as<float>(), q.as<bf16>(),
                                                                k.as<bf16>(), v.as<bf16>(), d);
  TK_LAUNCH_CHECK("attentionForward (mma)");
}

void mmaAttentionBackward(const TensorDesc& dq, const TensorDesc& dk, const TensorDesc& dv, const TensorDesc& dOut,
                          const TensorDesc& q, const TensorDesc& k, const TensorDesc& v, const TensorDesc& lse,
                          const float* delta, const AttentionOptions& o) {
  MmaDims d = mmaDims(q, k, o);
  TK_CUDA(cudaFuncSetAttribute(mmaDkv2Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kDkvSmem)));
  TK_CUDA(cudaFuncSetAttribute(mmaDqKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kDqSmem)));
  dim3 gridKv(static_cast<unsigned>(q.shape[0] * d.Hkv), (d.T + KV_BN - 1) / KV_BN);
  mmaDkv2Kernel<<<gridKv, KV2_THREADS, kDkvSmem, stream()>>>(dk.as<bf16>(), dv.as<bf16>(), dOut.as<bf16>(),
                                                              q.as<bf16>(), k.as<bf16>(), v.as<bf16>(), lse.as<float>(),
                                                              delta, d);
  TK_LAUNCH_CHECK("attentionBackward dk/dv (mma)");
  dim3 gridQ(static_cast<unsigned>(q.shape[0] * d.H), (d.T + DQ_BM - 1) / DQ_BM);
  mmaDqKernel<<<gridQ, DQ_THREADS, kDqSmem, stream()>>>(dq.as<bf16>(), dOut.as<bf16>(), q.as<bf16>(), k.as<bf16>(),
                                                         v.as<bf16>(), lse.as<float>(), delta, d);
  TK_LAUNCH_CHECK("attentionBackward dq (mma)");
}

}  // namespace tk::cuda
