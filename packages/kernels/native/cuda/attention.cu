// Fused grouped-query attention, FlashAttention-2 style, in fp32 arithmetic (CUDA cores).
// Design: the T x T score matrix is never stored. Forward: a block owns 64 query rows of one
// (batch, head), one thread per row holding q and the output accumulator in registers; K/V
// tiles of 64 rows are staged in shared memory and read as broadcasts; online softmax keeps
// the running max and sum per row, and lse = max + log(sum) is saved for backward. GQA: query
// head h reads KV head h / (H / Hkv) in place, no K/V copies. Backward recomputes p from lse:
// one kernel computes D = rowsum(dO * O), one computes dq (thread per query row), and one
// computes dk/dv (thread per key row, looping over the group's query heads and query tiles),
// so every gradient element is written by exactly one thread: deterministic, no atomics.
// These fp32 CUDA-core kernels serve f32 inputs, head dims other than 64 and unaligned views; bf16 with
// D = 64 goes to cuDNN's fused forward and backward where the addon is built with cuDNN
// (attention_cudnn.cu), otherwise to the tensor-core kernels of attention_mma.cu
// (mma.sync/ldmatrix/cp.async), or, with TINYLLAMA_ATTENTION=wmma, to the first WMMA version in
// attention_tc.cu. This file also chooses among them (attentionForward, attentionBackward).
#include <cstdio>
#include <initializer_list>
#include <type_traits>

#include "common.cuh"

