// The backend interface: one implementation per device family (cpu/, cuda/), linked into its
// own addon with the same Node-API binding (napi/binding.cpp). The binding has already checked
// dtypes, shapes and aliasing rules (see napi/checks.h), so these functions only compute.
// Errors a backend can still hit (out-of-range token ids, device failures) are thrown as
// tk::Error and become JavaScript errors in the binding.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor.h"

namespace tk {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct DeviceInfo {
  std::string backend;  // "cpu" | "cuda"
  std::string name;
  int computeMajor = 0;
  int computeMinor = 0;
  int64_t totalMemory = 0;
  int threads = 0;
  std::string detail;
};

struct MatmulOptions {
  bool transA = false;
  bool transB = false;
  bool accumulate = false;
  float alpha = 1.0f;
};

struct AttentionOptions {
  bool causal = true;
  float scale = 0.0f;  // 0 means 1/sqrt(D)
};

struct AdamWOptions {
  float lr, beta1, beta2, eps, weightDecay, gradScale;
  int64_t step;
};

namespace backend {

// Lifetime. init() throws tk::Error with an actionable message when the device is unusable.
void init();
DeviceInfo deviceInfo();
void* allocate(size_t bytes);
void release(void* ptr);
void copyFromHost(void* dst, const void* src, size_t bytes);
void copyToHost(void* dst, const void* src, size_t bytes);
void synchronize();

// Ops. Shapes: N rows = product of leading dims; C, V, I, D as in the README.
void embeddingForward(const TensorDesc& out, const TensorDesc& table, const TensorDesc& ids);
void embeddingBackward(const TensorDesc& dTable, const TensorDesc& dOut, const TensorDesc& ids);
void rmsnormForward(const TensorDesc& out, const TensorDesc& rstd, const TensorDesc& x,
                    const TensorDesc& weight, float eps);
void residualRmsnormForward(const TensorDesc& residualOut, const TensorDesc& out,
                            const TensorDesc& rstd, const TensorDesc& x,
                            const TensorDesc& residual, const TensorDesc& weight, float eps);
void rmsnormBackward(const TensorDesc& dx, const TensorDesc& dWeight, const TensorDesc& dOut,
                     const TensorDesc& x, const TensorDesc& weight, const TensorDesc& rstd);
// out[M,N] (+)= alpha * op(a)[M,K] @ op(b)[K,N], all row-major.
void matmul(const TensorDesc& out, const TensorDesc& a, const TensorDesc& b, int64_t M,
            int64_t N, int64_t K, const MatmulOptions& opt);
// x, out: [B,T,H,D]; inverse=true applies the transpose rotation (backward).
void rope(const TensorDesc& out, const TensorDesc& x, float base, int64_t positionOffset,
          bool inverse);
void attentionForward(const TensorDesc& out, const TensorDesc& lse, const TensorDesc& q,
                      const TensorDesc& k, const TensorDesc& v, const AttentionOptions& opt);
void attentionBackward(const TensorDesc& dq, const TensorDesc& dk, const TensorDesc& dv,
                       const TensorDesc& dOut, const TensorDesc& q, const TensorDesc& k,
                       const TensorDesc& v, const TensorDesc& out, const TensorDesc& lse,
                       const AttentionOptions& opt);
// One decoding step over a KV cache for S sequences with one new token each. q [S,H,D],
// kNew/vNew [S,Hkv,D]; caches [slots,maxLen,Hkv,D]; meta i32 [2,S]: cache slot, then position,
// of each row. Rotates q and kNew by RoPE at the row's position (as rope()), writes kNew/vNew to
// the cache at (slot, position), then out[s] = softmax(scale q k^T) v over that slot's keys
// 0..position. q, kNew and vNew are not modified.
void decodeAttention(const TensorDesc& out, const TensorDesc& q, const TensorDesc& kNew,
                     const TensorDesc& vNew, const TensorDesc& kCache, const TensorDesc& vCache,
                     const TensorDesc& meta, float ropeBase, float scale);
void swigluForward(const TensorDesc& out, const TensorDesc& gate, const TensorDesc& up);
void swigluBackward(const TensorDesc& dGate, const TensorDesc& dUp, const TensorDesc& dOut,
                    const TensorDesc& gate, const TensorDesc& up);
void crossEntropy(const TensorDesc& losses, const TensorDesc& logits, const TensorDesc& targets,
                  float dlossScale, bool computeGrad);
// out[n] (i32) = index of the first maximum of logits row n, NaN counting as the maximum:
// torch.argmax(logits, dim=-1). Greedy tokens and the harness's is_greedy without copying rows.
void argmax(const TensorDesc& out, const TensorDesc& logits);
void adamw(const TensorDesc& param, const TensorDesc* master, const TensorDesc& grad,
           const TensorDesc& m, const TensorDesc& v, const AdamWOptions& opt);
double sumSquares(const std::vector<TensorDesc>& tensors);
double sum(const TensorDesc& t);
void cast(const TensorDesc& out, const TensorDesc& x);
void fill(const TensorDesc& t, double value);
void copy(const TensorDesc& dst, const TensorDesc& src);
void scale(const TensorDesc& t, float s);

}  // namespace backend
}  // namespace tk
