// RMSNorm forward (with the residual add) and backward for bf16 rows of 256-2048 columns, as
// persistent kernels whose input rows arrive through shared memory by cp.async.
//
// Why: the register-row kernels of ops.cu keep a row's loads in flight in registers, so the
// bytes in flight per SM are bounded by the register file, and each block's warps start, load,
// compute and retire together, so the memory pipe drains between blocks. Both stayed at 77-80% of
// the copy bandwidth on an H200 (2026-11-28). Here the grid is one wave of resident blocks and
// each warp owns a ring of kStages row buffers in shared memory: while it computes row k, its
// rows k + 1 ... k + kStages - 1 are being copied by cp.async (16 bytes per lane per instruction,
// through L2 only), which costs no registers, and the copies never stop between rows. Warp w of
// the grid takes rows w, w + W, w + 2W, ... (W = warps in the grid), so the rows in flight at
// any moment are neighbours in memory. A lane reads back only the 16-byte pieces it copied
// itself, so cp.async.wait_group (per thread) is the only ordering the ring needs: no barrier.
// Results go straight from registers to global memory (stores hold no registers in flight).
//
// Arithmetic is that of the one-warp-per-row kernels in ops.cu (same expressions, same order
// within a row): the forward gives the bits of rmsnormVecKernel, the backward's dx those of the
// register-row kernel with a row per warp. dW has its own fixed order: each warp sums its rows
// in registers, the block adds its warps in warp order into partial[block], and sumChunksKernel
// (ops.cu) adds the blocks; the rows a warp gets follow the grid, i.e. the GPU's SM count, so
// the bits are repeatable on one GPU model. Needs kStagedWarps x kStages rows of shared memory
// per block (192 KB at C = 2048): H100/H200 (227 KB per block); on an A100 (163 KB) the launch
// helpers report that they do not apply and ops.cu keeps its register-row kernels.
#include <algorithm>

#include "common.cuh"
#include "rmsnorm_staged.h"
#include "vec8.cuh"

namespace tk::cuda {
namespace {

constexpr int kStagedWarps = 8;        // warps per block, a row each at a time
constexpr int kForwardStages = 3;      // rows per warp in shared memory: x (+ residual) each
constexpr int kBackwardStages = 2;     // x, dOut and dx each

__device__ __forceinline__ void copyAsync16(void* smem, const void* gmem) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void commitCopies() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void waitCopies() {
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory");
}

// The lane's pieces (8 elements every 256) of row `row` of `src` into `dst` (a row buffer).
template <int kIters>
__device__ __forceinline__ void copyRowPieces(bf16* dst, const bf16* src, int64_t row, int lane) {
  constexpr int64_t C = 256 * kIters;
  const bf16* s = src + row * C + lane * 8;
  bf16* d = dst + lane * 8;
#pragma unroll
  for (int it = 0; it < kIters; ++it) copyAsync16(d + it * 256, s + it * 256);
}

// The ring: one commit group per row (empty past the warp's last row, so that wait_group's
// count stays the same on every iteration). Buffers of row k: ring + (k % kStages) * kTensors * C.
template <int kIters, int kStages, int kTensors>
struct RowRing {
  static constexpr int64_t C = 256 * kIters;
  bf16* ring;
  int64_t first, stride, N;
  int lane;
  __device__ __forceinline__ int64_t row(int64_t k) const { return first + k * stride; }
  __device__ __forceinline__ bf16* buffers(int64_t k) const { return ring + (k % kStages) * kTensors * C; }
  __device__ __forceinline__ void issue(int64_t k, const bf16* const* srcs) const {
    if (row(k) < N) {
      bf16* b = buffers(k);
#pragma unroll
      for (int t = 0; t < kTensors; ++t) copyRowPieces<kIters>(b + t * C, srcs[t], row(k), lane);
    }
    commitCopies();
  }
};

template <int kTensors, int kIters, int kStages>
__device__ __forceinline__ RowRing<kIters, kStages, kTensors> warpRing(bf16* smem, int64_t N) {
  constexpr int64_t C = 256 * kIters;
  const int warp = threadIdx.y;
  return RowRing<kIters, kStages, kTensors>{smem + warp * kStages * kTensors * C,
                                            static_cast<int64_t>(blockIdx.x) * kStagedWarps + warp,
                                            static_cast<int64_t>(gridDim.x) * kStagedWarps, N,
                                            static_cast<int>(threadIdx.x)};
}

// residualOut = x + residual (rounded to bf16, as backward will see it), out = residualOut * rstd
// * w; without a residual, out = x * rstd * w.
template <int kIters, int kStages, bool kResidual>
__global__ void __launch_bounds__(32 * kStagedWarps)
    rmsnormForwardStagedKernel(bf16* residualOut, bf16* out, float* rstd, const bf16* x, const bf16* residual,
                               const bf16* w, int64_t N, float eps) {
  constexpr int kTensors = kResidual ? 2 : 1;
  constexpr int64_t C = 256 * kIters;
  extern __shared__ __align__(16) bf16 rowBuffers[];  // [warp][stage][tensor][C]
  const auto ring = warpRing<kTensors, kIters, kStages>(rowBuffers, N);
  const int lane = threadIdx.x;
  const bf16* const srcs[2] = {x, residual};  // the first kTensors
#pragma unroll
  for (int k = 0; k < kStages - 1; ++k) ring.issue(k, srcs);
  for (int64_t k = 0; ring.row(k) < N; ++k) {
    ring.issue(k + kStages - 1, srcs);
    waitCopies<kStages - 1>();
    const int64_t row = ring.row(k);
    const bf16* b = ring.buffers(k) + lane * 8;
    Raw8<bf16> v[kIters];
    float ss = 0.0f;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      float a[8];
      loadRaw8(b + it * 256, v[it]);
      unpack8(v[it], a);
      if constexpr (kResidual) {
        float r[8];
        load8(b + C + it * 256, r);
#pragma unroll
        for (int i = 0; i < 8; ++i) a[i] += r[i];
        pack8(a, v[it]);
        storeRaw8(residualOut + row * C + lane * 8 + it * 256, v[it]);
        unpack8(v[it], a);
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) ss += a[i] * a[i];
    }
    ss = warpSum(ss);
    float r = rsqrtf(ss / static_cast<float>(C) + eps);
    if (lane == 0) rstd[row] = r;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      float a[8], wv[8];
      unpack8Again(v[it], a);
      load8(w + lane * 8 + it * 256, wv);
#pragma unroll
      for (int i = 0; i < 8; ++i) a[i] = a[i] * r * wv[i];
      store8(out + row * C + lane * 8 + it * 256, a);
    }
  }
  waitCopies<0>();
}

