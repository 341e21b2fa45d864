// CUDA kernels for the memory-bound ops: embedding (deterministic backward through a stable
// radix sort of token ids), RMSNorm (+ fused residual), RoPE, SwiGLU, fused cross-entropy,
// AdamW, casts/fill/copy/scale. Design: one warp per row for row ops of width C (Llama:
// C = 2048, so 64 elements per lane), grid-stride elementwise kernels, f32 math, f32 or bf16
// storage. Where sizes and alignment allow, each thread moves 8 elements per 16-byte (bf16) or
// 2 x 16-byte (f32) access (the `...Vec` kernels); the scalar kernels stay for odd shapes.
// Cross-row reductions (dWeight, embedding rows) go through fixed partitions summed in a fixed
// order, so results are bitwise repeatable.
#include <cub/device/device_radix_sort.cuh>
#include <algorithm>
#include <initializer_list>
#include <string>

#include "common.cuh"
#include "vec8.cuh"

namespace tk::cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // warps per block for row kernels

// Row kernels that hold their whole row in registers (one read of each input, every load of a
// row issued before the first use): the RMSNorm backward and the cross-entropy, where the
// two-pass kernels re-read the row from L1/L2. On an H200 at the 1.1B shapes (2026-11-28): RMSNorm
// backward 2,366 GB/s two-pass, 2,592-2,734 with a row per warp (regs), 3,016-3,059 with a row per
// pair of warps (split), 3,263-3,272 with a row per block of four warps (quad: a quarter of the
// registers per warp, 28 warps per SM instead of 12); cross-entropy 3,049 -> 4,009 GB/s (0.688 ->
// 0.523 ms). The RMSNorm backward's default is a row per block of 8 warps that keeps only 8
// columns per lane in registers (rmsnormBackwardBlockRowKernel, 3,414-3,445 GB/s, 40 warps per
// SM); TINYLLAMA_ROW_KERNELS=quad, split, regs or two-pass keeps an earlier kernel, for
// comparisons; read once per process.
enum class RowKernels { TwoPass, Regs, Split, Quad, Block };
RowKernels rowKernels() {
  static const RowKernels choice = [] {
    constexpr RowKernels named[] = {RowKernels::Block, RowKernels::Quad, RowKernels::Split, RowKernels::Regs,
                                    RowKernels::TwoPass};
    int i = settingChoice("TINYLLAMA_ROW_KERNELS", {"block", "quad", "split", "regs", "two-pass"});
    return i < 0 ? RowKernels::Block : named[i];
  }();
  return choice;
}
bool registerRowKernels() { return rowKernels() != RowKernels::TwoPass; }

// The RMSNorm forward: a row per block (rmsnormBlockRowKernel, the default where it applies) or
// TINYLLAMA_RMSNORM_FWD=warp, a row per warp (rmsnormVecKernel, the default until 2026-11-28),
// for comparisons; read once per process.
bool blockRowForward() {
  static const bool block = settingChoice("TINYLLAMA_RMSNORM_FWD", {"block", "warp"}) != 1;
  return block;
}

bool aligned(const TensorDesc& t, int bytes) { return (reinterpret_cast<uintptr_t>(t.data) % bytes) == 0; }
// Alignment the 8-element vector loads need: 16 bytes for bf16, 32 for f32.
int vecAlign(DType d) { return d == DType::F32 ? 32 : 16; }
bool allAligned(std::initializer_list<const TensorDesc*> ts, int bytes) {
  for (const TensorDesc* t : ts)
    if (!aligned(*t, bytes)) return false;
  return true;
}

// ---------------------------------------------------------------- embedding
template <typename T>
__global__ void embeddingForwardKernel(T* out, const T* table, const int32_t* ids, int64_t N,
                                       int64_t C, int64_t V, int* flag) {
  int64_t n = blockIdx.x;
  if (n >= N) return;
  int32_t id = ids[n];
  bool ok = id >= 0 && id < V;
  if (!ok && threadIdx.x == 0) atomicExch(flag, kBadTokenId);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
    out[n * C + c] = ok ? table[static_cast<int64_t>(id) * C + c] : T(0.0f);
}

__global__ void iotaKernel(int32_t* p, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = static_cast<int32_t>(i);
}

// One block per sorted position; only segment starts work: they add every dOut row of their
// id, in token order (the sort is stable), into the dTable row. Deterministic.
template <typename G>
__global__ void embeddingBackwardKernel(float* dTable, const G* dOut, const int32_t* sortedIds,
                                        const int32_t* order, int64_t N, int64_t C, int64_t V,
                                        int* flag) {
  int64_t i = blockIdx.x;
  int32_t id = sortedIds[i];
  if (i > 0 && sortedIds[i - 1] == id) return;
  if (id < 0 || id >= V) {
    if (threadIdx.x == 0) atomicExch(flag, kBadTokenId);
    return;
  }
  int64_t end = i;
  while (end < N && sortedIds[end] == id) ++end;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = dTable[static_cast<int64_t>(id) * C + c];
    for (int64_t j = i; j < end; ++j) acc += ld(dOut, static_cast<int64_t>(order[j]) * C + c);
    dTable[static_cast<int64_t>(id) * C + c] = acc;
  }
}

