// Element access for the CPU kernels: every float op is written once as a template over the
// storage type (float or bf16 bits in uint16_t) and computes in f32.
#pragma once
#include <cstdint>

#include "../common/tensor.h"

namespace tk::cpu {

using bf16_t = uint16_t;

inline float ld(const float* p, int64_t i) { return p[i]; }
inline float ld(const bf16_t* p, int64_t i) { return bf16ToF32(p[i]); }
inline void st(float* p, int64_t i, float v) { p[i] = v; }
inline void st(bf16_t* p, int64_t i, float v) { p[i] = f32ToBf16(v); }

// Calls f(T{}) with T = float for f32 tensors and T = bf16_t for bf16 tensors.
template <typename F>
void dispatchFloat(DType d, F&& f) {
  if (d == DType::F32) f(float{});
  else f(bf16_t{});
}

}  // namespace tk::cpu
