// Tensor-core attention for bf16, head dim 64 (the TinyLlama case), FlashAttention-2 style
// with the WMMA API (16x16x16 bf16 tiles, fp32 accumulation), used by attention.cu when the
// inputs are bf16, D = 64 and 16-byte aligned; other cases take the fp32 CUDA-core kernels.
//
// Forward: a block of 4 warps owns 64 query rows of one (batch, head); each warp owns 16 rows.
// Per 64-key tile staged in shared memory: S = Q K^T on tensor cores into a per-warp fp32
// scratch, online softmax there (two lanes per row, 32 columns each), P rounded to bf16, and
// O += P V accumulated in a per-warp fp32 tile that is rescaled by the running-max correction.
// Backward (deterministic, no atomics): one kernel per 64-key tile of a KV head computes dK and
// dV (warp = 16 keys; accumulators stay in WMMA fragments over all query heads of the group and
// all query tiles), recomputing P^T = exp(K Q^T * scale - lse) and dS^T = P^T (dO V^T - delta);
// a second kernel per 64-query tile computes dQ = dS K the same way.
#include <mma.h>

#include "common.cuh"

namespace tk::cuda {
namespace {
using namespace nvcuda;

constexpr int D = 64, TILE = 64, WARPS = 4, THREADS = 128;
constexpr int LDH = 72;  // bf16 shared-memory row stride (pads rows off the same banks)
constexpr int LDF = 68;  // fp32 shared-memory row stride
constexpr float kLog2e = 1.4426950408889634f;

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

struct TcDims {
  int T, H, Hkv, group;
  float scale;
  bool causal;
};

// Copies 64 rows of 64 bf16 (row stride `rowStride` elements in global memory) into shared
// memory, zero rows at or beyond `rowsValid`. 16-byte vectors, all 128 threads.
__device__ __forceinline__ void loadTile(bf16* dst, const bf16* src, int64_t rowStride, int rowsValid) {
  for (int idx = threadIdx.x; idx < TILE * (D / 8); idx += THREADS) {
    int r = idx / (D / 8), c = (idx % (D / 8)) * 8;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (r < rowsValid) v = *reinterpret_cast<const uint4*>(src + r * rowStride + c);
    *reinterpret_cast<uint4*>(dst + r * LDH + c) = v;
  }
}

__global__ void __launch_bounds__(THREADS) tcForwardKernel(bf16* out, float* lse, const bf16* q,
                                                           const bf16* k, const bf16* v, TcDims d) {
  extern __shared__ __align__(128) unsigned char smemRaw[];
  bf16* Qs = reinterpret_cast<bf16*>(smemRaw);
  bf16* Ks = Qs + TILE * LDH;
  bf16* Vs = Ks + TILE * LDH;
  bf16* Pw = Vs + TILE * LDH;                                  // [WARPS][16][LDH]
  float* Sw = reinterpret_cast<float*>(Pw + WARPS * 16 * LDH);  // [WARPS][16][LDF]
  float* Ow = Sw + WARPS * 16 * LDF;                            // [WARPS][16][LDF]
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int q0 = blockIdx.x * TILE, bh = blockIdx.y;
  int b = bh / d.H, h = bh % d.H, g = h / d.group;
  int64_t qStride = static_cast<int64_t>(d.H) * D, kvStride = static_cast<int64_t>(d.Hkv) * D;
  loadTile(Qs, q + ((static_cast<int64_t>(b) * d.T + q0) * d.H + h) * D, qStride, d.T - q0);
  float* S = Sw + warp * 16 * LDF;
  float* O = Ow + warp * 16 * LDF;
  bf16* P = Pw + warp * 16 * LDH;
  int r = lane >> 1, c0 = (lane & 1) * 32;
  for (int c = 0; c < 32; ++c) O[r * LDF + c0 + c] = 0.0f;
  __syncthreads();
  FragA qf[4];
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) wmma::load_matrix_sync(qf[kk], Qs + warp * 16 * LDH + kk * 16, LDH);
  int er = lane & 15, eh = lane >> 4;  // softmax mapping: row er, columns eh, eh + 2, ...
  int eRow = q0 + warp * 16 + er;
  float m = -INFINITY, l = 0.0f;  // running max (log2 units) and sum of row er
  float scale2 = d.scale * kLog2e;
  int kvEnd = d.causal ? min(d.T, q0 + TILE) : d.T;
  for (int kv0 = 0; kv0 < kvEnd; kv0 += TILE) {
    __syncthreads();
    const bf16* kBase = k + ((static_cast<int64_t>(b) * d.T + kv0) * d.Hkv + g) * D;
    const bf16* vBase = v + ((static_cast<int64_t>(b) * d.T + kv0) * d.Hkv + g) * D;
    loadTile(Ks, kBase, kvStride, d.T - kv0);
    loadTile(Vs, vBase, kvStride, d.T - kv0);
    __syncthreads();
#pragma unroll
    for (int n = 0; n < 4; ++n) {
      FragC sf;
      wmma::fill_fragment(sf, 0.0f);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        FragBCol kf;
        wmma::load_matrix_sync(kf, Ks + n * 16 * LDH + kk * 16, LDH);
        wmma::mma_sync(sf, qf[kk], kf, sf);
      }
      wmma::store_matrix_sync(S + n * 16, sf, LDF, wmma::mem_row_major);
    }
    __syncwarp();
    // Row er, columns 2j + eh: the two lanes of a row sit in different bank halves.
    float sv[32];
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      int col = 2 * j + eh, key = kv0 + col;
      bool valid = key < d.T && (!d.causal || key <= eRow);
      sv[j] = valid ? S[er * LDF + col] * scale2 : -INFINITY;
      mx = fmaxf(mx, sv[j]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
    float mNew = fmaxf(m, mx);
    float corr = mNew == -INFINITY ? 1.0f : exp2f(m - mNew);
    float rowSum = 0.0f;
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      int col = 2 * j + eh;
      float p = mNew == -INFINITY ? 0.0f : exp2f(sv[j] - mNew);
      rowSum += p;
      P[er * LDH + col] = __float2bfloat16_rn(p);
      O[er * LDF + col] *= corr;
    }
    rowSum += __shfl_xor_sync(0xffffffffu, rowSum, 16);
    l = l * corr + rowSum;
    m = mNew;
    __syncwarp();
    FragA pf[4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wmma::load_matrix_sync(pf[kk], P + kk * 16, LDH);
#pragma unroll
    for (int n = 0; n < 4; ++n) {
      FragC of;
      wmma::load_matrix_sync(of, O + n * 16, LDF, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        FragBRow vf;
        wmma::load_matrix_sync(vf, Vs + kk * 16 * LDH + n * 16, LDH);
        wmma::mma_sync(of, pf[kk], vf, of);
      }
      wmma::store_matrix_sync(O + n * 16, of, LDF, wmma::mem_row_major);
    }
    __syncwarp();
  }
  // write-out mapping: row r, 32 contiguous columns from c0; row r's m and l live in lane r
  float rowL = __shfl_sync(0xffffffffu, l, r), rowM = __shfl_sync(0xffffffffu, m, r);
  int qRow = q0 + warp * 16 + r;
  if (qRow >= d.T) return;
  bf16* op = out + ((static_cast<int64_t>(b) * d.T + qRow) * d.H + h) * D;
  float inv = 1.0f / rowL;
  for (int c = 0; c < 32; c += 2) {
    __nv_bfloat162 pair = __floats2bfloat162_rn(O[r * LDF + c0 + c] * inv, O[r * LDF + c0 + c + 1] * inv);
    *reinterpret_cast<__nv_bfloat162*>(op + c0 + c) = pair;
  }
  if ((lane & 1) == 0) lse[(static_cast<int64_t>(b) * d.H + h) * d.T + qRow] = (rowM + log2f(rowL)) / kLog2e;
}

// dK, dV for one 64-key tile of KV head g: warp w owns keys 16w..16w+15.
__global__ void __launch_bounds__(THREADS) tcDkvKernel(bf16* dk, bf16* dv, const bf16* dOut,
                                                       const bf16* q, const bf16* k, const bf16* v,
                                                       const float* lse, const float* delta, TcDims d) {
  extern __shared__ __align__(128) unsigned char smemRaw[];
  bf16* Ks = reinterpret_cast<bf16*>(smemRaw);
  bf16* Vs = Ks + TILE * LDH;
  bf16* Qs = Vs + TILE * LDH;
  bf16* Gs = Qs + TILE * LDH;
  bf16* Pw = Gs + TILE * LDH;                                    // [WARPS][16][LDH] P^T
  bf16* DSw = Pw + WARPS * 16 * LDH;                             // [WARPS][16][LDH] dS^T
  float* Sw = reinterpret_cast<float*>(DSw + WARPS * 16 * LDH);  // [WARPS][16][LDF]
  float* DPw = Sw + WARPS * 16 * LDF;                            // [WARPS][16][LDF]
  float* Ls = DPw + WARPS * 16 * LDF;                            // [TILE]
  float* Ds = Ls + TILE;                                         // [TILE]
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int k0 = blockIdx.x * TILE, bg = blockIdx.y;
  int b = bg / d.Hkv, g = bg % d.Hkv;
  int64_t qStride = static_cast<int64_t>(d.H) * D, kvStride = static_cast<int64_t>(d.Hkv) * D;
  loadTile(Ks, k + ((static_cast<int64_t>(b) * d.T + k0) * d.Hkv + g) * D, kvStride, d.T - k0);
  loadTile(Vs, v + ((static_cast<int64_t>(b) * d.T + k0) * d.Hkv + g) * D, kvStride, d.T - k0);
  __syncthreads();
  FragA kf[4], vf[4];
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    wmma::load_matrix_sync(kf[kk], Ks + warp * 16 * LDH + kk * 16, LDH);
    wmma::load_matrix_sync(vf[kk], Vs + warp * 16 * LDH + kk * 16, LDH);
  }
  FragC dkAcc[4], dvAcc[4];
#pragma unroll
  for (int n = 0; n < 4; ++n) {
    wmma::fill_fragment(dkAcc[n], 0.0f);
    wmma::fill_fragment(dvAcc[n], 0.0f);
  }
  float* S = Sw + warp * 16 * LDF;
  float* DP = DPw + warp * 16 * LDF;
  bf16* P = Pw + warp * 16 * LDH;
  bf16* DS = DSw + warp * 16 * LDH;
  int r = lane >> 1, c0 = (lane & 1) * 32;
  int key = k0 + warp * 16 + r;                // write-out mapping
  int er = lane & 15, eh = lane >> 4;          // elementwise mapping: row er, columns eh + 2j
  int eKey = k0 + warp * 16 + er;
  int qStart = d.causal ? k0 : 0;
  for (int h = g * d.group; h < (g + 1) * d.group; ++h) {
    for (int q0 = qStart; q0 < d.T; q0 += TILE) {
      __syncthreads();
      loadTile(Qs, q + ((static_cast<int64_t>(b) * d.T + q0) * d.H + h) * D, qStride, d.T - q0);
      loadTile(Gs, dOut + ((static_cast<int64_t>(b) * d.T + q0) * d.H + h) * D, qStride, d.T - q0);
      for (int i = threadIdx.x; i < TILE; i += THREADS) {
        bool ok = q0 + i < d.T;
        int64_t li = (static_cast<int64_t>(b) * d.H + h) * d.T + q0 + i;
        Ls[i] = ok ? lse[li] : INFINITY;
        Ds[i] = ok ? delta[li] : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int n = 0; n < 4; ++n) {
        FragC sf, pf;
        wmma::fill_fragment(sf, 0.0f);
        wmma::fill_fragment(pf, 0.0f);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          FragBCol qb, gb;
          wmma::load_matrix_sync(qb, Qs + n * 16 * LDH + kk * 16, LDH);
          wmma::load_matrix_sync(gb, Gs + n * 16 * LDH + kk * 16, LDH);
          wmma::mma_sync(sf, kf[kk], qb, sf);
          wmma::mma_sync(pf, vf[kk], gb, pf);
        }
        wmma::store_matrix_sync(S + n * 16, sf, LDF, wmma::mem_row_major);
        wmma::store_matrix_sync(DP + n * 16, pf, LDF, wmma::mem_row_major);
      }
      __syncwarp();
#pragma unroll 8
      for (int j = 0; j < 32; ++j) {
        int col = 2 * j + eh, qi = q0 + col;
        bool valid = eKey < d.T && qi < d.T && (!d.causal || qi >= eKey);
        float p = valid ? __expf(S[er * LDF + col] * d.scale - Ls[col]) : 0.0f;
        float ds = p * (DP[er * LDF + col] - Ds[col]) * d.scale;
        P[er * LDH + col] = __float2bfloat16_rn(p);
        DS[er * LDH + col] = __float2bfloat16_rn(ds);
      }
      __syncwarp();
      FragA pa[4], dsa[4];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        wmma::load_matrix_sync(pa[kk], P + kk * 16, LDH);
        wmma::load_matrix_sync(dsa[kk], DS + kk * 16, LDH);
      }
#pragma unroll
      for (int n = 0; n < 4; ++n) {
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          FragBRow gb, qb;
          wmma::load_matrix_sync(gb, Gs + kk * 16 * LDH + n * 16, LDH);
          wmma::load_matrix_sync(qb, Qs + kk * 16 * LDH + n * 16, LDH);
          wmma::mma_sync(dvAcc[n], pa[kk], gb, dvAcc[n]);
          wmma::mma_sync(dkAcc[n], dsa[kk], qb, dkAcc[n]);
        }
      }
    }
  }
  // fragments -> per-warp fp32 tiles -> bf16 rows
