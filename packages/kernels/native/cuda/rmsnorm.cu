// RMSNorm forward (optionally fused with the residual add that precedes it) and backward, f32
// math, f32 or bf16 storage. Design: the forward takes a row per block where it applies (bf16,
// C = 256 x warps, 8 elements per lane, 16-byte loads; rmsnormBlockRowKernel) and a row per warp
// otherwise; the backward computes dx per row and dW = sum over rows of dOut * x * rstd through
// fixed per-chunk partial sums added in a fixed order, so results are bitwise repeatable. Its
// default keeps a row per block of 8 warps with w and the lane's dW in registers over a one-wave
// grid (rmsnormBackwardBlockRowKernel); the earlier kernels stay under TINYLLAMA_ROW_KERNELS for
// comparisons (measurements in ops_common.cuh and tools/bench/kernels/RESULTS.md).
#include <algorithm>
#include <initializer_list>

#include "common.cuh"
#include "ops_common.cuh"
#include "vec8.cuh"

namespace tk::cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // warps per block for row kernels

// The RMSNorm forward: a row per block (rmsnormBlockRowKernel, the default where it applies) or
// TINYLLAMA_RMSNORM_FWD=warp, a row per warp (rmsnormVecKernel, the default until 2026-11-28),
// for comparisons; read once per process.
bool blockRowForward() {
  static const bool block = settingChoice("TINYLLAMA_RMSNORM_FWD", {"block", "warp"}) != 1;
  return block;
}

