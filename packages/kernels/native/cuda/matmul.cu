// Matmul through cuBLASLt. Row-major out[M,N] = op(a)[M,K] @ op(b)[K,N] is computed as the
// column-major product out^T = op(b)^T op(a)^T, so b is cuBLASLt's first operand. Compute
// type CUBLAS_COMPUTE_32F (fp32 accumulation; plain fp32, no TF32, for f32 inputs), alpha
// and beta in f32, beta = 1 to accumulate into out (weight gradients). Descriptors and the
// heuristic's algorithm are cached per (shape, transposes, dtypes, alignment); a 32 MiB
// workspace is allocated once.
#include <cublasLt.h>

#include <map>
#include <tuple>

#include "common.cuh"

namespace tk::cuda {
namespace {

#define TK_CUBLAS(call)                                                                    \
  do {                                                                                     \
    cublasStatus_t st_ = (call);                                                           \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                      \
      throw ::tk::Error(std::string(#call) + " failed with cuBLAS status " +               \
                        std::to_string(static_cast<int>(st_)));                            \
  } while (0)

constexpr size_t kWorkspace = 32u << 20;

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, int, int, int, int, int>;

struct Lt {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::map<Key, Plan> plans;
};

Lt& lt() {
  static Lt s;
  if (!s.handle) {
    TK_CUBLAS(cublasLtCreate(&s.handle));
    TK_CUDA(cudaMalloc(&s.workspace, kWorkspace));
  }
  return s;
}

cudaDataType_t cudaType(DType d) { return d == DType::F32 ? CUDA_R_32F : CUDA_R_16BF; }

int alignmentOf(const void* p) {
  auto v = reinterpret_cast<uintptr_t>(p);
  int a = 256;
  while (a > 1 && (v % a) != 0) a >>= 1;
  return a;
}

Plan& planFor(const TensorDesc& out, const TensorDesc& A, const TensorDesc& B, int64_t M,
              int64_t N, int64_t K, bool transA, bool transB) {
  int alA = alignmentOf(A.data), alB = alignmentOf(B.data), alC = alignmentOf(out.data);
  Key key{M, N, K, transA, transB, static_cast<int>(A.dtype), static_cast<int>(out.dtype), alA, alB, alC};
  auto& s = lt();
  auto it = s.plans.find(key);
  if (it != s.plans.end()) return it->second;
  Plan p;
  TK_CUBLAS(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t opFirst = transB ? CUBLAS_OP_T : CUBLAS_OP_N;   // b's buffer
  cublasOperation_t opSecond = transA ? CUBLAS_OP_T : CUBLAS_OP_N;  // a's buffer
  TK_CUBLAS(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opFirst, sizeof(opFirst)));
  TK_CUBLAS(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opSecond, sizeof(opSecond)));
  cudaDataType_t in = cudaType(A.dtype), outT = cudaType(out.dtype);
  // Stored (pre-op) column-major shapes: b is [K,N] row-major = N x K col-major (ld N),
  // or [N,K] row-major = K x N col-major (ld K) when transposed; likewise for a.
  uint64_t aRows = transB ? K : N, aCols = transB ? N : K;
  uint64_t bRows = transA ? M : K, bCols = transA ? K : M;
  TK_CUBLAS(cublasLtMatrixLayoutCreate(&p.a, in, aRows, aCols, static_cast<int64_t>(aRows)));
  TK_CUBLAS(cublasLtMatrixLayoutCreate(&p.b, in, bRows, bCols, static_cast<int64_t>(bRows)));
  TK_CUBLAS(cublasLtMatrixLayoutCreate(&p.c, outT, N, M, N));
  cublasLtMatmulPreference_t pref;
  TK_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws = kWorkspace;
  uint32_t a1 = alB, a2 = alA, a3 = alC;  // first operand is b's buffer
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a1, sizeof(a1));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &a2, sizeof(a2));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &a3, sizeof(a3));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &a3, sizeof(a3));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(s.handle, p.desc, p.a, p.b, p.c, p.c, pref, 1,
                                                     &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0)
    throw Error("cuBLASLt has no algorithm for this matmul (M=" + std::to_string(M) + " N=" +
                std::to_string(N) + " K=" + std::to_string(K) + ", " + dtypeName(A.dtype) + " -> " +
                dtypeName(out.dtype) + ", status " + std::to_string(static_cast<int>(st)) + ")");
  p.algo = result.algo;
  return s.plans.emplace(key, p).first->second;
}

}  // namespace
}  // namespace tk::cuda

namespace tk::backend {
using namespace tk::cuda;

void matmul(const TensorDesc& out, const TensorDesc& a, const TensorDesc& b, int64_t M, int64_t N,
            int64_t K, const MatmulOptions& o) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!o.accumulate) TK_CUDA(cudaMemsetAsync(out.data, 0, out.bytes(), stream()));
    return;
  }
  Plan& p = planFor(out, a, b, M, N, K, o.transA, o.transB);
  float alpha = o.alpha, beta = o.accumulate ? 1.0f : 0.0f;
  TK_CUBLAS(cublasLtMatmul(lt().handle, p.desc, &alpha, b.data, p.a, a.data, p.b, &beta, out.data,
                           p.c, out.data, p.c, &p.algo, lt().workspace, kWorkspace, stream()));
}

}  // namespace tk::backend