// Vectorised form (C % 8 == 0, aligned dOut): block (segment start, 256-column slice); its 8
// warps take occurrences w, w + 8, ... of the id (8 columns per lane, 16-byte loads) and the
// warp sums are added to the dTable row in warp order (fixed: repeatable bits). In real text a
// frequent token ("," or a newline) has hundreds of occurrences per batch, which the kernel above
// walks serially: 2.3 ms per call in the 1.1B step against 0.17 ms on uniformly random ids.
constexpr int kEmbWarps = 8;
template <typename G>
__global__ void embeddingBackwardVecKernel(float* dTable, const G* dOut, const int32_t* sortedIds,
                                           const int32_t* order, int64_t N, int64_t C, int64_t V, int* flag) {
  __shared__ __align__(16) float sums[kEmbWarps][256];
  int64_t i = blockIdx.x;
  int32_t id = sortedIds[i];
  if (i > 0 && sortedIds[i - 1] == id) return;
  int warp = threadIdx.y, lane = threadIdx.x;
  if (id < 0 || id >= V) {
    if (warp == 0 && lane == 0 && blockIdx.y == 0) atomicExch(flag, kBadTokenId);
    return;
  }
  int64_t end = i + 1;  // first position past the segment, 32 positions per ballot
  for (;;) {
    int64_t pos = end + lane;
    unsigned same = __ballot_sync(0xffffffffu, pos < N && sortedIds[pos] == id);
    if (same != 0xffffffffu) {
      end += __ffs(~same) - 1;
      break;
    }
    end += 32;
  }
  int64_t c0 = static_cast<int64_t>(blockIdx.y) * 256 + lane * 8;
  float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  if (c0 < C) {
    for (int64_t j = i + warp; j < end; j += kEmbWarps) {
      float g[8];
      load8(dOut + static_cast<int64_t>(order[j]) * C + c0, g);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] += g[e];
    }
  }
  store8(&sums[warp][lane * 8], acc);
  __syncthreads();
  int t = warp * 32 + lane;
  int64_t c = static_cast<int64_t>(blockIdx.y) * 256 + t;
  if (c < C) {
    float* row = dTable + static_cast<int64_t>(id) * C;
    float a = row[c];
#pragma unroll
    for (int w = 0; w < kEmbWarps; ++w) a += sums[w][t];
    row[c] = a;
  }
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

template <typename T, typename G, typename D>
__global__ void rmsnormBackwardDxVecKernel(D* dx, const G* dOut, const T* x, const T* w,
                                           const float* rstd, int64_t N, int64_t C) {
  int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.y;
  if (row >= N) return;
  float dot = 0.0f;
  for (int64_t c = threadIdx.x * 8; c < C; c += 256) {
    float xv[8], gv[8], wv[8];
    load8(x + row * C + c, xv);
    load8(dOut + row * C + c, gv);
    load8(w + c, wv);
#pragma unroll
    for (int i = 0; i < 8; ++i) dot += gv[i] * wv[i] * xv[i];
  }
  dot = warpSum(dot);
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
    float dot = 0.0f;
    for (int64_t c = lane * 8; c < C; c += 256) {
      float xv[8], gv[8], wv[8];
      load8(xr + c, xv);
      load8(gr + c, gv);
      load8(w + c, wv);
#pragma unroll
      for (int i = 0; i < 8; ++i) dot += gv[i] * wv[i] * xv[i];
    }
    dot = warpSum(dot);
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

// ---------------------------------------------------------------- rope
// The cos/sin of each (position, frequency) are computed once per call into a [T, D/2] table
// (powf + sincosf per entry, the same expressions as before, so the same bits) instead of once
// per element: the rotation itself then reads x and a table that stays in L2, and is
// memory-bound rather than bound by the transcendental functions (B * H times fewer of them).
__global__ void ropeTableKernel(float2* table, int64_t T_, int64_t half, int64_t D, float base,
                                int64_t offset) {
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < T_ * half;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t t = idx / half, i = idx % half;
    float invFreq = 1.0f / powf(base, static_cast<float>(2 * i) / static_cast<float>(D));
    float angle = static_cast<float>(t + offset) * invFreq;
    float s, c;
    sincosf(angle, &s, &c);
    table[idx] = make_float2(c, s);
  }
}

template <typename T>
__global__ void ropeKernel(T* out, const T* x, const float2* table, int64_t rows, int64_t T_,
                           int64_t H, int64_t D, float sign) {
  int64_t half = D / 2;
  int64_t total = rows * half;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t row = idx / half, i = idx % half;
    int64_t t = (row / H) % T_;
    float2 cs = table[t * half + i];
    float c = cs.x, s = cs.y * sign;
    float x1 = ld(x, row * D + i), x2 = ld(x, row * D + i + half);
    st(out, row * D + i, x1 * c - x2 * s);
    st(out, row * D + i + half, x2 * c + x1 * s);
  }
}