// ---------------------------------------------------------------- rmsnorm
template <typename T>
__global__ void rmsnormKernel(T* residualOut, T* out, float* rstd, const T* x, const T* residual,
                              const T* w, int64_t N, int64_t C, float eps) {
  int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.y;
  if (row >= N) return;
  const T* xr = x + row * C;
  const T* src = xr;
  float ss = 0.0f;
  if (residual) {
    const T* rr = residual + row * C;
    T* ro = residualOut + row * C;
    for (int64_t c = threadIdx.x; c < C; c += 32) {
      T v = T(ld(xr, c) + ld(rr, c));  // rounded to storage, as backward will see it
      ro[c] = v;
      float f = static_cast<float>(v);
      ss += f * f;
    }
    src = ro;
  } else {
    for (int64_t c = threadIdx.x; c < C; c += 32) {
      float f = ld(xr, c);
      ss += f * f;
    }
  }
  ss = warpSum(ss);
  float r = rsqrtf(ss / static_cast<float>(C) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  T* o = out + row * C;
  for (int64_t c = threadIdx.x; c < C; c += 32) st(o, c, ld(src, c) * r * ld(w, c));
}

template <typename T, typename G, typename D>
__global__ void rmsnormBackwardDxKernel(D* dx, const G* dOut, const T* x, const T* w,
                                        const float* rstd, int64_t N, int64_t C) {
  int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.y;
  if (row >= N) return;
  const T* xr = x + row * C;
  const G* gr = dOut + row * C;
  D* dr = dx + row * C;
  float dot = 0.0f;
  for (int64_t c = threadIdx.x; c < C; c += 32) dot += ld(gr, c) * ld(w, c) * ld(xr, c);
  dot = warpSum(dot);
  float r = rstd[row];
  float k = r * r * r * dot / static_cast<float>(C);
  for (int64_t c = threadIdx.x; c < C; c += 32)
    st(dr, c, ld(dr, c) + r * ld(gr, c) * ld(w, c) - k * ld(xr, c));
}

constexpr int64_t kDwRowChunk = 32;

// partial[chunk][c] = sum over the chunk's rows of dOut * x * rstd (thread per column).
template <typename T, typename G>
__global__ void rmsnormDwPartialKernel(float* partial, const G* dOut, const T* x,
                                       const float* rstd, int64_t N, int64_t C) {
  int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t chunk = blockIdx.y;
  if (c >= C) return;
  int64_t n0 = chunk * kDwRowChunk, n1 = min(N, n0 + kDwRowChunk);
  float acc = 0.0f;
#pragma unroll 8
  for (int64_t n = n0; n < n1; ++n) acc += ld(dOut, n * C + c) * ld(x, n * C + c) * rstd[n];
  partial[chunk * C + c] = acc;
}

// dst[c] += sum over chunks of partial[chunk][c]. A block takes 8 columns; its 32 rows of
// threads sum chunks y, y + 32, ... and the 32 partial sums are added in row order (fixed:
// repeatable bits). 8 columns per block rather than 32 spread the 3 MB of partials of a one-wave
// grid over every SM (32 columns used 64 blocks: 6.2 us at 11% of DRAM bandwidth, ncu, H200).
constexpr int kSumCols = 8, kSumRows = 32;
__global__ void sumChunksKernel(float* dst, const float* partial, int64_t chunks, int64_t C) {
  __shared__ float s[kSumRows][kSumCols + 1];
  int64_t c = static_cast<int64_t>(blockIdx.x) * kSumCols + threadIdx.x;
  float acc = 0.0f;
  if (c < C) {
#pragma unroll 8
    for (int64_t k = threadIdx.y; k < chunks; k += kSumRows) acc += partial[k * C + c];
  }
  s[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float t = 0.0f;
#pragma unroll
    for (int j = 0; j < kSumRows; ++j) t += s[j][threadIdx.x];
    dst[c] += t;
  }
}

// Vectorised forms of the two row kernels above (C % 256 == 0, 16/32-byte aligned rows).
template <typename T>
__global__ void rmsnormVecKernel(T* residualOut, T* out, float* rstd, const T* x, const T* residual,
                                 const T* w, int64_t N, int64_t C, float eps) {
  int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.y;
  if (row >= N) return;
  const T* src = residual ? residualOut + row * C : x + row * C;
  float ss = 0.0f;
  for (int64_t c = threadIdx.x * 8; c < C; c += 256) {
    float a[8];
    load8(x + row * C + c, a);
    if (residual) {
      float b[8];
      load8(residual + row * C + c, b);
#pragma unroll
      for (int i = 0; i < 8; ++i) a[i] += b[i];
      store8(residualOut + row * C + c, a);
      load8(residualOut + row * C + c, a);  // the rounded values, as backward will see them
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) ss += a[i] * a[i];
  }
  ss = warpSum(ss);
  float r = rsqrtf(ss / static_cast<float>(C) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  for (int64_t c = threadIdx.x * 8; c < C; c += 256) {
    float a[8], wv[8];
    load8(src + c, a);
    load8(w + c, wv);
#pragma unroll
    for (int i = 0; i < 8; ++i) a[i] = a[i] * r * wv[i];
    store8(out + row * C + c, a);
  }
}

// The forward with a row per block (bf16, C = 256 * kWarps: 8 elements per lane, each input
// read by one 16-byte load per lane, all issued at once): few registers, so 64 warps fit per SM,
// and at the 1.1B shapes 16,384 short blocks run in 15.5 waves instead of the warp-row kernel's
// 2,048 blocks of 8 long rows in 1.9 waves, whose part-filled last wave idles SMs. The row's
// sum of squares goes lanes, then warps in order through shared memory; residualOut is rounded
// to bf16 before it is squared and normalised, as in rmsnormVecKernel.
template <int kWarps>
__global__ void __launch_bounds__(32 * kWarps)
    rmsnormBlockRowKernel(bf16* residualOut, bf16* out, float* rstd, const bf16* x, const bf16* residual,
                          const bf16* w, float eps) {
  constexpr int64_t C = 256 * kWarps;
  __shared__ float sSum[kWarps];
  const int warp = threadIdx.y, lane = threadIdx.x;
  const int64_t at = static_cast<int64_t>(blockIdx.x) * C + (warp * 32 + lane) * 8;
  Raw8<bf16> v, wr;
  loadRaw8(x + at, v);
  loadRaw8(w + (warp * 32 + lane) * 8, wr);
  float a[8];
  unpack8(v, a);
  if (residual) {
    float b[8];
    load8(residual + at, b);
#pragma unroll
    for (int i = 0; i < 8; ++i) a[i] += b[i];
    pack8(a, v);
    storeRaw8(residualOut + at, v);
    unpack8(v, a);
  }
  float ss = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; ++i) ss += a[i] * a[i];
  ss = warpSum(ss);
  if (lane == 0) sSum[warp] = ss;
  __syncthreads();
  ss = 0.0f;
#pragma unroll
  for (int j = 0; j < kWarps; ++j) ss += sSum[j];
  const float r = rsqrtf(ss / static_cast<float>(C) + eps);
  if (warp == 0 && lane == 0) rstd[blockIdx.x] = r;
  float wv[8];
  unpack8(wr, wv);
#pragma unroll
  for (int i = 0; i < 8; ++i) a[i] = a[i] * r * wv[i];
  store8(out + at, a);
}

// Sum over one row of dOut * w * x, a warp per row (8 columns per lane, lane * 8 + 256 i), then
// over the warp: the dot product both 8-wide dx kernels start from.
template <typename T, typename G>
__device__ __forceinline__ float rowDotGwx8(const G* gr, const T* xr, const T* w, int64_t C, int lane) {
  float dot = 0.0f;
  for (int64_t c = lane * 8; c < C; c += 256) {
    float xv[8], gv[8], wv[8];
    load8(xr + c, xv);
    load8(gr + c, gv);
    load8(w + c, wv);
#pragma unroll
    for (int i = 0; i < 8; ++i) dot += gv[i] * wv[i] * xv[i];
  }
  return warpSum(dot);
}

template <typename T, typename G, typename D>
__global__ void rmsnormBackwardDxVecKernel(D* dx, const G* dOut, const T* x, const T* w,
                                           const float* rstd, int64_t N, int64_t C) {
  int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.y;
  if (row >= N) return;
  float dot = rowDotGwx8(dOut + row * C, x + row * C, w, C, threadIdx.x);
  float r = rstd[row];
  float k = r * r * r * dot / static_cast<float>(C);
  for (int64_t c = threadIdx.x * 8; c < C; c += 256) {
    float xv[8], gv[8], wv[8], dv[8];
    load8(x + row * C + c, xv);
    load8(dOut + row * C + c, gv);
    load8(w + c, wv);
    load8(dx + row * C + c, dv);
#pragma unroll
    for (int i = 0; i < 8; ++i) dv[i] += r * gv[i] * wv[i] - k * xv[i];
    store8(dx + row * C + c, dv);
  }
}

// dx and the dW partial sums in one pass (vector path, kDwFusedWarps * C floats of shared
// memory): a block owns the `rows` rows of one chunk, warp w takes rows w, w + 4, ...,
// updates dx as rmsnormBackwardDxVecKernel does and adds dOut * x * rstd into its own shared dW
// row (each lane owns distinct columns: no atomics); the block writes partial[chunk] as the
// warps' rows summed in warp order. Saves the second read of dOut and x that the separate
// partial kernel made (RMSNorm backward ran at 33% of copy bandwidth).
// `rows` is chosen so that the grid is exactly one wave of resident blocks (rmsnormBackward).
constexpr int kDwFusedWarps = 4;
// The warp's shared dW row += g x r over 8 columns (each lane owns its columns: no atomics).
__device__ __forceinline__ void accumulateDw8(float* dw, const float (&gv)[8], const float (&xv)[8], float r) {
  float4* d4 = reinterpret_cast<float4*>(dw);
  float4 a = d4[0], b = d4[1];
  a.x += gv[0] * xv[0] * r, a.y += gv[1] * xv[1] * r, a.z += gv[2] * xv[2] * r, a.w += gv[3] * xv[3] * r;
  b.x += gv[4] * xv[4] * r, b.y += gv[5] * xv[5] * r, b.z += gv[6] * xv[6] * r, b.w += gv[7] * xv[7] * r;
  d4[0] = a;
  d4[1] = b;
}
// partial[block] = the block's kRows shared dW rows summed in row order (after __syncthreads).
template <int kRows>
__device__ __forceinline__ void writeDwPartial(float* partial, const float* sDw, int64_t C) {
  const int warp = threadIdx.y, lane = threadIdx.x;
  for (int64_t c = warp * 32 + lane; c < C; c += kDwFusedWarps * 32) {
    float acc = 0.0f;
#pragma unroll
    for (int j = 0; j < kRows; ++j) acc += sDw[j * C + c];
    partial[static_cast<int64_t>(blockIdx.x) * C + c] = acc;
  }
}

template <typename T, typename G, typename D>
__global__ void rmsnormBackwardFusedKernel(D* dx, float* partial, const G* dOut, const T* x, const T* w,
                                           const float* rstd, int64_t N, int64_t C, int64_t rows) {
  extern __shared__ __align__(16) float sDw[];  // [kDwFusedWarps][C]
  int warp = threadIdx.y, lane = threadIdx.x;
  float* myDw = sDw + warp * C;
  for (int64_t c = lane; c < C; c += 32) myDw[c] = 0.0f;
  __syncwarp();
  int64_t n0 = static_cast<int64_t>(blockIdx.x) * rows, n1 = min(N, n0 + rows);
  for (int64_t row = n0 + warp; row < n1; row += kDwFusedWarps) {
    const T* xr = x + row * C;
    const G* gr = dOut + row * C;
    D* dr = dx + row * C;
    float dot = rowDotGwx8(gr, xr, w, C, lane);
    float r = rstd[row];
    float k = r * r * r * dot / static_cast<float>(C);
    for (int64_t c = lane * 8; c < C; c += 256) {
      float xv[8], gv[8], wv[8], dv[8];
      load8(xr + c, xv);
      load8(gr + c, gv);
      load8(w + c, wv);
      load8(dr + c, dv);
#pragma unroll
      for (int i = 0; i < 8; ++i) dv[i] += r * gv[i] * wv[i] - k * xv[i];
      store8(dr + c, dv);
      accumulateDw8(myDw + c, gv, xv, r);
    }
  }
  __syncthreads();
  writeDwPartial<kDwFusedWarps>(partial, sDw, C);
}

// rmsnormBackwardFusedKernel with the rows in registers, each row over a group of kWarpsPerRow
// warps (4: the whole block, the default; 2: pairs; 1: a row per warp, the fused kernel's
// arithmetic and order, same bits): warp g * kWarpsPerRow + h of the block holds part h of the
// row (C / kWarpsPerRow columns, kIters chunks of 8 per lane), loads its x and dOut parts at
// once (all of a lane's loads in flight, each element read once), and more warps per row leave
// fewer registers per lane, so more warps fit on an SM (at C = 2048: 168 registers and 12 warps
// per SM for one warp per row, 96 and 20 for pairs, 72 and 28 for four). The parts' dot products
// meet in shared memory behind a named barrier per group (ids 1 + g; 0 is __syncthreads),
// double-buffered by row parity, and are added part 0 + part 1 + ... in every warp, so all
// compute the same k. dW: each warp accumulates its part of its group's row of shared memory;
// the block writes the groups' rows summed in group order.
template <int kWarpsPerRow>
__device__ __forceinline__ void groupBarrier(int group) {
  static_assert(kDwFusedWarps == 4 && (kWarpsPerRow == 2 || kWarpsPerRow == 4), "barrier ids 1-2");
  // literal ids and counts: a register id makes ptxas reserve all 16 barriers
  if (kWarpsPerRow == 4)
    asm volatile("bar.sync 1, 128;" ::: "memory");
  else if (group == 0)
    asm volatile("bar.sync 1, 64;" ::: "memory");
  else
    asm volatile("bar.sync 2, 64;" ::: "memory");
}
template <int kWarpsPerRow, int kIters, int kMinBlocks>
__global__ void __launch_bounds__(32 * kDwFusedWarps, kMinBlocks)
    rmsnormBackwardRowsKernel(bf16* dx, float* partial, const bf16* dOut, const bf16* x, const bf16* w,
                               const float* rstd, int64_t N, int64_t rows) {
  constexpr int64_t kPart = 256 * kIters, C = kWarpsPerRow * kPart;
  constexpr int kGroups = kDwFusedWarps / kWarpsPerRow;
  extern __shared__ __align__(16) float sDw[];  // [kGroups][C]
  __shared__ float sDot[kDwFusedWarps][2];
  const int warp = threadIdx.y, lane = threadIdx.x, group = warp / kWarpsPerRow, part = warp % kWarpsPerRow;
  float* myDw = sDw + group * C + part * kPart;
  for (int64_t c = lane; c < kPart; c += 32) myDw[c] = 0.0f;
  __syncwarp();
  // The update pass reads w through a pointer the compiler cannot prove equal to w, so that it
  // reloads w (an L1 hit) rather than keeping the first pass's values alive in registers.
  const bf16* wAgain = w;
  asm volatile("" : "+l"(wAgain));
  const int64_t col = part * kPart + lane * 8;
  int64_t n0 = static_cast<int64_t>(blockIdx.x) * rows, n1 = min(N, n0 + rows);
  int parity = 0;
  for (int64_t row = n0 + group; row < n1; row += kGroups) {
    const bf16* xr = x + row * C + col;
    const bf16* gr = dOut + row * C + col;
    bf16* dr = dx + row * C + col;
    Raw8<bf16> xs[kIters], gs[kIters];
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      loadRaw8(xr + it * 256, xs[it]);
      loadRaw8(gr + it * 256, gs[it]);
    }
    float r = rstd[row];
    float dot = 0.0f;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      float xv[8], gv[8], wv[8];
      unpack8(xs[it], xv);
      unpack8(gs[it], gv);
      load8(w + col + it * 256, wv);
#pragma unroll
      for (int i = 0; i < 8; ++i) dot += gv[i] * wv[i] * xv[i];
    }
    dot = warpSum(dot);
    if constexpr (kWarpsPerRow > 1) {
      if (lane == 0) sDot[warp][parity] = dot;
      groupBarrier<kWarpsPerRow>(group);
      dot = 0.0f;
#pragma unroll
      for (int h = 0; h < kWarpsPerRow; ++h) dot += sDot[group * kWarpsPerRow + h][parity];
      parity ^= 1;
    }
    float k = r * r * r * dot / static_cast<float>(C);
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      float xv[8], gv[8], wv[8], dv[8];
      unpack8Again(xs[it], xv);
      unpack8Again(gs[it], gv);
      load8(dr + it * 256, dv);
      load8(wAgain + col + it * 256, wv);
#pragma unroll
      for (int i = 0; i < 8; ++i) dv[i] += r * gv[i] * wv[i] - k * xv[i];
      store8(dr + it * 256, dv);
      accumulateDw8(myDw + lane * 8 + it * 256, gv, xv, r);
    }
  }
  __syncthreads();
  writeDwPartial<kGroups>(partial, sDw, C);
}