#pragma unroll
  for (int n = 0; n < 4; ++n) {
    wmma::store_matrix_sync(S + n * 16, dkAcc[n], LDF, wmma::mem_row_major);
    wmma::store_matrix_sync(DP + n * 16, dvAcc[n], LDF, wmma::mem_row_major);
  }
  __syncwarp();
  if (key >= d.T) return;
  int64_t off = ((static_cast<int64_t>(b) * d.T + key) * d.Hkv + g) * D + c0;
  for (int c = 0; c < 32; c += 2) {
    *reinterpret_cast<__nv_bfloat162*>(dk + off + c) = __floats2bfloat162_rn(S[r * LDF + c0 + c], S[r * LDF + c0 + c + 1]);
    *reinterpret_cast<__nv_bfloat162*>(dv + off + c) = __floats2bfloat162_rn(DP[r * LDF + c0 + c], DP[r * LDF + c0 + c + 1]);
  }
}

// dQ for one 64-query tile of head h: warp w owns query rows 16w..16w+15.
__global__ void __launch_bounds__(THREADS) tcDqKernel(bf16* dq, const bf16* dOut, const bf16* q,
                                                      const bf16* k, const bf16* v, const float* lse,
                                                      const float* delta, TcDims d) {
  extern __shared__ __align__(128) unsigned char smemRaw[];
  bf16* Qs = reinterpret_cast<bf16*>(smemRaw);
  bf16* Gs = Qs + TILE * LDH;
  bf16* Ks = Gs + TILE * LDH;
  bf16* Vs = Ks + TILE * LDH;
  bf16* DSw = Vs + TILE * LDH;                                   // [WARPS][16][LDH]
  float* Sw = reinterpret_cast<float*>(DSw + WARPS * 16 * LDH);  // [WARPS][16][LDF]
  float* DPw = Sw + WARPS * 16 * LDF;
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int q0 = blockIdx.x * TILE, bh = blockIdx.y;
  int b = bh / d.H, h = bh % d.H, g = h / d.group;
  int64_t qStride = static_cast<int64_t>(d.H) * D, kvStride = static_cast<int64_t>(d.Hkv) * D;
  loadTile(Qs, q + ((static_cast<int64_t>(b) * d.T + q0) * d.H + h) * D, qStride, d.T - q0);
  loadTile(Gs, dOut + ((static_cast<int64_t>(b) * d.T + q0) * d.H + h) * D, qStride, d.T - q0);
  __syncthreads();
  FragA qa[4], ga[4];
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    wmma::load_matrix_sync(qa[kk], Qs + warp * 16 * LDH + kk * 16, LDH);
    wmma::load_matrix_sync(ga[kk], Gs + warp * 16 * LDH + kk * 16, LDH);
  }
  FragC dqAcc[4];