// Vectorised form: a thread rotates 8 adjacent pairs (one 16-byte load of each half for bf16),
// with 32-bit index math (the scalar kernel's three 64-bit divisions per pair made it
// instruction-bound at 19% of copy bandwidth). Same expressions per element. Needs
// half % 8 == 0, 16/32-byte aligned rows, rows * half / 8 < 2^32.
template <typename T>
__global__ void ropeVecKernel(T* out, const T* x, const float2* table, uint32_t rows, uint32_t T_,
                              uint32_t H, uint32_t half, float sign) {
  uint32_t chunks = half / 8, total = rows * chunks;
  for (uint32_t idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
    uint32_t row = idx / chunks, i0 = (idx - row * chunks) * 8;
    uint32_t t = (row / H) % T_;
    int64_t base = static_cast<int64_t>(row) * 2 * half + i0;
    float x1[8], x2[8], y1[8], y2[8];
    load8(x + base, x1);
    load8(x + base + half, x2);
    const float4* cs = reinterpret_cast<const float4*>(table + static_cast<int64_t>(t) * half + i0);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      float4 v = cs[k];  // (cos, sin) of pairs 2k and 2k + 1
      float c0 = v.x, s0 = v.y * sign, c1 = v.z, s1 = v.w * sign;
      y1[2 * k] = x1[2 * k] * c0 - x2[2 * k] * s0;
      y2[2 * k] = x2[2 * k] * c0 + x1[2 * k] * s0;
      y1[2 * k + 1] = x1[2 * k + 1] * c1 - x2[2 * k + 1] * s1;
      y2[2 * k + 1] = x2[2 * k + 1] * c1 + x1[2 * k + 1] * s1;
    }
    store8(out + base, y1);
    store8(out + base + half, y2);
  }
}

// ---------------------------------------------------------------- swiglu
template <typename T>
__global__ void swigluForwardKernel(T* out, const T* gate, const T* up, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float g = ld(gate, i), u = ld(up, i);
    st(out, i, g / (1.0f + expf(-g)) * u);
  }
}

template <typename T>
__global__ void swigluBackwardKernel(T* dGate, T* dUp, const T* dOut, const T* gate, const T* up,
                                     int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float g = ld(gate, i), u = ld(up, i), d = ld(dOut, i);  // all read before any write
    float sig = 1.0f / (1.0f + expf(-g));
    st(dUp, i, d * g * sig);
    st(dGate, i, d * u * sig * (1.0f + g * (1.0f - sig)));
  }
}

// Vectorised forms (n % 8 == 0, 16/32-byte aligned): 8 elements per thread and iteration, so
// each array moves in 16-byte transactions (the scalar kernels reached 56% / 69% of copy
// bandwidth on 2-byte loads). Same per-element expressions as above.
template <typename T>
__global__ void swigluForwardVecKernel(T* out, const T* gate, const T* up, int64_t n8) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n8;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float g[8], u[8], o[8];
    load8(gate + 8 * i, g);
    load8(up + 8 * i, u);
#pragma unroll
    for (int e = 0; e < 8; ++e) o[e] = g[e] / (1.0f + expf(-g[e])) * u[e];
    store8(out + 8 * i, o);
  }
}

template <typename T>
__global__ void swigluBackwardVecKernel(T* dGate, T* dUp, const T* dOut, const T* gate, const T* up,
                                        int64_t n8) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n8;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float g[8], u[8], d[8], dg[8], du[8];
    load8(gate + 8 * i, g);
    load8(up + 8 * i, u);
    load8(dOut + 8 * i, d);  // all read before any write (dGate/dUp may alias gate/up)
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      float sig = 1.0f / (1.0f + expf(-g[e]));
      du[e] = d[e] * g[e] * sig;
      dg[e] = d[e] * u[e] * sig * (1.0f + g[e] * (1.0f - sig));
    }
    store8(dUp + 8 * i, du);
    store8(dGate + 8 * i, dg);
  }
}

// ---------------------------------------------------------------- cross-entropy
// Threads per row block of the cross-entropy kernels. 512 rather than 1024: a row's block
// spends part of its life in the block-wide log-sum-exp merge, and smaller blocks keep more rows
// in flight per SM. Measured on an H200 at 16384 x 32000 bf16 (2026-11-28, run 11): 1024 threads
// 0.785 ms, 512 0.682 ms, 256 0.766 ms.
constexpr unsigned kCrossEntropyThreads = 512;

// Combines every thread's running (max, sum of exp(x - max)) over the block (up to 1024 threads):
// shuffles within each warp, then the warps' pairs in warp order (a fixed order: repeatable
// bits). Returns the log-sum-exp to every thread; all threads of the block must call it.
__device__ float blockLogSumExp(float m, float s) {
  __shared__ float sMax[32], sSum[32];
  __shared__ float sLse;
  for (int o = 16; o > 0; o >>= 1) {
    float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    float mm = fmaxf(m, m2);
    s = (m == -INFINITY ? 0.0f : s * __expf(m - mm)) + (m2 == -INFINITY ? 0.0f : s2 * __expf(m2 - mm));
    m = mm;
  }
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  if (lane == 0) {
    sMax[warp] = m;
    sSum[warp] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float M = -INFINITY;
    for (int w = 0; w < warps; ++w) M = fmaxf(M, sMax[w]);
    float S = 0.0f;
    for (int w = 0; w < warps; ++w)
      if (sMax[w] != -INFINITY) S += sSum[w] * __expf(sMax[w] - M);
    sLse = M + logf(S);
  }
  __syncthreads();
  return sLse;
}