// dx += rstd * dOut * w - rstd^3 * (sum dOut * w * x) / C * x; partial[block] = the block's
// sum over its rows of dOut * x * rstd.
template <int kIters, int kStages>
__global__ void __launch_bounds__(32 * kStagedWarps)
    rmsnormBackwardStagedKernel(bf16* dx, float* partial, const bf16* dOut, const bf16* x, const bf16* w,
                                const float* rstd, int64_t N) {
  constexpr int64_t C = 256 * kIters;
  extern __shared__ __align__(16) bf16 rowBuffers[];  // [warp][stage][x, dOut, dx][C]
  const auto ring = warpRing<3, kIters, kStages>(rowBuffers, N);
  const int warp = threadIdx.y, lane = threadIdx.x;
  const bf16* const srcs[3] = {x, dOut, dx};
  float dw[kIters][8] = {};
#pragma unroll
  for (int k = 0; k < kStages - 1; ++k) ring.issue(k, srcs);
  for (int64_t k = 0; ring.row(k) < N; ++k) {
    const int64_t row = ring.row(k);
    const float r = rstd[row];
    ring.issue(k + kStages - 1, srcs);
    waitCopies<kStages - 1>();
    const bf16* b = ring.buffers(k) + lane * 8;
    float dot = 0.0f;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      float xv[8], gv[8], wv[8];
      load8(b + it * 256, xv);
      load8(b + C + it * 256, gv);
      load8(w + lane * 8 + it * 256, wv);
#pragma unroll
      for (int i = 0; i < 8; ++i) dot += gv[i] * wv[i] * xv[i];
    }
    dot = warpSum(dot);
    const float k3 = r * r * r * dot / static_cast<float>(C);
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      float xv[8], gv[8], wv[8], dv[8];
      load8(b + it * 256, xv);
      load8(b + C + it * 256, gv);
      load8(b + 2 * C + it * 256, dv);
      load8(w + lane * 8 + it * 256, wv);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        dv[i] += r * gv[i] * wv[i] - k3 * xv[i];
        dw[it][i] += gv[i] * xv[i] * r;
      }
      store8(dx + row * C + lane * 8 + it * 256, dv);
    }
  }
  waitCopies<0>();
  __syncthreads();
  // The ring is free now: the warps' dW rows go through it ([warp][C] floats, 32 C bytes of the
  // at least 48 C the ring has) and are added in warp order.
  float* sDw = reinterpret_cast<float*>(rowBuffers);
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    float4* d = reinterpret_cast<float4*>(sDw + warp * C + lane * 8 + it * 256);
    d[0] = make_float4(dw[it][0], dw[it][1], dw[it][2], dw[it][3]);
    d[1] = make_float4(dw[it][4], dw[it][5], dw[it][6], dw[it][7]);
  }
  __syncthreads();
  for (int64_t c = warp * 32 + lane; c < C; c += 32 * kStagedWarps) {
    float acc = 0.0f;
#pragma unroll
    for (int j = 0; j < kStagedWarps; ++j) acc += sDw[j * C + c];
    partial[static_cast<int64_t>(blockIdx.x) * C + c] = acc;
  }
}

