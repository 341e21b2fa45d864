// Shared pieces of the CUDA backend: error checks that throw tk::Error, the backend's stream
// and cuBLASLt handle, a grow-only scratch buffer (planned reuse; grows only the first time a
// larger size is seen), a device error flag for data errors found inside kernels (token id or
// target out of range: reported by the next synchronize()), and f32/bf16 element access.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <initializer_list>
#include <string>

#include "../common/backend.h"

namespace tk::cuda {

#define TK_CUDA(call)                                                                       \
  do {                                                                                      \
    cudaError_t err_ = (call);                                                              \
    if (err_ != cudaSuccess)                                                                \
      throw ::tk::Error(std::string(#call) + " failed: " + cudaGetErrorString(err_));       \
  } while (0)

// After every launch: catches bad launch configurations immediately (asynchronous faults
// surface at the next synchronize()).
#define TK_LAUNCH_CHECK(name)                                                               \
  do {                                                                                      \
    cudaError_t err_ = cudaGetLastError();                                                  \
    if (err_ != cudaSuccess)                                                                \
      throw ::tk::Error(std::string(name) + " launch failed: " + cudaGetErrorString(err_)); \
  } while (0)

cudaStream_t stream();
int smCount();
// Device scratch of at least `bytes`, valid until the next call (ops run in stream order).
void* scratch(size_t bytes);
// Second scratch region for ops that need two at once.
void* scratch2(size_t bytes);
// RoPE's cos/sin table only: no other op writes it, so a table stays valid between calls.
void* ropeTableScratch(size_t bytes);
// An environment variable's value, "" when unset (the settings that pick kernels; callers keep
// it in a static, so each is read once per process).
std::string envValue(const char* name);
// A kernel-choice setting: -1 when unset, else the index of its value in `values`; any other value
// throws an Error naming the setting, its choices and the value. Callers keep the result in a
// static (read once per process; a throwing initialiser runs again, so a bad value fails every call).
int settingChoice(const char* name, std::initializer_list<const char*> values);
int* errorFlag();

enum ErrorCode : int { kNoError = 0, kBadTokenId = 1, kBadTarget = 2, kBadDecodeMeta = 3 };

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float ld(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void st(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// Calls f(T{}) with T = float (f32) or bf16.
template <typename F>
void dispatchFloat(DType d, F&& f) {
  if (d == DType::F32) f(float{});
  else f(bf16{});
}

inline int blocksFor(int64_t n, int threads, int64_t cap = 1 << 20) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<int>(b < cap ? b : cap);
}

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace tk::cuda