namespace tk::cuda {

// Tensor-core path (attention_tc.cu): bf16, D = 64, 16-byte aligned.
bool tcAttentionSupported(std::initializer_list<const TensorDesc*> ts);
void tcAttentionForward(const TensorDesc& out, const TensorDesc& lse, const TensorDesc& q,
                        const TensorDesc& k, const TensorDesc& v, const AttentionOptions& o);
void tcAttentionBackward(const TensorDesc& dq, const TensorDesc& dk, const TensorDesc& dv,
                         const TensorDesc& dOut, const TensorDesc& q, const TensorDesc& k,
                         const TensorDesc& v, const TensorDesc& lse, const float* delta,
                         const AttentionOptions& o);
// mma.sync path (attention_mma.cu): bf16, D = 64, 16-byte aligned.
bool mmaAttentionSupported(std::initializer_list<const TensorDesc*> ts);
void mmaAttentionForward(const TensorDesc& out, const TensorDesc& lse, const TensorDesc& q,
                         const TensorDesc& k, const TensorDesc& v, const AttentionOptions& o);
void mmaAttentionBackward(const TensorDesc& dq, const TensorDesc& dk, const TensorDesc& dv,
                          const TensorDesc& dOut, const TensorDesc& q, const TensorDesc& k,
                          const TensorDesc& v, const TensorDesc& lse, const float* delta,
                          const AttentionOptions& o);
// cuDNN fused attention, forward and backward (attention_cudnn.cu, where cuDNN is found at build
// time).
#ifdef TK_WITH_CUDNN
void cudnnAttentionForward(const TensorDesc& out, const TensorDesc& lse, const TensorDesc& q,
                           const TensorDesc& k, const TensorDesc& v, const AttentionOptions& o);
void cudnnAttentionBackward(const TensorDesc& dq, const TensorDesc& dk, const TensorDesc& dv,
                            const TensorDesc& dOut, const TensorDesc& q, const TensorDesc& k,
                            const TensorDesc& v, const TensorDesc& out, const TensorDesc& lse,
                            const AttentionOptions& o, bool dpWorkspace);
#endif

namespace {

// TINYLLAMA_ATTENTION picks the bf16/D=64 kernels. Unset: cuDNN's fused forward where this addon
// was built with cuDNN and cuDNN accepts the graph (0.355 against 0.601 ms on an H200, checked
// against PyTorch and memcheck-clean), otherwise the mma forward, with one stderr line saying
// why. cudnn: cuDNN's forward or an error. mma:
// the mma.sync/ldmatrix kernels only. wmma: the first tensor-core version, kept for comparisons.
// fp32: the CUDA-core kernels. Read once per process; an unknown value is an error, not a silent
// default.
enum class AttnKernel { Auto, Wmma, Mma, Cudnn, Fp32, Invalid };
const std::string& attentionEnv() {
  static const std::string value = envValue("TINYLLAMA_ATTENTION");
  return value;
}
AttnKernel attentionKernelChoice() {
  static const AttnKernel choice = [] {
    const std::string& v = attentionEnv();
    if (v.empty()) return AttnKernel::Auto;
    if (v == "mma") return AttnKernel::Mma;
    if (v == "wmma") return AttnKernel::Wmma;
    if (v == "cudnn") return AttnKernel::Cudnn;
    if (v == "fp32") return AttnKernel::Fp32;
    return AttnKernel::Invalid;
  }();
  return choice;
}
void checkAttentionEnv() {
  if (attentionKernelChoice() == AttnKernel::Invalid)
    throw Error("TINYLLAMA_ATTENTION must be unset, cudnn, mma, wmma or fp32, got \"" + attentionEnv() + "\"");
#ifndef TK_WITH_CUDNN
  if (attentionKernelChoice() == AttnKernel::Cudnn)
    throw Error("TINYLLAMA_ATTENTION=cudnn, but this CUDA addon was built without cuDNN (cudnn.h or libcudnn "
                "not found at build time: set CUDNN_HOME and rebuild)");
#endif
}
// TINYLLAMA_ATTENTION_BWD picks the bf16/D=64 backward. Unset: cuDNN's backward graph with dP
// kept in a B H T^2 bf16 workspace and dQ formed without atomics (bitwise repeatable, checked on
// an H200: 1.30 against the mma backward's 1.93 ms at 8 x 2048, 2026-11-28), for sequence
// lengths that are multiples of 64 where the addon has cuDNN and TINYLLAMA_ATTENTION is unset
// or cudnn (mma keeps the mma kernels in both directions), until cuDNN refuses once, then the
// mma backward with one stderr line saying why. cudnn-ws: that graph or an error. cudnn: dQ
// accumulated by cuDNN with atomics (1.17 ms, not bitwise repeatable). mma: the mma backward
// only. Read once per process; anything else is an error at every call, like TINYLLAMA_ATTENTION.
enum class CudnnBwd { Auto, Off, Atomic, DpWorkspace };
CudnnBwd cudnnBackwardChoice() {
  static const CudnnBwd choice = [] {
    constexpr CudnnBwd named[] = {CudnnBwd::DpWorkspace, CudnnBwd::Atomic, CudnnBwd::Off};
    int i = settingChoice("TINYLLAMA_ATTENTION_BWD", {"cudnn-ws", "cudnn", "mma"});
    return i < 0 ? CudnnBwd::Auto : named[i];
  }();
#ifndef TK_WITH_CUDNN
  if (choice == CudnnBwd::Atomic || choice == CudnnBwd::DpWorkspace)
    throw Error(std::string("TINYLLAMA_ATTENTION_BWD=") + (choice == CudnnBwd::Atomic ? "cudnn" : "cudnn-ws") +
                ", but this CUDA addon was built without cuDNN (set CUDNN_HOME and rebuild)");
#endif
  return choice;
}
#ifdef TK_WITH_CUDNN
// cuDNN takes every tensor 16-byte aligned; mmaAttentionSupported checks the bf16 ones, this the
// f32 lse (a view that is not aligned runs the mma kernels).
bool lseAligned16(const TensorDesc& lse) { return (reinterpret_cast<uintptr_t>(lse.data) & 15) == 0; }

// Runs one direction's cuDNN call. A refusal is thrown when cuDNN was asked for explicitly
// (`required`); by default it turns this direction over to the mma kernels for the rest of the
// process (`failed`), with one stderr line saying why, and returns false.
template <typename Call>
bool tryCudnn(bool required, bool& failed, const char* direction, Call&& call) {
  try {
    call();
    return true;
  } catch (const Error& e) {
    if (required) throw;
    failed = true;
    std::fprintf(stderr, "@tinyllama/kernels: %s; attention uses the mma %s from here on\n", e.what(), direction);
    return false;
  }
}
#endif
bool forceFp32Kernels() { return attentionKernelChoice() == AttnKernel::Fp32; }
// The mma kernels serve every choice but wmma and fp32 (the backward reads cuDNN's statistics as
// its lse).
bool useMma() {
  AttnKernel c = attentionKernelChoice();
  return c == AttnKernel::Auto || c == AttnKernel::Mma || c == AttnKernel::Cudnn;
}

constexpr int BR = 64;  // query rows per block
constexpr int BC = 64;  // key rows per tile
constexpr float kLog2e = 1.4426950408889634f;

struct Dims {
  int B, T, H, Hkv, group;
  float scale;
  bool causal;
};

template <typename E, int D>
__global__ void __launch_bounds__(BR) attnForwardKernel(E* out, float* lse, const E* q, const E* k,
                                                        const E* v, Dims d) {
  extern __shared__ float smem[];
  float* Ks = smem;            // [BC][D]
  float* Vs = smem + BC * D;   // [BC][D]
  int qTile = blockIdx.x, bh = blockIdx.y;
  int b = bh / d.H, h = bh % d.H, g = h / d.group;
  int t = qTile * BR + threadIdx.x;
  bool active = t < d.T;
  float qr[D], acc[D];
  float scale2 = d.scale * kLog2e;  // scores in log2 units: exp2f
  if (active) {
    const E* qp = q + ((static_cast<int64_t>(b) * d.T + t) * d.H + h) * D;
#pragma unroll
    for (int i = 0; i < D; ++i) qr[i] = ld(qp, i) * scale2;
  }
#pragma unroll
  for (int i = 0; i < D; ++i) acc[i] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  int kvEnd = d.causal ? min(d.T, (qTile + 1) * BR) : d.T;
  for (int kv0 = 0; kv0 < kvEnd; kv0 += BC) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < BC * D; idx += BR) {
      int j = idx / D, c = idx % D, row = kv0 + j;
      float kv = 0.0f, vv = 0.0f;
      if (row < d.T) {
        int64_t off = ((static_cast<int64_t>(b) * d.T + row) * d.Hkv + g) * D + c;
        kv = ld(k, off);
        vv = ld(v, off);
      }
      Ks[idx] = kv;
      Vs[idx] = vv;
    }
    __syncthreads();
    if (!active) continue;
    int jEnd = min(BC, (d.causal ? t + 1 : d.T) - kv0);
    for (int j0 = 0; j0 < jEnd; j0 += 16) {
      float s[16];
      float mNew = m;
#pragma unroll
      for (int jj = 0; jj < 16; ++jj) {
        int j = j0 + jj;
        float dot = 0.0f;
        const float4* kr = reinterpret_cast<const float4*>(Ks + j * D);
#pragma unroll
        for (int i = 0; i < D / 4; ++i) {
          float4 kk = kr[i];
          dot += qr[4 * i] * kk.x + qr[4 * i + 1] * kk.y + qr[4 * i + 2] * kk.z + qr[4 * i + 3] * kk.w;
        }
        s[jj] = j < jEnd ? dot : -INFINITY;
        mNew = fmaxf(mNew, s[jj]);
      }
      float corr = exp2f(m - mNew);
      l *= corr;
#pragma unroll
      for (int i = 0; i < D; ++i) acc[i] *= corr;
#pragma unroll
      for (int jj = 0; jj < 16; ++jj) {
        float p = exp2f(s[jj] - mNew);
        l += p;
        const float4* vr = reinterpret_cast<const float4*>(Vs + (j0 + jj) * D);
#pragma unroll
        for (int i = 0; i < D / 4; ++i) {
          float4 vv = vr[i];
          acc[4 * i] += p * vv.x;
          acc[4 * i + 1] += p * vv.y;
          acc[4 * i + 2] += p * vv.z;
          acc[4 * i + 3] += p * vv.w;
        }
      }
      m = mNew;
    }
  }
  if (!active) return;
  E* op = out + ((static_cast<int64_t>(b) * d.T + t) * d.H + h) * D;
  float inv = 1.0f / l;
#pragma unroll
  for (int i = 0; i < D; ++i) st(op, i, acc[i] * inv);
  lse[(static_cast<int64_t>(b) * d.H + h) * d.T + t] = (m + log2f(l)) / kLog2e;
}