// One block per row: online max/sum over the row, then the gradient written over the logits.
template <typename T>
__global__ void crossEntropyKernel(float* losses, T* logits, const int32_t* targets, int64_t V,
                                   float dlossScale, bool computeGrad, int* flag) {
  int64_t row = blockIdx.x;
  T* lr = logits + row * V;
  int32_t target = targets[row];
  if (target >= V) {
    if (threadIdx.x == 0) atomicExch(flag, kBadTarget);
    target = -1;
  }
  if (target < 0) {
    if (threadIdx.x == 0) losses[row] = 0.0f;
    if (computeGrad)
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) st(lr, j, 0.0f);
    return;
  }
  float m = -INFINITY, s = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    float v = ld(lr, j);
    if (v > m) {
      s = s * __expf(m - v) + 1.0f;
      m = v;
    } else {
      s += __expf(v - m);
    }
  }
  // the target's logit is read before any thread overwrites the row with its gradient
  float targetLogit = threadIdx.x == 0 ? ld(lr, target) : 0.0f;
  float lse = blockLogSumExp(m, s);
  if (threadIdx.x == 0) losses[row] = lse - targetLogit;
  if (!computeGrad) return;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    float p = __expf(ld(lr, j) - lse);
    st(lr, j, (p - (j == target ? 1.0f : 0.0f)) * dlossScale);
  }
}

// Vectorised form (V % 8 == 0, aligned rows): 8 logits per 16-byte load, the running (max, sum)
// rescaled once per 8 logits instead of a branch per logit; the gradient pass likewise. The
// scalar kernel above ran at 30% of copy bandwidth (minimal bytes) on 2-byte loads.
template <typename T>
__global__ void crossEntropyVecKernel(float* losses, T* logits, const int32_t* targets, int64_t V,
                                      float dlossScale, bool computeGrad, int* flag) {
  int64_t row = blockIdx.x;
  T* lr = logits + row * V;
  int32_t target = targets[row];
  if (target >= V) {
    if (threadIdx.x == 0) atomicExch(flag, kBadTarget);
    target = -1;
  }
  if (target < 0) {
    if (threadIdx.x == 0) losses[row] = 0.0f;
    if (computeGrad) {
      const float zeros[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
      for (int64_t j = threadIdx.x * 8; j < V; j += blockDim.x * 8) store8(lr + j, zeros);
    }
    return;
  }
  float m = -INFINITY, s = 0.0f;
  for (int64_t j = threadIdx.x * 8; j < V; j += blockDim.x * 8) {
    float v[8];
    load8(lr + j, v);
    float mx = v[0];
#pragma unroll
    for (int e = 1; e < 8; ++e) mx = fmaxf(mx, v[e]);
    float nm = fmaxf(m, mx);
    if (nm == -INFINITY) continue;  // all -inf so far: nothing to add
    float acc = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc += __expf(v[e] - nm);
    s = (m == -INFINITY ? 0.0f : s * __expf(m - nm)) + acc;
    m = nm;
  }
  float targetLogit = threadIdx.x == 0 ? ld(lr, target) : 0.0f;  // read before any gradient write
  float lse = blockLogSumExp(m, s);
  if (threadIdx.x == 0) losses[row] = lse - targetLogit;
  if (!computeGrad) return;
  for (int64_t j = threadIdx.x * 8; j < V; j += blockDim.x * 8) {
    float v[8];
    load8(lr + j, v);
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = (__expf(v[e] - lse) - (j + e == target ? 1.0f : 0.0f)) * dlossScale;
    store8(lr + j, v);
  }
}

// Sum (or max) of one value per thread over the block, the same on every thread: warp
// shuffles, then each thread adds the warps' results from shared memory in warp order (fixed
// order: repeatable bits). `slots` is a shared [32] array owned by this reduction.
template <bool kMax>
__device__ __forceinline__ float blockAllReduce(float v, float* slots) {
  for (int o = 16; o > 0; o >>= 1) {
    float u = __shfl_xor_sync(0xffffffffu, v, o);
    v = kMax ? fmaxf(v, u) : v + u;
  }
  if (threadIdx.x % 32 == 0) slots[threadIdx.x / 32] = v;
  __syncthreads();
  float r = slots[0];
  for (unsigned w = 1; w < blockDim.x / 32; ++w) r = kMax ? fmaxf(r, slots[w]) : r + slots[w];
  return r;
}

// 2^x by the SFU (what __expf uses after its multiply by log2 e).
__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// crossEntropyVecKernel with the row in registers (bf16, V <= kIters * 8 * blockDim.x): the
// row is read once with all of a thread's loads in flight, the maximum is taken before any
// exponential (no running rescale), and the gradient is written from the registers instead of
// a second read of the row (64 KB at V = 32000, which the two-pass kernel re-reads from L2).
// Per element it issues few instructions, as the SFU's two exponentials per element take
// about half the time the row's bytes take on an H100/H200 SM: the maximum over bf16 pairs
// (no unpacking), each exponent one FFMA in base 2, and for a positive dlossScale its log2
// folded into the gradient's exponent (p * scale = 2^(x log2 e - lse log2 e + log2 scale));
// the target's -scale is applied only in the 8-column chunk that holds it.
template <int kIters>
__global__ void __launch_bounds__(kCrossEntropyThreads, 2)
    crossEntropyRegsKernel(float* losses, bf16* logits, const int32_t* targets, int64_t V, float dlossScale,
                           bool computeGrad, int* flag) {
  constexpr float kLog2e = 1.4426950408889634f;
  __shared__ float sMax[32], sSum[32];
  int64_t row = blockIdx.x;
  bf16* lr = logits + row * V;
  int32_t target = targets[row];
  if (target >= V) {
    if (threadIdx.x == 0) atomicExch(flag, kBadTarget);
    target = -1;
  }
  if (target < 0) {
    if (threadIdx.x == 0) losses[row] = 0.0f;
    if (computeGrad) {
      const float zeros[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
      for (int64_t j = threadIdx.x * 8; j < V; j += blockDim.x * 8) store8(lr + j, zeros);
    }
    return;
  }
  // Columns it * kStride + j0: the launcher picks kIters = ceil(V / kStride), so only the last
  // turn can run past the row, and only it tests (a test per turn used up the predicate
  // registers and spilled at kIters = 8).
  constexpr int kStride = 8 * kCrossEntropyThreads;
  const int v = static_cast<int>(V), j0 = static_cast<int>(threadIdx.x) * 8;
  auto inRow = [&](int it) { return it < kIters - 1 || it * kStride + j0 < v; };
  Raw8<bf16> xs[kIters];
#pragma unroll
  for (int it = 0; it < kIters; ++it)
    if (inRow(it)) loadRaw8(lr + it * kStride + j0, xs[it]);
  __nv_bfloat162 m2 = __floats2bfloat162_rn(-INFINITY, -INFINITY);
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    if (!inRow(it)) continue;
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&xs[it].v);
#pragma unroll
    for (int i = 0; i < 4; ++i) m2 = __hmax2(m2, h[i]);
  }
  float targetLogit = threadIdx.x == 0 ? ld(lr, target) : 0.0f;  // read before any gradient write
  float m = blockAllReduce<true>(fmaxf(__low2float(m2), __high2float(m2)), sMax);
  float s = 0.0f;
  if (m != -INFINITY) {
    const float mScaled = m * kLog2e;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      if (!inRow(it)) continue;
      float f[8];
      unpack8Again(xs[it], f);
#pragma unroll
      for (int e = 0; e < 8; ++e) s += fastExp2(fmaf(f[e], kLog2e, -mScaled));
    }
  }
  s = blockAllReduce<false>(s, sSum);
  float lse = m + logf(s);
  if (threadIdx.x == 0) losses[row] = lse - targetLogit;
  if (!computeGrad) return;
  const float logScale = dlossScale > 0.0f ? log2f(dlossScale) : NAN;
  const bool folded = isfinite(logScale);
  const float offset = lse * kLog2e - (folded ? logScale : 0.0f), post = folded ? 1.0f : dlossScale;
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    if (!inRow(it)) continue;
    int j = it * kStride + j0;
    float f[8];
    unpack8Again(xs[it], f);
    if (folded) {
#pragma unroll
      for (int e = 0; e < 8; ++e) f[e] = fastExp2(fmaf(f[e], kLog2e, -offset));
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) f[e] = fastExp2(fmaf(f[e], kLog2e, -offset)) * post;
    }
    unsigned d = static_cast<unsigned>(target - j);
    if (d < 8) {
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if (static_cast<unsigned>(e) == d) f[e] -= dlossScale;
    }
    store8(lr + j, f);
  }
}

