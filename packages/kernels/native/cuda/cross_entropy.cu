// The fused cross-entropy over the vocabulary: per row the log-sum-exp and the loss, and with
// computeGrad the gradient (softmax - one-hot) * dlossScale written over the logits in place, so
// the [rows, V] logits are the only buffer. Design: a block per row; the default bf16 kernel
// holds its row in registers (one read, the maximum before any exponential, base-2 exponents),
// the vectorised and scalar kernels keep a running (max, sum) and re-read the row for the
// gradient. A target < 0 marks an ignored row (loss 0, zero gradient); a target >= V sets the
// error flag that the next sync turns into a JS error. Block reductions add in a fixed order.
// The argmax of each row (greedy tokens, the eval's is_greedy) is here too: a block per row,
// every thread's best (value, index) merged by a rule that does not depend on the order
// (larger value, NaN above all, then lower index), so the result is torch.argmax's.
#include <algorithm>
#include <climits>
#include <initializer_list>

#include "common.cuh"
#include "ops_common.cuh"
#include "vec8.cuh"

namespace tk::cuda {
namespace {

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

// The row's target for the 8-wide kernels, or -1 for an ignored row: a target >= V sets the
// error flag (a JS error at the next sync) and is ignored. An ignored row gets loss 0 and, with
// computeGrad, a zero gradient row; the kernel then returns.
template <typename T>
__device__ __forceinline__ int32_t targetOrZeroRow8(float* losses, T* lr, const int32_t* targets, int64_t row,
                                                    int64_t V, bool computeGrad, int* flag) {
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
  }
  return target;
}

// Vectorised form (V % 8 == 0, aligned rows): 8 logits per 16-byte load, the running (max, sum)
// rescaled once per 8 logits instead of a branch per logit; the gradient pass likewise. The
// scalar kernel above ran at 30% of copy bandwidth (minimal bytes) on 2-byte loads.
template <typename T>
__global__ void crossEntropyVecKernel(float* losses, T* logits, const int32_t* targets, int64_t V,
                                      float dlossScale, bool computeGrad, int* flag) {
  int64_t row = blockIdx.x;
  T* lr = logits + row * V;
  int32_t target = targetOrZeroRow8(losses, lr, targets, row, V, computeGrad, flag);
  if (target < 0) return;
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
  int32_t target = targetOrZeroRow8(losses, lr, targets, row, V, computeGrad, flag);
  if (target < 0) return;
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

// ---------------------------------------------------------------- argmax
constexpr unsigned kArgmaxThreads = 256;

// Whether (v, i) comes before (bv, bi) in torch.argmax's order: a NaN beats any number, a larger
// number beats a smaller, and otherwise (equal values, two NaNs) the lower index wins.
__device__ __forceinline__ bool argBeats(float v, int i, float bv, int bi) {
  bool vn = v != v, bn = bv != bv;
  if (vn != bn) return vn;
  if (!vn && v != bv) return v > bv;
  return i < bi;
}

// Merges every thread's (value, index) over the block; thread 0 writes the row's index.
__device__ void blockArgmaxStore(float bv, int bi, int32_t* out) {
  __shared__ float sV[32];
  __shared__ int sI[32];
  for (int o = 16; o > 0; o >>= 1) {
    float v2 = __shfl_xor_sync(0xffffffffu, bv, o);
    int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
    if (argBeats(v2, i2, bv, bi)) bv = v2, bi = i2;
  }
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sV[warp] = bv, sI[warp] = bi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w)
      if (argBeats(sV[w], sI[w], bv, bi)) bv = sV[w], bi = sI[w];
    *out = bi;
  }
}

// Scalar form: any V and alignment. Each thread walks its columns in increasing order, so a
// strict comparison keeps its first maximum; the merge settles ties across threads by index.
template <typename T>
__global__ void argmaxKernel(int32_t* out, const T* logits, int64_t V) {
  const T* lr = logits + static_cast<int64_t>(blockIdx.x) * V;
  float bv = -INFINITY;
  int bi = INT_MAX;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    float v = ld(lr, j);
    if (argBeats(v, static_cast<int>(j), bv, bi)) bv = v, bi = static_cast<int>(j);
  }
  blockArgmaxStore(bv, bi, out + blockIdx.x);
}

// 8 logits per 16-byte load (V % 8 == 0, aligned rows).
template <typename T>
__global__ void argmaxVecKernel(int32_t* out, const T* logits, int64_t V) {
  const T* lr = logits + static_cast<int64_t>(blockIdx.x) * V;
  float bv = -INFINITY;
  int bi = INT_MAX;
  for (int64_t j = threadIdx.x * 8; j < V; j += blockDim.x * 8) {
    float v[8];
    load8(lr + j, v);
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (argBeats(v[e], static_cast<int>(j) + e, bv, bi)) bv = v[e], bi = static_cast<int>(j) + e;
  }
  blockArgmaxStore(bv, bi, out + blockIdx.x);
}

}  // namespace
}  // namespace tk::cuda

namespace tk::backend {
using namespace tk::cuda;

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

void argmax(const TensorDesc& out, const TensorDesc& logits) {
  int64_t V = logits.lastDim(), N = logits.rows();
  if (N == 0) return;
  dispatchFloat(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (V % 8 == 0 && aligned(logits, vecAlign(logits.dtype)))
      argmaxVecKernel<T><<<static_cast<unsigned>(N), kArgmaxThreads, 0, stream()>>>(
          out.as<int32_t>(), logits.as<T>(), V);
    else
      argmaxKernel<T><<<static_cast<unsigned>(N), kArgmaxThreads, 0, stream()>>>(
          out.as<int32_t>(), logits.as<T>(), V);
  });
  TK_LAUNCH_CHECK("argmax");
}

}  // namespace tk::backend