// Di[b,h,t] = sum_d dO * O (warp per row).
template <typename E>
__global__ void attnDeltaKernel(float* delta, const E* dOut, const E* out, Dims d, int D) {
  int64_t row = static_cast<int64_t>(blockIdx.x) * 8 + threadIdx.y;  // row over [B,T,H]
  int64_t rows = static_cast<int64_t>(d.B) * d.T * d.H;
  if (row >= rows) return;
  float s = 0.0f;
  for (int i = threadIdx.x; i < D; i += 32) s += ld(dOut, row * D + i) * ld(out, row * D + i);
  s = warpSum(s);
  if (threadIdx.x == 0) {
    int64_t h = row % d.H, t = (row / d.H) % d.T, b = row / (static_cast<int64_t>(d.H) * d.T);
    delta[(b * d.H + h) * d.T + t] = s;
  }
}

// The same for bf16 rows of 64 (the tensor-core paths): 8 threads per row, each with one 16-byte
// load of dO and of O, partial sums combined over the 8 lanes with 3 shuffles; 32-bit index math.
// The warp-per-row kernel above moves 2 bytes per load and did 64-bit divisions per row: Nsight
// Compute measured it at 135 us (21% of DRAM bandwidth, integer-bound) at 8 x 2048 x 32 heads.
__global__ void attnDeltaBf16D64Kernel(float* delta, const bf16* dOut, const bf16* out, int rows, int T, int H) {
  int idx = blockIdx.x * blockDim.x + threadIdx.x;
  int row = idx >> 3, part = idx & 7;  // row over [B,T,H]
  bool valid = row < rows;             // no early exit: the whole warp takes part in the shuffles
  uint4 a = make_uint4(0, 0, 0, 0), o = a;
  if (valid) {
    a = *reinterpret_cast<const uint4*>(dOut + static_cast<int64_t>(row) * 64 + part * 8);
    o = *reinterpret_cast<const uint4*>(out + static_cast<int64_t>(row) * 64 + part * 8);
  }
  const __nv_bfloat162* a2 = reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162* o2 = reinterpret_cast<const __nv_bfloat162*>(&o);
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 x = __bfloat1622float2(a2[i]), y = __bfloat1622float2(o2[i]);
    s += x.x * y.x + x.y * y.y;
  }
  s += __shfl_xor_sync(0xffffffffu, s, 1);
  s += __shfl_xor_sync(0xffffffffu, s, 2);
  s += __shfl_xor_sync(0xffffffffu, s, 4);
  if (valid && part == 0) {
    int h = row % H, bt = row / H, t = bt % T, b = bt / T;
    delta[(static_cast<int64_t>(b) * H + h) * T + t] = s;
  }
}