#pragma unroll
  for (int n = 0; n < 4; ++n) wmma::fill_fragment(dqAcc[n], 0.0f);
  float* S = Sw + warp * 16 * LDF;
  float* DP = DPw + warp * 16 * LDF;
  bf16* DS = DSw + warp * 16 * LDH;
  int r = lane >> 1, c0 = (lane & 1) * 32;
  int qRow = q0 + warp * 16 + r;  // write-out mapping
  bool rowOk = qRow < d.T;
  int er = lane & 15, eh = lane >> 4;  // elementwise mapping: row er, columns eh + 2j
  int eRow = q0 + warp * 16 + er;
  bool eOk = eRow < d.T;
  int64_t li = (static_cast<int64_t>(b) * d.H + h) * d.T + eRow;
  float L = eOk ? lse[li] : INFINITY, Di = eOk ? delta[li] : 0.0f;
  int kvEnd = d.causal ? min(d.T, q0 + TILE) : d.T;
  for (int kv0 = 0; kv0 < kvEnd; kv0 += TILE) {
    __syncthreads();
    loadTile(Ks, k + ((static_cast<int64_t>(b) * d.T + kv0) * d.Hkv + g) * D, kvStride, d.T - kv0);
    loadTile(Vs, v + ((static_cast<int64_t>(b) * d.T + kv0) * d.Hkv + g) * D, kvStride, d.T - kv0);
    __syncthreads();
#pragma unroll
    for (int n = 0; n < 4; ++n) {
      FragC sf, pf;
      wmma::fill_fragment(sf, 0.0f);
      wmma::fill_fragment(pf, 0.0f);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        FragBCol kb, vb;
        wmma::load_matrix_sync(kb, Ks + n * 16 * LDH + kk * 16, LDH);
        wmma::load_matrix_sync(vb, Vs + n * 16 * LDH + kk * 16, LDH);
        wmma::mma_sync(sf, qa[kk], kb, sf);
        wmma::mma_sync(pf, ga[kk], vb, pf);
      }
      wmma::store_matrix_sync(S + n * 16, sf, LDF, wmma::mem_row_major);
      wmma::store_matrix_sync(DP + n * 16, pf, LDF, wmma::mem_row_major);
    }
    __syncwarp();