// The backward with a row per block, as the forward's rmsnormBlockRowKernel (bf16, C = 256 *
// kWarps, 8 columns per lane): a lane keeps its 8 columns of w and of the dW sum in registers
// for the whole kernel, and loads a row's x, dOut and dx at once (48 bytes in flight per lane:
// one memory latency per row where the register-row kernels above wait twice, for x and dOut
// and then for dx). The row's dot product goes lanes, then warps in order through shared memory
// (double-buffered by row parity: one barrier per row). The grid is one wave of resident
// blocks, each taking `rows` consecutive rows; partial[block] comes straight from the lanes'
// dW registers (a column belongs to one lane of the block).
template <int kWarps, int kMinBlocks>
__global__ void __launch_bounds__(32 * kWarps, kMinBlocks)
    rmsnormBackwardBlockRowKernel(bf16* dx, float* partial, const bf16* dOut, const bf16* x, const bf16* w,
                                  const float* rstd, int64_t N, int64_t rows) {
  constexpr int64_t C = 256 * kWarps;
  __shared__ float sDot[2][kWarps];
  const int warp = threadIdx.y, lane = threadIdx.x;
  const int64_t col = (warp * 32 + lane) * 8;
  Raw8<bf16> wr;
  loadRaw8(w + col, wr);
  float dw[8] = {};
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * rows, n1 = min(N, n0 + rows);
  int parity = 0;
  for (int64_t row = n0; row < n1; ++row) {
    Raw8<bf16> xs, gs, ds;
    loadRaw8(x + row * C + col, xs);
    loadRaw8(dOut + row * C + col, gs);
    loadRaw8(dx + row * C + col, ds);
    const float r = rstd[row];
    float xv[8], gv[8], wv[8];
    unpack8(xs, xv);
    unpack8(gs, gv);
    unpack8(wr, wv);
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) dot += gv[i] * wv[i] * xv[i];
    dot = warpSum(dot);
    if (lane == 0) sDot[parity][warp] = dot;
    __syncthreads();
    dot = 0.0f;
#pragma unroll
    for (int j = 0; j < kWarps; ++j) dot += sDot[parity][j];
    parity ^= 1;
    const float k = r * r * r * dot / static_cast<float>(C);
    float dv[8];
    unpack8(ds, dv);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      dv[i] += r * gv[i] * wv[i] - k * xv[i];
      dw[i] += gv[i] * xv[i] * r;
    }
    store8(dx + row * C + col, dv);
  }
  store8(partial + static_cast<int64_t>(blockIdx.x) * C + col, dw);
}

}  // namespace
}  // namespace tk::cuda