// ---------------------------------------------------------------- adamw
template <typename P>
__global__ void adamwKernel(P* param, float* master, const float* grad, float* m, float* v,
                            int64_t n, float beta1, float beta2, float eps, float gradScale,
                            float stepSize, float bc2Sqrt, float decay) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float g = grad[i] * gradScale;
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float* w = master ? master : reinterpret_cast<float*>(param);
    float wi = w[i] * decay;
    wi -= stepSize * mi / (sqrtf(vi) / bc2Sqrt + eps);
    w[i] = wi;
    if (master) st(param, i, wi);
  }
}

// Four elements per thread with 16-byte loads (numel % 4 == 0, aligned): same arithmetic.
template <typename P>
__global__ void adamwVec4Kernel(P* param, float* master, const float* grad, float* m, float* v,
                                int64_t n4, float beta1, float beta2, float eps, float gradScale,
                                float stepSize, float bc2Sqrt, float decay) {
  float* w = master ? master : reinterpret_cast<float*>(param);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float4 g = reinterpret_cast<const float4*>(grad)[i], mi = reinterpret_cast<float4*>(m)[i],
           vi = reinterpret_cast<float4*>(v)[i], wi = reinterpret_cast<float4*>(w)[i];
    float* gp = &g.x;
    float* mp = &mi.x;
    float* vp = &vi.x;
    float* wp = &wi.x;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float gj = gp[j] * gradScale;
      mp[j] = beta1 * mp[j] + (1.0f - beta1) * gj;
      vp[j] = beta2 * vp[j] + (1.0f - beta2) * gj * gj;
      wp[j] = wp[j] * decay - stepSize * mp[j] / (sqrtf(vp[j]) / bc2Sqrt + eps);
    }
    reinterpret_cast<float4*>(m)[i] = mi;
    reinterpret_cast<float4*>(v)[i] = vi;
    reinterpret_cast<float4*>(w)[i] = wi;
    if (master) {
      __nv_bfloat162 lo = __floats2bfloat162_rn(wi.x, wi.y), hi = __floats2bfloat162_rn(wi.z, wi.w);
      uint2 raw;
      raw.x = *reinterpret_cast<uint32_t*>(&lo);
      raw.y = *reinterpret_cast<uint32_t*>(&hi);
      reinterpret_cast<uint2*>(param)[i] = raw;
    }
  }
}