#pragma unroll 8
    for (int j = 0; j < 32; ++j) {
      int col = 2 * j + eh, key = kv0 + col;
      bool valid = eOk && key < d.T && (!d.causal || key <= eRow);
      float p = valid ? __expf(S[er * LDF + col] * d.scale - L) : 0.0f;
      DS[er * LDH + col] = __float2bfloat16_rn(p * (DP[er * LDF + col] - Di) * d.scale);
    }
    __syncwarp();
    FragA dsa[4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wmma::load_matrix_sync(dsa[kk], DS + kk * 16, LDH);
#pragma unroll
    for (int n = 0; n < 4; ++n) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        FragBRow kb;
        wmma::load_matrix_sync(kb, Ks + kk * 16 * LDH + n * 16, LDH);
        wmma::mma_sync(dqAcc[n], dsa[kk], kb, dqAcc[n]);
      }
    }
  }
#pragma unroll
  for (int n = 0; n < 4; ++n) wmma::store_matrix_sync(S + n * 16, dqAcc[n], LDF, wmma::mem_row_major);
  __syncwarp();
  if (!rowOk) return;
  bf16* dp = dq + ((static_cast<int64_t>(b) * d.T + qRow) * d.H + h) * D + c0;
  for (int c = 0; c < 32; c += 2)
    *reinterpret_cast<__nv_bfloat162*>(dp + c) = __floats2bfloat162_rn(S[r * LDF + c0 + c], S[r * LDF + c0 + c + 1]);
}