// Grid for a staged kernel: one wave of resident blocks, no more blocks than rows need; 0 when
// its shared memory does not fit this GPU. The first call for a kernel (perSm < 0: the caller
// keeps one per kernel) lifts its dynamic shared memory limit and asks how many blocks fit on an
// SM (the backend drives one device per process).
template <typename Kernel>
int64_t stagedGrid(Kernel kernel, size_t smem, int64_t N, int& perSm) {
  if (smem > sharedMemoryPerBlockOptin()) return 0;
  if (perSm < 0) {
    TK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    int blocks = 0;
    TK_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, 32 * kStagedWarps, smem));
    perSm = blocks;
  }
  if (perSm == 0) return 0;
  int64_t wanted = (N + kStagedWarps - 1) / kStagedWarps;
  return std::min<int64_t>(wanted, static_cast<int64_t>(perSm) * smCount());
}

template <int kIters, bool kResidual>
bool forwardFor(bf16* residualOut, bf16* out, float* rstd, const bf16* x, const bf16* residual, const bf16* w,
                int64_t N, float eps) {
  constexpr int kTensors = kResidual ? 2 : 1;
  auto kernel = rmsnormForwardStagedKernel<kIters, kForwardStages, kResidual>;
  const size_t smem = static_cast<size_t>(kStagedWarps) * kForwardStages * kTensors * 256 * kIters * sizeof(bf16);
  static int perSm = -1;
  int64_t grid = stagedGrid(kernel, smem, N, perSm);
  if (grid == 0) return false;
  kernel<<<static_cast<unsigned>(grid), dim3(32, kStagedWarps), smem, stream()>>>(residualOut, out, rstd, x, residual,
                                                                                    w, N, eps);
  TK_LAUNCH_CHECK("rmsnorm forward (staged)");
  return true;
}

template <int kIters>
int64_t backwardFor(bf16* dx, float* (*partialFor)(int64_t), const bf16* dOut, const bf16* x, const bf16* w,
                    const float* rstd, int64_t N) {
  auto kernel = rmsnormBackwardStagedKernel<kIters, kBackwardStages>;
  const size_t smem = static_cast<size_t>(kStagedWarps) * kBackwardStages * 3 * 256 * kIters * sizeof(bf16);
  static int perSm = -1;
  int64_t grid = stagedGrid(kernel, smem, N, perSm);
  if (grid == 0) return 0;
  float* partial = partialFor(grid * 256 * kIters);
  kernel<<<static_cast<unsigned>(grid), dim3(32, kStagedWarps), smem, stream()>>>(dx, partial, dOut, x, w, rstd, N);
  TK_LAUNCH_CHECK("rmsnorm backward (staged)");
  return grid;
}

}  // namespace

bool rmsnormForwardStaged(bf16* residualOut, bf16* out, float* rstd, const bf16* x, const bf16* residual,
                          const bf16* w, int64_t N, int64_t C, float eps) {
  if (N == 0) return false;
  const bool res = residual != nullptr;
  switch (C) {
    case 256: return res ? forwardFor<1, true>(residualOut, out, rstd, x, residual, w, N, eps)
                         : forwardFor<1, false>(residualOut, out, rstd, x, residual, w, N, eps);
    case 512: return res ? forwardFor<2, true>(residualOut, out, rstd, x, residual, w, N, eps)
                         : forwardFor<2, false>(residualOut, out, rstd, x, residual, w, N, eps);
    case 1024: return res ? forwardFor<4, true>(residualOut, out, rstd, x, residual, w, N, eps)
                          : forwardFor<4, false>(residualOut, out, rstd, x, residual, w, N, eps);
    case 2048: return res ? forwardFor<8, true>(residualOut, out, rstd, x, residual, w, N, eps)
                          : forwardFor<8, false>(residualOut, out, rstd, x, residual, w, N, eps);
    default: return false;
  }
}

int64_t rmsnormBackwardStaged(bf16* dx, float* (*partialFor)(int64_t), const bf16* dOut, const bf16* x,
                              const bf16* w, const float* rstd, int64_t N, int64_t C) {
  if (N == 0) return 0;
  switch (C) {
    case 256: return backwardFor<1>(dx, partialFor, dOut, x, w, rstd, N);
    case 512: return backwardFor<2>(dx, partialFor, dOut, x, w, rstd, N);
    case 1024: return backwardFor<4>(dx, partialFor, dOut, x, w, rstd, N);
    case 2048: return backwardFor<8>(dx, partialFor, dOut, x, w, rstd, N);
    default: return 0;
  }
}

}  // namespace tk::cuda
