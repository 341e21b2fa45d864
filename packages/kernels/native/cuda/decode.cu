// Decoding attention over a KV cache: one new token per sequence (the generation loop's common
// step), all sequences and heads in two launches per layer instead of the per-sequence RoPE,
// copies and full causal attention the prefill path uses.
// Design: kernel 1 (one thread per (row, KV head, pair of dims)) rotates kNew by RoPE at the
// row's position with rope()'s formula and writes it and vNew into the cache at (slot, position);
// meta values outside the cache raise the data-error flag and the row is skipped. Kernel 2 gives
// one block of 4 warps to each (row, query head): the rotated query (rounded to the cache dtype,
// as rope() would store it) sits in shared memory; each warp takes every 4th key of the slot,
// a warp-shuffle reduction gives the score, and keeps an online softmax (running max, sum, and
// the weighted V accumulator, D/32 values per lane); the 4 partial states are merged through
// shared memory at the end. fp32 arithmetic throughout; the T x T matrix never exists. GQA:
// query head h reads KV head h / (H / Hkv) in place. Head dim up to 256.
#include "../common/backend.h"
#include "common.cuh"

namespace tk::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 8;  // D <= 256

__device__ __forceinline__ bool badMeta(int slot, int pos, int64_t slots, int64_t maxLen) {
  return slot < 0 || slot >= slots || pos < 0 || pos >= maxLen;
}

template <typename T>
__global__ void decodeCacheKernel(const T* kNew, const T* vNew, T* kCache, T* vCache,
                                  const int32_t* meta, int64_t S, int64_t Hkv, int64_t D,
                                  int64_t slots, int64_t maxLen, float base, int* flag) {
  int64_t half = D / 2, total = S * Hkv * half;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t r = idx / (Hkv * half), g = (idx / half) % Hkv, i = idx % half;
    int slot = meta[r], pos = meta[S + r];
    if (badMeta(slot, pos, slots, maxLen)) {
      atomicCAS(flag, kNoError, kBadDecodeMeta);
      continue;
    }
    float invFreq = 1.0f / powf(base, static_cast<float>(2 * i) / static_cast<float>(D));
    float s, c;
    sincosf(static_cast<float>(pos) * invFreq, &s, &c);
    const T* kr = kNew + (r * Hkv + g) * D;
    const T* vr = vNew + (r * Hkv + g) * D;
    int64_t dst = ((static_cast<int64_t>(slot) * maxLen + pos) * Hkv + g) * D;
    float x1 = ld(kr, i), x2 = ld(kr, i + half);
    st(kCache, dst + i, x1 * c - x2 * s);
    st(kCache, dst + i + half, x2 * c + x1 * s);
    vCache[dst + i] = vr[i];
    vCache[dst + i + half] = vr[i + half];
  }
}

template <typename T>
__global__ void __launch_bounds__(kWarps * 32)
    decodeAttentionKernel(T* out, const T* q, const T* kCache, const T* vCache,
                          const int32_t* meta, int64_t S, int64_t H, int64_t Hkv, int64_t D,
                          int64_t slots, int64_t maxLen, float base, float scale) {
  extern __shared__ float smem[];  // qs[D], then per warp: m, l, acc[D]
  float* qs = smem;
  float* part = smem + D;
  int64_t r = blockIdx.x / H, h = blockIdx.x % H, g = h / (H / Hkv);
  int slot = meta[r], pos = meta[S + r];
  if (badMeta(slot, pos, slots, maxLen)) return;  // flagged by decodeCacheKernel
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int64_t half = D / 2;
  const T* qr = q + (r * H + h) * D;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    float invFreq = 1.0f / powf(base, static_cast<float>(2 * i) / static_cast<float>(D));
    float s, c;
    sincosf(static_cast<float>(pos) * invFreq, &s, &c);
    float x1 = ld(qr, i), x2 = ld(qr, i + half);
    T a, b;  // round as rope() stores the rotated query
    st(&a, 0, x1 * c - x2 * s);
    st(&b, 0, x2 * c + x1 * s);
    qs[i] = ld(&a, 0);
    qs[i + half] = ld(&b, 0);
  }
  __syncthreads();
  const T* kb = kCache + static_cast<int64_t>(slot) * maxLen * Hkv * D + g * D;
  const T* vb = vCache + static_cast<int64_t>(slot) * maxLen * Hkv * D + g * D;
  float m = -INFINITY, l = 0.0f, acc[kMaxPerLane];