constexpr size_t kFwdSmem = (4 * TILE * LDH) * sizeof(bf16) + 2 * WARPS * 16 * LDF * sizeof(float);
constexpr size_t kDkvSmem = (4 * TILE * LDH + 2 * WARPS * 16 * LDH) * sizeof(bf16) +
                            (2 * WARPS * 16 * LDF + 2 * TILE) * sizeof(float);
constexpr size_t kDqSmem = (4 * TILE * LDH + WARPS * 16 * LDH) * sizeof(bf16) + 2 * WARPS * 16 * LDF * sizeof(float);

TcDims tcDims(const TensorDesc& q, const TensorDesc& k, const AttentionOptions& o) {
  TcDims d;
  d.T = static_cast<int>(q.shape[1]);
  d.H = static_cast<int>(q.shape[2]);
  d.Hkv = static_cast<int>(k.shape[2]);
  d.group = d.H / d.Hkv;
  d.scale = o.scale;
  d.causal = o.causal;
  return d;
}

bool aligned16(const TensorDesc& t) { return (reinterpret_cast<uintptr_t>(t.data) & 15) == 0; }

}  // namespace

bool tcAttentionSupported(std::initializer_list<const TensorDesc*> ts) {
  for (const TensorDesc* t : ts)
    if (t->dtype != DType::BF16 || !aligned16(*t)) return false;
  return ts.size() > 0 && (*ts.begin())->shape[3] == D;
}