// Embedding rows copied 16 bytes at a time (C * elementSize % 16 == 0, aligned).
__global__ void embeddingForwardVecKernel(uint4* out, const uint4* table, const int32_t* ids, int64_t N,
                                          int64_t rowVecs, int64_t V, int* flag) {
  int64_t n = blockIdx.x;
  if (n >= N) return;
  int32_t id = ids[n];
  bool ok = id >= 0 && id < V;
  if (!ok && threadIdx.x == 0) atomicExch(flag, kBadTokenId);
  for (int64_t c = threadIdx.x; c < rowVecs; c += blockDim.x)
    out[n * rowVecs + c] = ok ? table[static_cast<int64_t>(id) * rowVecs + c] : make_uint4(0, 0, 0, 0);
}

// ---------------------------------------------------------------- elementwise
template <typename O, typename X>
__global__ void castKernel(O* out, const X* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    st(out, i, ld(x, i));
}

__global__ void castU16Kernel(int32_t* out, const uint16_t* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = x[i];
}

template <typename T>
__global__ void fillKernel(T* p, T v, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = v;
}

template <typename T>
__global__ void scaleKernel(T* p, float s, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    st(p, i, ld(p, i) * s);
}

int gridFor(int64_t n) { return blocksFor(n, 256, static_cast<int64_t>(smCount()) * 16); }

}  // namespace
}  // namespace tk::cuda

namespace tk::backend {
using namespace tk::cuda;

void embeddingForward(const TensorDesc& out, const TensorDesc& table, const TensorDesc& ids) {
  int64_t N = ids.numel, C = table.shape[1], V = table.shape[0];
  if (N == 0) return;
  size_t rowBytes = static_cast<size_t>(C) * dtypeSize(table.dtype);
  if (rowBytes % 16 == 0 && aligned(out, 16) && aligned(table, 16)) {
    int64_t rowVecs = static_cast<int64_t>(rowBytes / 16);
    int threads = static_cast<int>(std::min<int64_t>(256, (rowVecs + 31) / 32 * 32));
    embeddingForwardVecKernel<<<static_cast<unsigned>(N), threads, 0, stream()>>>(
        out.as<uint4>(), table.as<uint4>(), ids.as<int32_t>(), N, rowVecs, V, errorFlag());
  } else {
    dispatchFloat(table.dtype, [&](auto tag) {
      using T = decltype(tag);
      embeddingForwardKernel<T><<<static_cast<unsigned>(N), 256, 0, stream()>>>(
          out.as<T>(), table.as<T>(), ids.as<int32_t>(), N, C, V, errorFlag());
    });
  }
  TK_LAUNCH_CHECK("embeddingForward");
}

void embeddingBackward(const TensorDesc& dTable, const TensorDesc& dOut, const TensorDesc& ids) {
  int64_t N = ids.numel, C = dTable.shape[1], V = dTable.shape[0];
  if (N == 0) return;
  // scratch layout: sorted ids | order in | order out | cub temp
  size_t tempBytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, tempBytes, static_cast<const int32_t*>(nullptr),
                                  static_cast<int32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                  static_cast<int32_t*>(nullptr), static_cast<int>(N));
  size_t arr = (static_cast<size_t>(N) * 4 + 255) / 256 * 256;
  char* base = static_cast<char*>(scratch(3 * arr + tempBytes));
  auto* sorted = reinterpret_cast<int32_t*>(base);
  auto* orderIn = reinterpret_cast<int32_t*>(base + arr);
  auto* orderOut = reinterpret_cast<int32_t*>(base + 2 * arr);
  void* temp = base + 3 * arr;
  iotaKernel<<<gridFor(N), 256, 0, stream()>>>(orderIn, N);
  TK_LAUNCH_CHECK("embeddingBackward iota");
  auto st = cub::DeviceRadixSort::SortPairs(temp, tempBytes, ids.as<int32_t>(), sorted, orderIn,
                                            orderOut, static_cast<int>(N), 0, 32, stream());
  if (st != cudaSuccess) throw Error(std::string("cub radix sort failed: ") + cudaGetErrorString(st));
  bool vec = C % 8 == 0 && aligned(dOut, vecAlign(dOut.dtype));
  dispatchFloat(dOut.dtype, [&](auto tag) {
    using G = decltype(tag);
    if (vec)
      embeddingBackwardVecKernel<G><<<dim3(static_cast<unsigned>(N), static_cast<unsigned>((C + 255) / 256)),
                                      dim3(32, kEmbWarps), 0, stream()>>>(dTable.as<float>(), dOut.as<G>(), sorted,
                                                                          orderOut, N, C, V, errorFlag());
    else
      embeddingBackwardKernel<G><<<static_cast<unsigned>(N), 256, 0, stream()>>>(
          dTable.as<float>(), dOut.as<G>(), sorted, orderOut, N, C, V, errorFlag());
  });
  TK_LAUNCH_CHECK("embeddingBackward");
}

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
// driver once per (kernel, shared memory) pair.
int residentBlocksPerSm(const void* kernel, int threads, size_t smem) {
  struct Entry {
    const void* kernel;
    int threads;
    size_t smem;
    int perSm;
  };
  static Entry cache[8];
  static int used = 0;
  for (int i = 0; i < used; ++i)
    if (cache[i].kernel == kernel && cache[i].threads == threads && cache[i].smem == smem) return cache[i].perSm;
  int perSm = 0;
  TK_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, kernel, threads, smem));
  perSm = std::max(perSm, 1);
  cache[used % 8] = Entry{kernel, threads, smem, perSm};
  used = std::min(used + 1, 8);
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
  if (N == 0) return;
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

