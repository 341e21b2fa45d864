// Row softmax pieces for the CPU backend: max of a row and exp(x - max) with its sum, in AVX2 +
// FMA where the CPU has it (a Cephes-style expf: range reduction by ln 2, degree-6 polynomial,
// about 1 ulp) and in scalar std::exp otherwise or with TINYLLAMA_CPU_KERNELS=generic.
// Cross-entropy spends most of a small model's CPU step here (a 32000-wide softmax per token).
#pragma once
#include <cstdint>

namespace tk::cpu {

float rowMax(const float* x, int64_t n);
// out[j] = exp(x[j] - shift); returns the sum of out (f32 partial sums, 8 lanes then combined).
float expShiftedSum(const float* x, int64_t n, float shift, float* out);

}  // namespace tk::cpu
