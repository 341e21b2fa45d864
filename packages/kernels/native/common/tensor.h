// Shared vocabulary between the Node-API binding and the backends: dtypes, a plain tensor
// descriptor (pointer + dtype + shape, always contiguous), and bf16 conversion helpers.
// Backends never see JavaScript values; the binding checks every argument before a backend
// function is called, so backends may assume shapes and dtypes are consistent.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace tk {

enum class DType : int { F32 = 0, BF16 = 1, I32 = 2, U16 = 3 };

inline size_t dtypeSize(DType d) {
  switch (d) {
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::BF16:
    case DType::U16:
      return 2;
  }
  return 0;
}

inline const char* dtypeName(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::U16: return "u16";
  }
  return "?";
}

constexpr int kMaxDims = 6;

// A contiguous tensor as a backend sees it. `data` already includes the view's byte offset.
struct TensorDesc {
  void* data = nullptr;
  DType dtype = DType::F32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {0, 0, 0, 0, 0, 0};
  int64_t numel = 0;

  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  int64_t lastDim() const { return ndim == 0 ? 1 : shape[ndim - 1]; }
  // The product of the leading dims (not numel / lastDim: a zero-width row must not divide by 0).
  // Cannot overflow: the binding admits only shapes whose non-zero dims multiply to <= 2^40.
  int64_t rows() const {
    int64_t r = 1;
    for (int i = 0; i + 1 < ndim; ++i) r *= shape[i];
    return r;
  }
  size_t bytes() const { return static_cast<size_t>(numel) * dtypeSize(dtype); }
  template <typename T>
  T* as() const { return static_cast<T*>(data); }
};

// bf16 <-> f32 on the host: round to nearest even, NaN kept quiet.
inline float bf16ToF32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t f32ToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

}  // namespace tk