template <typename E, int D>
__global__ void __launch_bounds__(BR) attnDqKernel(E* dq, const E* dOut, const E* q, const E* k,
                                                   const E* v, const float* lse,
                                                   const float* delta, Dims d) {
  extern __shared__ float smem[];
  float* Ks = smem;
  float* Vs = smem + BC * D;
  int qTile = blockIdx.x, bh = blockIdx.y;
  int b = bh / d.H, h = bh % d.H, g = h / d.group;
  int t = qTile * BR + threadIdx.x;
  bool active = t < d.T;
  float qr[D], gr[D], dqr[D];
  float L = 0.0f, Di = 0.0f;
  if (active) {
    int64_t off = ((static_cast<int64_t>(b) * d.T + t) * d.H + h) * D;
#pragma unroll
    for (int i = 0; i < D; ++i) {
      qr[i] = ld(q, off + i) * d.scale;
      gr[i] = ld(dOut, off + i);
    }
    L = lse[(static_cast<int64_t>(b) * d.H + h) * d.T + t];
    Di = delta[(static_cast<int64_t>(b) * d.H + h) * d.T + t];
  }
#pragma unroll
  for (int i = 0; i < D; ++i) dqr[i] = 0.0f;
  int kvEnd = d.causal ? min(d.T, (qTile + 1) * BR) : d.T;
  for (int kv0 = 0; kv0 < kvEnd; kv0 += BC) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < BC * D; idx += BR) {
      int j = idx / D, c = idx % D, row = kv0 + j;
      float kv = 0.0f, vv = 0.0f;
      if (row < d.T) {
        int64_t off = ((static_cast<int64_t>(b) * d.T + row) * d.Hkv + g) * D + c;
        kv = ld(k, off);
        vv = ld(v, off);
      }
      Ks[idx] = kv;
      Vs[idx] = vv;
    }
    __syncthreads();
    if (!active) continue;
    int jEnd = min(BC, (d.causal ? t + 1 : d.T) - kv0);
    for (int j = 0; j < jEnd; ++j) {
      const float4* kr = reinterpret_cast<const float4*>(Ks + j * D);
      const float4* vr = reinterpret_cast<const float4*>(Vs + j * D);
      float s = 0.0f, dp = 0.0f;
#pragma unroll
      for (int i = 0; i < D / 4; ++i) {
        float4 kk = kr[i], vv = vr[i];
        s += qr[4 * i] * kk.x + qr[4 * i + 1] * kk.y + qr[4 * i + 2] * kk.z + qr[4 * i + 3] * kk.w;
        dp += gr[4 * i] * vv.x + gr[4 * i + 1] * vv.y + gr[4 * i + 2] * vv.z + gr[4 * i + 3] * vv.w;
      }
      float p = __expf(s - L);
      float ds = p * (dp - Di);
#pragma unroll
      for (int i = 0; i < D / 4; ++i) {
        float4 kk = kr[i];
        dqr[4 * i] += ds * kk.x;
        dqr[4 * i + 1] += ds * kk.y;
        dqr[4 * i + 2] += ds * kk.z;
        dqr[4 * i + 3] += ds * kk.w;
      }
    }
  }
  if (!active) return;
  E* dp = dq + ((static_cast<int64_t>(b) * d.T + t) * d.H + h) * D;