void rope(const TensorDesc& out, const TensorDesc& x, float base, int64_t positionOffset,
          bool inverse) {
  int64_t T_ = x.shape[1], H = x.shape[2], D = x.shape[3];
  int64_t rows = x.numel / D;
  if (rows == 0) return;
  int64_t half = D / 2;
  // The table depends only on (T, D, base, offset): kept in its own scratch region and reused
  // while calls repeat it (a training step makes 4 RoPE calls per layer with one table; each
  // recomputation was a launch of T * D/2 powf + sincosf). The region only grows for a larger
  // table, which is a new key, so the cached key always describes what the region holds.
  struct TableKey {
    int64_t T, D, offset;
    float base;
  };
  static TableKey cached{-1, -1, -1, 0.0f};
  auto* table = static_cast<float2*>(ropeTableScratch(sizeof(float2) * static_cast<size_t>(T_ * half)));
  if (cached.T != T_ || cached.D != D || cached.offset != positionOffset || cached.base != base) {
    cached.T = -1;  // invalid until the table is written
    ropeTableKernel<<<gridFor(T_ * half), 256, 0, stream()>>>(table, T_, half, D, base, positionOffset);
    TK_LAUNCH_CHECK("rope (table)");
    cached = TableKey{T_, D, positionOffset, base};
  }
  bool vec = half % 8 == 0 && rows * (half / 8) < (int64_t{1} << 32) && allAligned({&x, &out}, vecAlign(x.dtype));
  dispatchFloat(x.dtype, [&](auto tag) {
    using E = decltype(tag);
    if (vec)
      ropeVecKernel<E><<<gridFor(rows * half / 8), 256, 0, stream()>>>(
          out.as<E>(), x.as<E>(), table, static_cast<uint32_t>(rows), static_cast<uint32_t>(T_),
          static_cast<uint32_t>(H), static_cast<uint32_t>(half), inverse ? -1.0f : 1.0f);
    else
      ropeKernel<E><<<gridFor(rows * half), 256, 0, stream()>>>(out.as<E>(), x.as<E>(), table, rows, T_, H,
                                                               D, inverse ? -1.0f : 1.0f);
  });
  TK_LAUNCH_CHECK("rope");
}

void swigluForward(const TensorDesc& out, const TensorDesc& gate, const TensorDesc& up) {
  if (gate.numel == 0) return;
  dispatchFloat(gate.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (gate.numel % 8 == 0 && allAligned({&out, &gate, &up}, vecAlign(gate.dtype)))
      swigluForwardVecKernel<T><<<gridFor(gate.numel / 8), 256, 0, stream()>>>(out.as<T>(), gate.as<T>(),
                                                                               up.as<T>(), gate.numel / 8);
    else
      swigluForwardKernel<T><<<gridFor(gate.numel), 256, 0, stream()>>>(out.as<T>(), gate.as<T>(),
                                                                        up.as<T>(), gate.numel);
  });
  TK_LAUNCH_CHECK("swigluForward");
}

void swigluBackward(const TensorDesc& dGate, const TensorDesc& dUp, const TensorDesc& dOut,
                    const TensorDesc& gate, const TensorDesc& up) {
  if (gate.numel == 0) return;
  dispatchFloat(gate.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (gate.numel % 8 == 0 && allAligned({&dGate, &dUp, &dOut, &gate, &up}, vecAlign(gate.dtype)))
      swigluBackwardVecKernel<T><<<gridFor(gate.numel / 8), 256, 0, stream()>>>(
          dGate.as<T>(), dUp.as<T>(), dOut.as<T>(), gate.as<T>(), up.as<T>(), gate.numel / 8);
    else
      swigluBackwardKernel<T><<<gridFor(gate.numel), 256, 0, stream()>>>(
          dGate.as<T>(), dUp.as<T>(), dOut.as<T>(), gate.as<T>(), up.as<T>(), gate.numel);
  });
  TK_LAUNCH_CHECK("swigluBackward");
}

void crossEntropy(const TensorDesc& losses, const TensorDesc& logits, const TensorDesc& targets,
                  float dlossScale, bool computeGrad) {
  int64_t V = logits.lastDim(), N = logits.rows();
  if (N == 0) return;
  int64_t iters = (V + 8 * kCrossEntropyThreads - 1) / (8 * kCrossEntropyThreads);
  if (registerRowKernels() && logits.dtype == DType::BF16 && V % 8 == 0 && aligned(logits, 16) && iters <= 8) {
    using Kernel = void (*)(float*, bf16*, const int32_t*, int64_t, float, bool, int*);
    const Kernel kernels[] = {crossEntropyRegsKernel<1>, crossEntropyRegsKernel<2>, crossEntropyRegsKernel<3>,
                              crossEntropyRegsKernel<4>, crossEntropyRegsKernel<5>, crossEntropyRegsKernel<6>,
                              crossEntropyRegsKernel<7>, crossEntropyRegsKernel<8>};
    kernels[iters - 1]<<<static_cast<unsigned>(N), kCrossEntropyThreads, 0, stream()>>>(
        losses.as<float>(), logits.as<bf16>(), targets.as<int32_t>(), V, dlossScale, computeGrad, errorFlag());
    TK_LAUNCH_CHECK("crossEntropy");
    return;
  }
  dispatchFloat(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (V % 8 == 0 && aligned(logits, vecAlign(logits.dtype)))
      crossEntropyVecKernel<T><<<static_cast<unsigned>(N), kCrossEntropyThreads, 0, stream()>>>(
          losses.as<float>(), logits.as<T>(), targets.as<int32_t>(), V, dlossScale, computeGrad,
          errorFlag());
    else
      crossEntropyKernel<T><<<static_cast<unsigned>(N), kCrossEntropyThreads, 0, stream()>>>(
          losses.as<float>(), logits.as<T>(), targets.as<int32_t>(), V, dlossScale, computeGrad,
          errorFlag());
  });
  TK_LAUNCH_CHECK("crossEntropy");
}