#pragma unroll
  for (int c = 0; c < kMaxPerLane; ++c) acc[c] = 0.0f;
  for (int64_t j = warp; j <= pos; j += kWarps) {
    const T* kr = kb + j * Hkv * D;
    float dot = 0.0f;
#pragma unroll
    for (int c = 0; c < kMaxPerLane; ++c) {
      int64_t d = lane + 32 * c;
      if (d < D) dot += qs[d] * ld(kr, d);
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    float sc = dot * scale;
    float mNew = fmaxf(m, sc);
    float corr = expf(m - mNew), p = expf(sc - mNew);
    l = l * corr + p;
    const T* vr = vb + j * Hkv * D;
#pragma unroll
    for (int c = 0; c < kMaxPerLane; ++c) {
      int64_t d = lane + 32 * c;
      if (d < D) acc[c] = acc[c] * corr + p * ld(vr, d);
    }
    m = mNew;
  }
  float* mine = part + warp * (D + 2);
  if (lane == 0) {
    mine[0] = m;
    mine[1] = l;
  }
#pragma unroll
  for (int c = 0; c < kMaxPerLane; ++c) {
    int64_t d = lane + 32 * c;
    if (d < D) mine[2 + d] = acc[c];
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, part[w * (D + 2)]);
  float L = 0.0f;
  for (int w = 0; w < kWarps; ++w) {
    float mw = part[w * (D + 2)];
    if (mw != -INFINITY) L += expf(mw - M) * part[w * (D + 2) + 1];
  }
  T* orow = out + (r * H + h) * D;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      float mw = part[w * (D + 2)];
      if (mw != -INFINITY) o += expf(mw - M) * part[w * (D + 2) + 2 + d];
    }
    st(orow, d, o / L);
  }
}

}  // namespace
}  // namespace tk::cuda

namespace tk::backend {
using namespace tk::cuda;

void decodeAttention(const TensorDesc& out, const TensorDesc& q, const TensorDesc& kNew,
                     const TensorDesc& vNew, const TensorDesc& kCache, const TensorDesc& vCache,
                     const TensorDesc& meta, float ropeBase, float scale) {
  int64_t S = q.shape[0], H = q.shape[1], D = q.shape[2], Hkv = kNew.shape[1];
  int64_t slots = kCache.shape[0], maxLen = kCache.shape[1];
  if (S == 0) return;
  if (D > 32 * kMaxPerLane) throw Error("decodeAttention: head dim above 256 is not supported on CUDA");
  dispatchFloat(q.dtype, [&](auto tag) {
    using E = decltype(tag);
    int64_t pairs = S * Hkv * (D / 2);
    decodeCacheKernel<E><<<blocksFor(pairs, 256), 256, 0, stream()>>>(
        kNew.as<E>(), vNew.as<E>(), kCache.as<E>(), vCache.as<E>(), meta.as<int32_t>(), S, Hkv, D,
        slots, maxLen, ropeBase, errorFlag());
    TK_LAUNCH_CHECK("decodeAttention (cache)");
    size_t smemBytes = sizeof(float) * static_cast<size_t>(D + kWarps * (D + 2));
    decodeAttentionKernel<E><<<static_cast<unsigned>(S * H), kWarps * 32, smemBytes, stream()>>>(
        out.as<E>(), q.as<E>(), kCache.as<E>(), vCache.as<E>(), meta.as<int32_t>(), S, H, Hkv, D,
        slots, maxLen, ropeBase, scale);
    TK_LAUNCH_CHECK("decodeAttention");
  });
}

}  // namespace tk::backend