namespace tk::backend {
using namespace tk::cuda;

// rmsnormBlockRowKernel when chosen and it applies (bf16, C = 256, 512, 1024 or 2048, 16-byte
// aligned); false when not launched.
bool rmsnormBlockRows(bf16* residualOut, const TensorDesc& out, const TensorDesc& rstd, const TensorDesc& x,
                      const bf16* residual, const TensorDesc& weight, float eps) {
  const int64_t C = x.lastDim(), N = x.rows();
  if (x.dtype != DType::BF16 || !blockRowForward() || N > 0x7fffffff || !allAligned({&out, &x, &weight}, 16) ||
      reinterpret_cast<uintptr_t>(residual) % 16 != 0 || reinterpret_cast<uintptr_t>(residualOut) % 16 != 0)
    return false;
  auto launch = [&](auto kernel, int warps) {
    kernel<<<static_cast<unsigned>(N), dim3(32, warps), 0, stream()>>>(residualOut, out.as<bf16>(), rstd.as<float>(),
                                                                       x.as<bf16>(), residual, weight.as<bf16>(), eps);
    return true;
  };
  switch (C) {
    case 256: return launch(rmsnormBlockRowKernel<1>, 1);
    case 512: return launch(rmsnormBlockRowKernel<2>, 2);
    case 1024: return launch(rmsnormBlockRowKernel<4>, 4);
    case 2048: return launch(rmsnormBlockRowKernel<8>, 8);
    default: return false;
  }
}

void rmsnormForward(const TensorDesc& out, const TensorDesc& rstd, const TensorDesc& x,
                    const TensorDesc& weight, float eps) {
  int64_t C = x.lastDim(), N = x.rows();
  if (N == 0) return;
  if (rmsnormBlockRows(nullptr, out, rstd, x, nullptr, weight, eps)) {
    TK_LAUNCH_CHECK("rmsnormForward");
    return;
  }
  dim3 block(32, kRowsPerBlock);
  unsigned grid = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
  bool vec = C % 256 == 0 && aligned(out, 32) && aligned(x, 32) && aligned(weight, 32);
  dispatchFloat(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (vec)
      rmsnormVecKernel<T><<<grid, block, 0, stream()>>>(nullptr, out.as<T>(), rstd.as<float>(), x.as<T>(),
                                                        nullptr, weight.as<T>(), N, C, eps);
    else
      rmsnormKernel<T><<<grid, block, 0, stream()>>>(nullptr, out.as<T>(), rstd.as<float>(), x.as<T>(),
                                                     nullptr, weight.as<T>(), N, C, eps);
  });
  TK_LAUNCH_CHECK("rmsnormForward");
}