#pragma unroll
  for (int i = 0; i < D; ++i) st(dp, i, dqr[i] * d.scale);
}

template <typename E, int D>
__global__ void __launch_bounds__(BC) attnDkvKernel(E* dk, E* dv, const E* dOut, const E* q,
                                                    const E* k, const E* v, const float* lse,
                                                    const float* delta, Dims d) {
  extern __shared__ float smem[];
  float* Qs = smem;                    // [BR][D]
  float* Gs = Qs + BR * D;             // [BR][D]
  float* Kown = Gs + BR * D;           // [BC][D+1]
  float* Vown = Kown + BC * (D + 1);    // [BC][D+1]
  float* Ls = Vown + BC * (D + 1);     // [BR]
  float* Ds = Ls + BR;                 // [BR]
  int kTile = blockIdx.x, bg = blockIdx.y;
  int b = bg / d.Hkv, g = bg % d.Hkv;
  int j = kTile * BC + threadIdx.x;
  bool active = j < d.T;
  for (int idx = threadIdx.x; idx < BC * D; idx += BC) {
    int r = idx / D, c = idx % D, row = kTile * BC + r;
    float kv = 0.0f, vv = 0.0f;
    if (row < d.T) {
      int64_t off = ((static_cast<int64_t>(b) * d.T + row) * d.Hkv + g) * D + c;
      kv = ld(k, off);
      vv = ld(v, off);
    }
    Kown[r * (D + 1) + c] = kv;
    Vown[r * (D + 1) + c] = vv;
  }
  float dkr[D], dvr[D];
#pragma unroll
  for (int i = 0; i < D; ++i) {
    dkr[i] = 0.0f;
    dvr[i] = 0.0f;
  }
  const float* kOwn = Kown + threadIdx.x * (D + 1);
  const float* vOwn = Vown + threadIdx.x * (D + 1);
  int qStart = d.causal ? (kTile * BC) / BR * BR : 0;
  for (int h = g * d.group; h < (g + 1) * d.group; ++h) {
    for (int q0 = qStart; q0 < d.T; q0 += BR) {
      __syncthreads();
      for (int idx = threadIdx.x; idx < BR * D; idx += BC) {
        int r = idx / D, c = idx % D, row = q0 + r;
        float qv = 0.0f, gv = 0.0f;
        if (row < d.T) {
          int64_t off = ((static_cast<int64_t>(b) * d.T + row) * d.H + h) * D + c;
          qv = ld(q, off);
          gv = ld(dOut, off);
        }
        Qs[idx] = qv;
        Gs[idx] = gv;
      }
      for (int r = threadIdx.x; r < BR; r += BC) {
        int row = q0 + r;
        bool ok = row < d.T;
        Ls[r] = ok ? lse[(static_cast<int64_t>(b) * d.H + h) * d.T + row] : INFINITY;
        Ds[r] = ok ? delta[(static_cast<int64_t>(b) * d.H + h) * d.T + row] : 0.0f;
      }
      __syncthreads();
      if (!active) continue;
      int iStart = d.causal ? max(0, j - q0) : 0;
      int iEnd = min(BR, d.T - q0);
      for (int i = iStart; i < iEnd; ++i) {
        const float4* qr = reinterpret_cast<const float4*>(Qs + i * D);
        const float4* gr = reinterpret_cast<const float4*>(Gs + i * D);
        float s = 0.0f, dp = 0.0f;
#pragma unroll
        for (int c = 0; c < D / 4; ++c) {
          float4 qq = qr[c], gg = gr[c];
          s += qq.x * kOwn[4 * c] + qq.y * kOwn[4 * c + 1] + qq.z * kOwn[4 * c + 2] + qq.w * kOwn[4 * c + 3];
          dp += gg.x * vOwn[4 * c] + gg.y * vOwn[4 * c + 1] + gg.z * vOwn[4 * c + 2] + gg.w * vOwn[4 * c + 3];
        }
        float p = __expf(s * d.scale - Ls[i]);
        float ds = p * (dp - Ds[i]) * d.scale;
#pragma unroll
        for (int c = 0; c < D / 4; ++c) {
          float4 qq = qr[c], gg = gr[c];
          dkr[4 * c] += ds * qq.x;
          dkr[4 * c + 1] += ds * qq.y;
          dkr[4 * c + 2] += ds * qq.z;
          dkr[4 * c + 3] += ds * qq.w;
          dvr[4 * c] += p * gg.x;
          dvr[4 * c + 1] += p * gg.y;
          dvr[4 * c + 2] += p * gg.z;
          dvr[4 * c + 3] += p * gg.w;
        }
      }
    }
  }
  if (!active) return;
  int64_t off = ((static_cast<int64_t>(b) * d.T + j) * d.Hkv + g) * D;
#pragma unroll
  for (int i = 0; i < D; ++i) {
    st(dk + off, i, dkr[i]);
    st(dv + off, i, dvr[i]);
  }
}