void tcAttentionForward(const TensorDesc& out, const TensorDesc& lse, const TensorDesc& q,
                        const TensorDesc& k, const TensorDesc& v, const AttentionOptions& o) {
  TcDims d = tcDims(q, k, o);
  TK_CUDA(cudaFuncSetAttribute(tcForwardKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kFwdSmem)));
  dim3 grid((d.T + TILE - 1) / TILE, static_cast<unsigned>(q.shape[0] * d.H));
  tcForwardKernel<<<grid, THREADS, kFwdSmem, stream()>>>(out.as<bf16>(), lse.as<float>(), q.as<bf16>(),
                                                          k.as<bf16>(), v.as<bf16>(), d);
  TK_LAUNCH_CHECK("attentionForward (tensor cores)");
}

void tcAttentionBackward(const TensorDesc& dq, const TensorDesc& dk, const TensorDesc& dv,
                         const TensorDesc& dOut, const TensorDesc& q, const TensorDesc& k,
                         const TensorDesc& v, const TensorDesc& lse, const float* delta,
                         const AttentionOptions& o) {
  TcDims d = tcDims(q, k, o);
  TK_CUDA(cudaFuncSetAttribute(tcDkvKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kDkvSmem)));
  TK_CUDA(cudaFuncSetAttribute(tcDqKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kDqSmem)));
  dim3 gridKv((d.T + TILE - 1) / TILE, static_cast<unsigned>(q.shape[0] * d.Hkv));
  tcDkvKernel<<<gridKv, THREADS, kDkvSmem, stream()>>>(dk.as<bf16>(), dv.as<bf16>(), dOut.as<bf16>(), q.as<bf16>(),
                                                       k.as<bf16>(), v.as<bf16>(), lse.as<float>(), delta, d);
  TK_LAUNCH_CHECK("attentionBackward dk/dv (tensor cores)");
  dim3 gridQ((d.T + TILE - 1) / TILE, static_cast<unsigned>(q.shape[0] * d.H));
  tcDqKernel<<<gridQ, THREADS, kDqSmem, stream()>>>(dq.as<bf16>(), dOut.as<bf16>(), q.as<bf16>(), k.as<bf16>(),
                                                    v.as<bf16>(), lse.as<float>(), delta, d);
  TK_LAUNCH_CHECK("attentionBackward dq (tensor cores)");
}

}  // namespace tk::cuda