void residualRmsnormForward(const TensorDesc& residualOut, const TensorDesc& out,
                            const TensorDesc& rstd, const TensorDesc& x,
                            const TensorDesc& residual, const TensorDesc& weight, float eps) {
  int64_t C = x.lastDim(), N = x.rows();
  if (N == 0) return;
  if (rmsnormBlockRows(residualOut.as<bf16>(), out, rstd, x, residual.as<bf16>(), weight, eps)) {
    TK_LAUNCH_CHECK("residualRmsnormForward");
    return;
  }
  dim3 block(32, kRowsPerBlock);
  unsigned grid = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
  bool vec = C % 256 == 0 && aligned(out, 32) && aligned(x, 32) && aligned(weight, 32) &&
             aligned(residual, 32) && aligned(residualOut, 32);
  dispatchFloat(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (vec)
      rmsnormVecKernel<T><<<grid, block, 0, stream()>>>(residualOut.as<T>(), out.as<T>(), rstd.as<float>(),
                                                        x.as<T>(), residual.as<T>(), weight.as<T>(), N, C, eps);
    else
      rmsnormKernel<T><<<grid, block, 0, stream()>>>(residualOut.as<T>(), out.as<T>(), rstd.as<float>(),
                                                     x.as<T>(), residual.as<T>(), weight.as<T>(), N, C, eps);
  });
  TK_LAUNCH_CHECK("residualRmsnormForward");
}

