// Deterministic reductions (global gradient norm, sum): a fixed grid of blocks, each summing
// a fixed grid-stride slice in double and writing one partial; one final block sums the
// partials of every tensor in order. No atomics, so the same inputs give the same bits.
#include <vector>

#include "common.cuh"

namespace tk::cuda {
namespace {

constexpr int kBlocks = 512, kThreads = 256;

template <typename T, bool Square>
__global__ void partialKernel(double* partial, const T* p, int64_t n) {
  double acc = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < n;
       i += static_cast<int64_t>(kBlocks) * kThreads) {
    double v = ld(p, i);
    acc += Square ? v * v : v;
  }
  __shared__ double s[kThreads];
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

__global__ void finalKernel(double* out, const double* partial, int64_t count) {
  __shared__ double s[kThreads];
  // each thread sums a fixed strided subset in order, then a fixed tree
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kThreads) acc += partial[i];
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = s[0];
}

double reduce(const std::vector<TensorDesc>& tensors, bool square) {
  size_t count = tensors.size() * kBlocks;
  auto* partial = static_cast<double*>(scratch2((count + 1) * sizeof(double)));
  for (size_t t = 0; t < tensors.size(); ++t) {
    const auto& d = tensors[t];
    double* slot = partial + t * kBlocks;
    dispatchFloat(d.dtype, [&](auto tag) {
      using T = decltype(tag);
      if (square) partialKernel<T, true><<<kBlocks, kThreads, 0, stream()>>>(slot, d.as<T>(), d.numel);
      else partialKernel<T, false><<<kBlocks, kThreads, 0, stream()>>>(slot, d.as<T>(), d.numel);
    });
    TK_LAUNCH_CHECK("reduce");
  }
  double result = 0.0;
  if (count > 0) {
    finalKernel<<<1, kThreads, 0, stream()>>>(partial + count, partial, static_cast<int64_t>(count));
    TK_LAUNCH_CHECK("reduce final");
    TK_CUDA(cudaMemcpyAsync(&result, partial + count, sizeof(double), cudaMemcpyDeviceToHost, stream()));
    TK_CUDA(cudaStreamSynchronize(stream()));
  }
  return result;
}

}  // namespace
}  // namespace tk::cuda

namespace tk::backend {
double sumSquares(const std::vector<TensorDesc>& tensors) { return tk::cuda::reduce(tensors, true); }
double sum(const TensorDesc& t) { return tk::cuda::reduce({t}, false); }
}  // namespace tk::backend