void adamw(const TensorDesc& param, const TensorDesc* master, const TensorDesc& grad,
           const TensorDesc& m, const TensorDesc& v, const AdamWOptions& o) {
  if (param.numel == 0) return;
  float bc1 = 1.0f - static_cast<float>(std::pow(static_cast<double>(o.beta1), static_cast<double>(o.step)));
  float bc2 = 1.0f - static_cast<float>(std::pow(static_cast<double>(o.beta2), static_cast<double>(o.step)));
  float stepSize = o.lr / bc1, bc2Sqrt = std::sqrt(bc2), decay = 1.0f - o.lr * o.weightDecay;
  int grid = gridFor(param.numel);
  bool vec = param.numel % 4 == 0 && aligned(param, 16) && aligned(grad, 16) && aligned(m, 16) &&
             aligned(v, 16) && (!master || aligned(*master, 16));
  if (vec) {
    int64_t n4 = param.numel / 4;
    if (master)
      adamwVec4Kernel<bf16><<<gridFor(n4), 256, 0, stream()>>>(param.as<bf16>(), master->as<float>(), grad.as<float>(),
                                                              m.as<float>(), v.as<float>(), n4, o.beta1, o.beta2, o.eps,
                                                              o.gradScale, stepSize, bc2Sqrt, decay);
    else
      adamwVec4Kernel<float><<<gridFor(n4), 256, 0, stream()>>>(param.as<float>(), nullptr, grad.as<float>(),
                                                               m.as<float>(), v.as<float>(), n4, o.beta1, o.beta2, o.eps,
                                                               o.gradScale, stepSize, bc2Sqrt, decay);
  } else if (master) {
    adamwKernel<bf16><<<grid, 256, 0, stream()>>>(param.as<bf16>(), master->as<float>(), grad.as<float>(),
                                                  m.as<float>(), v.as<float>(), param.numel, o.beta1,
                                                  o.beta2, o.eps, o.gradScale, stepSize, bc2Sqrt, decay);
  } else {
    adamwKernel<float><<<grid, 256, 0, stream()>>>(param.as<float>(), nullptr, grad.as<float>(),
                                                   m.as<float>(), v.as<float>(), param.numel, o.beta1,
                                                   o.beta2, o.eps, o.gradScale, stepSize, bc2Sqrt, decay);
  }
  TK_LAUNCH_CHECK("adamw");
}

void cast(const TensorDesc& out, const TensorDesc& x) {
  if (x.numel == 0) return;
  if (out.dtype == x.dtype) {
    if (out.data != x.data)
      TK_CUDA(cudaMemcpyAsync(out.data, x.data, x.bytes(), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  if (x.dtype == DType::U16) {
    castU16Kernel<<<gridFor(x.numel), 256, 0, stream()>>>(out.as<int32_t>(), x.as<uint16_t>(), x.numel);
  } else {
    dispatchFloat(x.dtype, [&](auto xt) {
      using X = decltype(xt);
      dispatchFloat(out.dtype, [&](auto ot) {
        using O = decltype(ot);
        castKernel<O, X><<<gridFor(x.numel), 256, 0, stream()>>>(out.as<O>(), x.as<X>(), x.numel);
      });
    });
  }
  TK_LAUNCH_CHECK("cast");
}

void fill(const TensorDesc& t, double value) {
  if (t.numel == 0) return;
  int grid = gridFor(t.numel);
  switch (t.dtype) {
    case DType::F32: fillKernel<float><<<grid, 256, 0, stream()>>>(t.as<float>(), static_cast<float>(value), t.numel); break;
    case DType::BF16: fillKernel<bf16><<<grid, 256, 0, stream()>>>(t.as<bf16>(), __float2bfloat16_rn(static_cast<float>(value)), t.numel); break;
    case DType::I32: fillKernel<int32_t><<<grid, 256, 0, stream()>>>(t.as<int32_t>(), static_cast<int32_t>(value), t.numel); break;
    case DType::U16: fillKernel<uint16_t><<<grid, 256, 0, stream()>>>(t.as<uint16_t>(), static_cast<uint16_t>(value), t.numel); break;
  }
  TK_LAUNCH_CHECK("fill");
}

void copy(const TensorDesc& dst, const TensorDesc& src) {
  if (src.numel == 0 || dst.data == src.data) return;
  TK_CUDA(cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDeviceToDevice, stream()));
}

void scale(const TensorDesc& t, float s) {
  if (t.numel == 0) return;
  dispatchFloat(t.dtype, [&](auto tag) {
    using T = decltype(tag);
    scaleKernel<T><<<gridFor(t.numel), 256, 0, stream()>>>(t.as<T>(), s, t.numel);
  });
  TK_LAUNCH_CHECK("scale");
}

}  // namespace tk::backend