// Blocks of `kernel` resident per SM at this block size and dynamic shared memory, asked of the
// driver once per (kernel, block size, shared memory): a small cache (a process meets 2-3 keys),
// replacing its oldest entry when full.
int residentBlocksPerSm(const void* kernel, int threads, size_t smem) {
  struct Entry {
    const void* kernel;
    int threads;
    size_t smem;
    int perSm;
  };
  constexpr int kSlots = 8;
  static Entry cache[kSlots];
  static int used = 0, oldest = 0;
  for (int i = 0; i < used; ++i)
    if (cache[i].kernel == kernel && cache[i].threads == threads && cache[i].smem == smem) return cache[i].perSm;
  int perSm = 0;
  TK_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, kernel, threads, smem));
  perSm = std::max(perSm, 1);
  if (used < kSlots) {
    cache[used++] = Entry{kernel, threads, smem, perSm};
  } else {
    cache[oldest] = Entry{kernel, threads, smem, perSm};
    oldest = (oldest + 1) % kSlots;
  }
  return perSm;
}

// The block-row or register-row RMSNorm backward (rmsnormBackwardBlockRowKernel,
// rmsnormBackwardRowsKernel) for this call, or nullptr: not two-pass, all three tensors bf16 (a
// row of f32 would need twice the registers) and C one of the compiled widths. `warps` and `smem`
// get the kernel's block size and dynamic shared memory.
using RmsnormBackwardRows = void (*)(bf16*, float*, const bf16*, const bf16*, const bf16*, const float*, int64_t,
                                     int64_t);