Dims dimsOf(const TensorDesc& q, const TensorDesc& k, const AttentionOptions& o) {
  Dims d;
  d.B = static_cast<int>(q.shape[0]);
  d.T = static_cast<int>(q.shape[1]);
  d.H = static_cast<int>(q.shape[2]);
  d.Hkv = static_cast<int>(k.shape[2]);
  d.group = d.H / d.Hkv;
  d.scale = o.scale;
  d.causal = o.causal;
  return d;
}

// Head dims the fp32 CUDA-core kernels are compiled for (their per-thread rows are arrays of
// D floats, so D is a template argument): TinyLlama 1.1B's 64, the small presets' 8, 16 and 32
// (tinyllama-test, -4m, -18m), and 128 (Llama 2 7B and larger). Each one more costs build time
// (three kernels, two dtypes, two architectures). bf16 with D = 64 takes the tensor-core kernels.
template <typename F>
bool withHeadDim(int64_t D, F&& f) {
  switch (D) {
    case 8: f(std::integral_constant<int, 8>{}); return true;
    case 16: f(std::integral_constant<int, 16>{}); return true;
    case 32: f(std::integral_constant<int, 32>{}); return true;
    case 64: f(std::integral_constant<int, 64>{}); return true;
    case 128: f(std::integral_constant<int, 128>{}); return true;
    default: return false;
  }
}

