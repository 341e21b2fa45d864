// 8-element row access of the row kernels (ops.cu, rmsnorm.cu, cross_entropy.cu): 16-byte bf16
// loads and stores, the raw form a register row keeps, and the unpacking to floats.
#pragma once
#include "common.cuh"

namespace tk::cuda {

// 8 bf16 elements kept as they are stored (16 bytes) so that a whole row can sit in registers at
// half the cost of floats; unpack8 turns them into floats when used. (The register-row kernels
// are bf16 only: a row of f32 would need twice the registers.)
template <typename T>
struct Raw8;
template <>
struct Raw8<bf16> {
  uint4 v;
};
__device__ __forceinline__ void loadRaw8(const bf16* p, Raw8<bf16>& r) { r.v = *reinterpret_cast<const uint4*>(p); }
__device__ __forceinline__ void unpack8(const Raw8<bf16>& r, float (&v)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&r.v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 f = __bfloat1622float2(h[i]);
    v[2 * i] = f.x, v[2 * i + 1] = f.y;
  }
}

// 8 contiguous elements as floats: one 16-byte load for bf16, two for f32 (caller ensures
// alignment). The vectorised row kernels use them when C % 256 == 0 and pointers are aligned.
__device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
  float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void load8(const bf16* p, float (&v)[8]) {
  Raw8<bf16> r;
  loadRaw8(p, r);
  unpack8(r, v);
}
__device__ __forceinline__ void store8(float* p, const float (&v)[8]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
// 8 floats rounded to bf16 (nearest even), in the raw form.
__device__ __forceinline__ void pack8(const float (&v)[8], Raw8<bf16>& r) {
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&r.v);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
}
__device__ __forceinline__ void storeRaw8(bf16* p, const Raw8<bf16>& r) { *reinterpret_cast<uint4*>(p) = r.v; }
__device__ __forceinline__ void store8(bf16* p, const float (&v)[8]) {
  Raw8<bf16> r;
  pack8(v, r);
  storeRaw8(p, r);
}

// unpack8 of a copy the compiler may not reuse: a kernel that walks its register row several
// times unpacks it again each time (a few integer ops) instead of the compiler keeping all the
// unpacked floats from the first walk alive, which doubled the registers and spilled.
__device__ __forceinline__ void unpack8Again(const Raw8<bf16>& r, float (&v)[8]) {
  Raw8<bf16> c = r;
  asm volatile("" : "+r"(c.v.x), "+r"(c.v.y), "+r"(c.v.z), "+r"(c.v.w));
  unpack8(c, v);
}

}  // namespace tk::cuda