RmsnormBackwardRows rmsnormBackwardRowsFor(const TensorDesc& x, const TensorDesc& dOut, const TensorDesc& dx,
                                           int64_t C, int& warps, size_t& smem) {
  const RowKernels choice = rowKernels();
  if (choice == RowKernels::TwoPass || x.dtype != DType::BF16 || dOut.dtype != DType::BF16 ||
      dx.dtype != DType::BF16)
    return nullptr;
  if (choice == RowKernels::Block) {
    // Blocks per SM as bounds: at C = 2048, 40 warps per SM at 48 registers (ptxas: no spills;
    // 72 registers unbounded; 48 warps per SM spilled 36 bytes, 56 spilled 72)
    smem = 0;
    warps = static_cast<int>(C / 256);
    switch (C) {
      case 256: return rmsnormBackwardBlockRowKernel<1, 32>;
      case 512: return rmsnormBackwardBlockRowKernel<2, 20>;
      case 1024: return rmsnormBackwardBlockRowKernel<4, 10>;
      case 2048: return rmsnormBackwardBlockRowKernel<8, 5>;
      default: break;
    }
  }
  warps = kDwFusedWarps;
  // Blocks per SM as bounds: at C = 2048 a row per warp takes 168 registers with three (four
  // spilled 116 bytes), pairs 96 with five (8 bytes spilled), the whole block 72 with seven
  // (eight spilled 44 bytes).
  if ((choice == RowKernels::Quad || choice == RowKernels::Block) && C % 1024 == 0 && C <= 2048) {
    smem = static_cast<size_t>(C) * sizeof(float);  // one row of dW for the block's four warps
    switch (C) {
      case 1024: return rmsnormBackwardRowsKernel<4, 1, 8>;
      case 2048: return rmsnormBackwardRowsKernel<4, 2, 7>;
      default: break;
    }
  }
  // pairs for the default's other width (512), or when chosen
  if ((choice == RowKernels::Split || choice == RowKernels::Quad || choice == RowKernels::Block) && C % 512 == 0 &&
      C <= 2048) {
    smem = static_cast<size_t>(C) * 2 * sizeof(float);  // a row of dW per pair of warps
    switch (C) {
      case 512: return rmsnormBackwardRowsKernel<2, 1, 5>;
      case 1024: return rmsnormBackwardRowsKernel<2, 2, 5>;
      case 2048: return rmsnormBackwardRowsKernel<2, 4, 5>;
      default: break;
    }
  }
  switch (C) {  // a row per warp
    case 256: return rmsnormBackwardRowsKernel<1, 1, 3>;
    case 512: return rmsnormBackwardRowsKernel<1, 2, 3>;
    case 1024: return rmsnormBackwardRowsKernel<1, 4, 3>;
    case 2048: return rmsnormBackwardRowsKernel<1, 8, 3>;
    default: return nullptr;
  }
}

