// CUDA kernels for the memory-bound gather and elementwise ops: embedding (deterministic
// backward through a stable radix sort of token ids), RoPE, SwiGLU, AdamW, casts/fill/copy/scale.
// The two row ops have files of their own, RMSNorm (+ fused residual) in rmsnorm.cu and the fused
// cross-entropy in cross_entropy.cu; ops_common.cuh holds what the three share. Design:
// grid-stride elementwise kernels, f32 math, f32 or bf16 storage. Where sizes and alignment
// allow, each thread moves 8 elements per 16-byte (bf16) or 2 x 16-byte (f32) access (the
// `...Vec` kernels); the scalar kernels stay for odd shapes. The embedding's cross-row sums go
// through fixed partitions added in a fixed order, so results are bitwise repeatable.
#include <cub/device/device_radix_sort.cuh>
#include <algorithm>
#include <initializer_list>
#include <string>

#include "common.cuh"
#include "ops_common.cuh"
#include "vec8.cuh"

namespace tk::cuda {
namespace {

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

}  // namespace
}  // namespace tk::cuda

namespace tk::backend {
using namespace tk::cuda;

void embeddingForward(const TensorDesc& out, const TensorDesc& table, const TensorDesc& ids) {
  int64_t N = ids.numel, C = table.shape[1], V = table.shape[0];
  if (N == 0 || C == 0) return;  // nothing to write (C = 0: a zero-thread launch would fail)
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
  if (N == 0 || C == 0) return;
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

void rope(const TensorDesc& out, const TensorDesc& x, float base, int64_t positionOffset,
          bool inverse) {
  int64_t T_ = x.shape[1], H = x.shape[2], D = x.shape[3];
  int64_t rows = x.rows();  // not numel / D: D = 0 would divide by zero (SIGFPE)
  int64_t half = D / 2;
  if (rows == 0 || half == 0) return;
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