void checkSupported(const TensorDesc& q) {
  int64_t D = q.shape[3];
  if (!withHeadDim(D, [](auto) {}))
    throw Error("the CUDA attention kernels support head dims 8, 16, 32, 64 and 128, got " +
                std::to_string(D));
  if (q.shape[1] > (int64_t{1} << 30) || q.shape[0] * q.shape[2] > 65535 * 1024)
    throw Error("attention shape too large for the CUDA kernel's grid");
}

template <typename E, int D>
void forwardImpl(const TensorDesc& out, const TensorDesc& lse, const TensorDesc& q,
                 const TensorDesc& k, const TensorDesc& v, Dims d) {
  size_t smem = 2 * BC * D * sizeof(float);
  auto kernel = attnForwardKernel<E, D>;
  TK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  dim3 grid((d.T + BR - 1) / BR, d.B * d.H);
  kernel<<<grid, BR, smem, stream()>>>(out.as<E>(), lse.as<float>(), q.as<E>(), k.as<E>(), v.as<E>(), d);
  TK_LAUNCH_CHECK("attentionForward");
}

template <typename E, int D>
void backwardImpl(const TensorDesc& dq, const TensorDesc& dk, const TensorDesc& dv,
                  const TensorDesc& dOut, const TensorDesc& q, const TensorDesc& k,
                  const TensorDesc& v, const TensorDesc& out, const TensorDesc& lse, Dims d) {
  int64_t rows = static_cast<int64_t>(d.B) * d.T * d.H;
  auto* delta = static_cast<float*>(scratch(static_cast<size_t>(rows) * sizeof(float)));
  attnDeltaKernel<E><<<static_cast<unsigned>((rows + 7) / 8), dim3(32, 8), 0, stream()>>>(
      delta, dOut.as<E>(), out.as<E>(), d, D);
  TK_LAUNCH_CHECK("attentionBackward delta");
  size_t smemQ = 2 * BC * D * sizeof(float);
  auto dqKernel = attnDqKernel<E, D>;
  TK_CUDA(cudaFuncSetAttribute(dqKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smemQ)));
  dim3 gridQ((d.T + BR - 1) / BR, d.B * d.H);
  dqKernel<<<gridQ, BR, smemQ, stream()>>>(dq.as<E>(), dOut.as<E>(), q.as<E>(), k.as<E>(), v.as<E>(),
                                           lse.as<float>(), delta, d);
  TK_LAUNCH_CHECK("attentionBackward dq");
  size_t smemKv = (2 * BR * D + 2 * BC * (D + 1) + 2 * BR) * sizeof(float);
  auto kvKernel = attnDkvKernel<E, D>;
  TK_CUDA(cudaFuncSetAttribute(kvKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smemKv)));
  dim3 gridKv((d.T + BC - 1) / BC, d.B * d.Hkv);
  kvKernel<<<gridKv, BC, smemKv, stream()>>>(dk.as<E>(), dv.as<E>(), dOut.as<E>(), q.as<E>(), k.as<E>(),
                                             v.as<E>(), lse.as<float>(), delta, d);
  TK_LAUNCH_CHECK("attentionBackward dk/dv");
}

}  // namespace
}  // namespace tk::cuda