void rmsnormBackward(const TensorDesc& dx, const TensorDesc& dWeight, const TensorDesc& dOut,
                     const TensorDesc& x, const TensorDesc& weight, const TensorDesc& rstd) {
  int64_t C = x.lastDim(), N = x.rows();
  if (N == 0 || C == 0) return;  // dx and dWeight are empty
  dim3 block(32, kRowsPerBlock);
  unsigned grid = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
  bool vec = C % 256 == 0 && aligned(dx, 32) && aligned(dOut, 32) && aligned(x, 32) && aligned(weight, 32);
  size_t fusedSmem = static_cast<size_t>(kDwFusedWarps * C) * sizeof(float);
  bool fused = vec && fusedSmem <= 48 * 1024;
  int64_t rows = kDwRowChunk;
  RmsnormBackwardRows rowsKernel = nullptr;
  int rowsWarps = kDwFusedWarps;
  if (fused) {
    // The fused grid is one full wave of resident blocks: at 8 x 2048 rows of 2048 the fixed
    // 32-row chunks filled 0.65 of a wave (2,261 GB/s on an H200) and 16-row chunks made a
    // part-filled second wave (2,043 GB/s); one wave measured 2,371 GB/s (2026-11-28, run 11).
    // dW's summation order therefore follows the GPU's SM count: same GPU model, same bits.
    // Resident blocks per SM depend on the kernel and its shared memory (C): asked once per pair.
    rowsKernel = rmsnormBackwardRowsFor(x, dOut, dx, C, rowsWarps, fusedSmem);
    int64_t slots = static_cast<int64_t>(residentBlocksPerSm(
                        rowsKernel ? reinterpret_cast<const void*>(rowsKernel)
                                   : reinterpret_cast<const void*>(&rmsnormBackwardFusedKernel<bf16, bf16, bf16>),
                        32 * rowsWarps, fusedSmem)) *
                    smCount();
    rows = (N + slots - 1) / slots;
  }
  int64_t chunks = (N + rows - 1) / rows;
  auto* partial = static_cast<float*>(scratch(static_cast<size_t>(chunks * C) * 4));
  if (rowsKernel) {
    rowsKernel<<<static_cast<unsigned>(chunks), dim3(32, rowsWarps), fusedSmem, stream()>>>(
        dx.as<bf16>(), partial, dOut.as<bf16>(), x.as<bf16>(), weight.as<bf16>(), rstd.as<float>(), N, rows);
  } else {
    dispatchFloat(x.dtype, [&](auto xt) {
      using T = decltype(xt);
      dispatchFloat(dOut.dtype, [&](auto gt) {
        using G = decltype(gt);
        if (fused) {
          dispatchFloat(dx.dtype, [&](auto dt) {
            using D = decltype(dt);
            rmsnormBackwardFusedKernel<T, G, D>
                <<<static_cast<unsigned>(chunks), dim3(32, kDwFusedWarps), fusedSmem, stream()>>>(
                    dx.as<D>(), partial, dOut.as<G>(), x.as<T>(), weight.as<T>(), rstd.as<float>(), N, C, rows);
          });
          return;
        }
        dispatchFloat(dx.dtype, [&](auto dt) {
          using D = decltype(dt);
          if (vec)
            rmsnormBackwardDxVecKernel<T, G, D><<<grid, block, 0, stream()>>>(
                dx.as<D>(), dOut.as<G>(), x.as<T>(), weight.as<T>(), rstd.as<float>(), N, C);
          else
            rmsnormBackwardDxKernel<T, G, D><<<grid, block, 0, stream()>>>(
                dx.as<D>(), dOut.as<G>(), x.as<T>(), weight.as<T>(), rstd.as<float>(), N, C);
        });
        dim3 pgrid(static_cast<unsigned>((C + 255) / 256), static_cast<unsigned>(chunks));
        rmsnormDwPartialKernel<T, G><<<pgrid, 256, 0, stream()>>>(partial, dOut.as<G>(), x.as<T>(),
                                                                  rstd.as<float>(), N, C);
      });
    });
  }
  sumChunksKernel<<<static_cast<unsigned>((C + kSumCols - 1) / kSumCols), dim3(kSumCols, kSumRows), 0, stream()>>>(
      dWeight.as<float>(), partial, chunks, C);
  TK_LAUNCH_CHECK("rmsnormBackward");
}

}  // namespace tk::backend