namespace tk::backend {
using namespace tk::cuda;

void attentionForward(const TensorDesc& out, const TensorDesc& lse, const TensorDesc& q,
                      const TensorDesc& k, const TensorDesc& v, const AttentionOptions& o) {
  if (q.numel == 0) return;
  checkSupported(q);
  checkAttentionEnv();
#ifdef TK_WITH_CUDNN
  // TINYLLAMA_ATTENTION=cudnn: cuDNN for every length, its errors thrown. Unset: cuDNN for
  // sequence lengths that are multiples of 64 (training's 2048; a plan is built per shape, so
  // generation's and eval's arbitrary lengths take the mma forward, which needs no plan) until
  // cuDNN refuses once, then the mma forward with one stderr line saying why.
  AttnKernel choice = attentionKernelChoice();
  static bool cudnnFailed = false;
  bool wantCudnn = choice == AttnKernel::Cudnn ||
                   (choice == AttnKernel::Auto && !cudnnFailed && q.shape[1] % 64 == 0);
  if (wantCudnn && mmaAttentionSupported({&q, &k, &v, &out}) && lseAligned16(lse) &&
      tryCudnn(choice == AttnKernel::Cudnn, cudnnFailed, "forward", [&] { cudnnAttentionForward(out, lse, q, k, v, o); }))
    return;
#endif
  if (useMma() && mmaAttentionSupported({&q, &k, &v, &out})) {
    mmaAttentionForward(out, lse, q, k, v, o);
    return;
  }
  if (!forceFp32Kernels() && tcAttentionSupported({&q, &k, &v, &out})) {
    tcAttentionForward(out, lse, q, k, v, o);
    return;
  }
  Dims d = dimsOf(q, k, o);
  dispatchFloat(q.dtype, [&](auto tag) {
    using E = decltype(tag);
    withHeadDim(q.shape[3], [&](auto dim) { forwardImpl<E, decltype(dim)::value>(out, lse, q, k, v, d); });
  });
}

void attentionBackward(const TensorDesc& dq, const TensorDesc& dk, const TensorDesc& dv,
                       const TensorDesc& dOut, const TensorDesc& q, const TensorDesc& k,
                       const TensorDesc& v, const TensorDesc& out, const TensorDesc& lse,
                       const AttentionOptions& o) {
  if (q.numel == 0) return;
  checkSupported(q);
  checkAttentionEnv();
  Dims d = dimsOf(q, k, o);
  bool mma = useMma() && mmaAttentionSupported({&q, &k, &v, &out, &dOut, &dq, &dk, &dv});
#ifdef TK_WITH_CUDNN
  CudnnBwd bwd = cudnnBackwardChoice();
  static bool cudnnFailed = false;
  bool wantCudnn = bwd == CudnnBwd::Atomic || bwd == CudnnBwd::DpWorkspace ||
                   (bwd == CudnnBwd::Auto && !cudnnFailed && q.shape[1] % 64 == 0 &&
                    (attentionKernelChoice() == AttnKernel::Auto || attentionKernelChoice() == AttnKernel::Cudnn));
  if (wantCudnn && mma && lseAligned16(lse) && tryCudnn(bwd != CudnnBwd::Auto, cudnnFailed, "backward", [&] {
        cudnnAttentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, o, bwd != CudnnBwd::Atomic);
      }))
    return;
#else
  cudnnBackwardChoice();  // throws when it is set
#endif
  if (mma || (!forceFp32Kernels() && tcAttentionSupported({&q, &k, &v, &out, &dOut, &dq, &dk, &dv}))) {
    int64_t rows = static_cast<int64_t>(d.B) * d.T * d.H;
    auto* delta = static_cast<float*>(scratch(static_cast<size_t>(rows) * sizeof(float)));
    if (rows * 8 < (int64_t{1} << 31))  // its 32-bit thread index
      attnDeltaBf16D64Kernel<<<static_cast<unsigned>((rows * 8 + 255) / 256), 256, 0, stream()>>>(
          delta, dOut.as<bf16>(), out.as<bf16>(), static_cast<int>(rows), d.T, d.H);
    else
      attnDeltaKernel<bf16><<<static_cast<unsigned>((rows + 7) / 8), dim3(32, 8), 0, stream()>>>(
          delta, dOut.as<bf16>(), out.as<bf16>(), d, 64);
    TK_LAUNCH_CHECK("attentionBackward delta");
    if (mma) mmaAttentionBackward(dq, dk, dv, dOut, q, k, v, lse, delta, o);
    else tcAttentionBackward(dq, dk, dv, dOut, q, k, v, lse, delta, o);
    return;
  }
  dispatchFloat(q.dtype, [&](auto tag) {
    using E = decltype(tag);
    withHeadDim(q.shape[3],
                [&](auto dim) { backwardImpl<E, decltype(dim)::value>(dq, dk, dv, dOut, q, k, v, out, lse, d); });
  });
}

}  // namespace tk::backend
