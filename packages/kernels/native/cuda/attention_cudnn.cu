// Attention through cuDNN's fused flash attention: the default bf16 forward and backward where
// this file is built (attention.cu chooses when). Design: the cuDNN backend API (no
// cudnn-frontend: it is not an npm package, and nothing is downloaded at build time) describes
// each direction as the operation graph cuDNN's fused-attention engines recognise. Forward:
// S = Q K^T (fp32), S * scale, the causal mask (row index >= column index, else -inf), the
// softmax with its statistics (row max, exp, row sum, stats = max + log(sum): the natural
// log-sum-exp of the scaled scores, exactly our lse), P in bf16, O = P V. Q/O are read in place
// as [B, T, H, D] and K/V as [B, T, Hkv, D] through strides; GQA needs no K/V copies (the matmul
// broadcasts the Hkv heads over H). One execution plan per shape is built on first use and
// cached; each call builds a variant pack (pointers) and executes on the backend's stream. The
// backward graph below recomputes P from the forward's statistics; it is the default backward in
// its deterministic form (dQ written directly: cuDNN keeps dP, B H T^2 bf16, in its workspace
// and uses no atomics), and its other form (dQ accumulated in fp32 with atomics, not bitwise
// repeatable) is opt-in, TINYLLAMA_ATTENTION_BWD=cudnn. Every cuDNN status is checked and thrown
// with the step and cuDNN's own message, so an unsupported graph or library says so instead of
// crashing.
#include <cudnn.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common.cuh"

namespace tk::cuda {
namespace {

void check(cudnnStatus_t st, const std::string& what) {
  if (st == CUDNN_STATUS_SUCCESS) return;
  char detail[1024] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  throw Error("cuDNN attention: " + what + ": " + cudnnGetErrorString(st) +
              (detail[0] ? std::string(" (") + detail + ")" : ""));
}

// One backend descriptor, destroyed with its owner.
struct Desc {
  cudnnBackendDescriptor_t d = nullptr;
  Desc(cudnnBackendDescriptorType_t type, const std::string& what) {
    check(cudnnBackendCreateDescriptor(type, &d), "create " + what);
  }
  ~Desc() {
    if (d) cudnnBackendDestroyDescriptor(d);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
};
using DescPtr = std::shared_ptr<Desc>;

void set(const DescPtr& x, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
         const void* value, const std::string& what) {
  check(cudnnBackendSetAttribute(x->d, name, type, count, value), "set " + what);
}
void setDesc(const DescPtr& x, cudnnBackendAttributeName_t name, const DescPtr& v, const std::string& what) {
  set(x, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v->d, what);
}
void finalize(const DescPtr& x, const std::string& what) { check(cudnnBackendFinalize(x->d), "finalize " + what); }

// Unique ids of the graph's real (non-virtual) tensors, as the variant pack names them.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kScale, kNegInf, kDO, kDQ, kDK, kDV, kOne, kRowDot, kDqAccum };

// Builds one direction's graph for one shape; keeps every descriptor it made alive with the plan.
class GraphBuilder {
 public:
  explicit GraphBuilder(cudnnHandle_t h) : handle_(h) {}

  DescPtr tensor(int64_t uid, cudnnDataType_t type, std::vector<int64_t> dims, std::vector<int64_t> strides,
                 bool isVirtual, bool byValue = false) {
    auto t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
    int64_t alignment = 16;
    std::string w = "tensor " + std::to_string(uid);
    set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, w + " id");
    set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, w + " type");
    set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, static_cast<int64_t>(dims.size()), dims.data(), w + " dims");
    set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, static_cast<int64_t>(strides.size()), strides.data(),
        w + " strides");
    set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment, w + " alignment");
    set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &isVirtual, w + " virtual");
    if (byValue) set(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &byValue, w + " by value");
    finalize(t, w);
    return t;
  }
  // A virtual tensor with the next free id.
  DescPtr temp(cudnnDataType_t type, std::vector<int64_t> dims, std::vector<int64_t> strides) {
    return tensor(nextVirtual_++, type, std::move(dims), std::move(strides), true);
  }

  void matmul(const DescPtr& a, const DescPtr& b, const DescPtr& c, const std::string& what) {
    auto mm = make(CUDNN_BACKEND_MATMUL_DESCRIPTOR, what);
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    set(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, what + " compute type");
    finalize(mm, what);
    auto op = make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, what + " op");
    setDesc(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, what + " A");
    setDesc(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, what + " B");
    setDesc(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, what + " C");
    setDesc(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, mm, what + " desc");
    finalize(op, what + " op");
    ops_.push_back(op);
  }

  // y = mode(x[, b][, t]); axis >= 0 for GEN_INDEX.
  void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t precision, const DescPtr& x, const DescPtr& b,
                 const DescPtr& y, const std::string& what, const DescPtr& t = nullptr, int64_t axis = -1) {
    auto pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, what);
    set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, what + " mode");
    set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &precision, what + " precision");
    if (axis >= 0) set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, what + " axis");
    finalize(pw, what);
    auto op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, what + " op");
    setDesc(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, what + " desc");
    setDesc(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, what + " x");
    if (b) setDesc(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, what + " b");
    if (t) setDesc(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, what + " t");
    setDesc(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, what + " y");
    finalize(op, what + " op");
    ops_.push_back(op);
  }

  // pointwise into a new virtual tensor of `type` with these dims and strides, which it returns
  DescPtr pointwiseTemp(cudnnPointwiseMode_t mode, cudnnDataType_t type, const DescPtr& x, const DescPtr& b,
                        std::vector<int64_t> dims, std::vector<int64_t> strides, const std::string& what,
                        cudnnDataType_t precision = CUDNN_DATA_FLOAT) {
    auto y = temp(type, std::move(dims), std::move(strides));
    pointwise(mode, precision, x, b, y, what);
    return y;
  }

  // y = x viewed with y's dims and strides (a transpose: same elements).
  void reshape(const DescPtr& x, const DescPtr& y, const std::string& what) {
    auto op = make(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, what);
    setDesc(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x, what + " x");
    setDesc(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y, what + " y");
    finalize(op, what);
    ops_.push_back(op);
  }

  void reduction(cudnnReduceTensorOp_t mode, const DescPtr& x, const DescPtr& y, const std::string& what) {
    auto red = make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, what);
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    set(red, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, what + " operator");
    set(red, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, what + " compute type");
    finalize(red, what);
    auto op = make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, what + " op");
    setDesc(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, what + " x");
    setDesc(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, what + " y");
    setDesc(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, red, what + " desc");
    finalize(op, what + " op");
    ops_.push_back(op);
  }

  // The operation graph, then the first engine configuration from the heuristics whose plan
  // finalises. Returns the plan (and keeps the graph's descriptors in `keep`).
  DescPtr plan(std::vector<DescPtr>& keep, int64_t& workspace) {
    auto graph = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    std::vector<cudnnBackendDescriptor_t> raw;
    for (auto& op : ops_) raw.push_back(op->d);
    set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, static_cast<int64_t>(raw.size()),
        raw.data(), "graph ops");
    set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_, "graph handle");
    finalize(graph, "operation graph (cuDNN does not accept this attention graph)");
    std::string tried;
    for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_B}) {
      auto heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
      setDesc(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph, "heuristics graph");
      set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics mode");
      finalize(heur, "heuristics");
      int64_t available = 0;
      check(cudnnBackendGetAttribute(heur->d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                     &available, nullptr),
            "heuristics result count");
      std::vector<DescPtr> cfgs;
      std::vector<cudnnBackendDescriptor_t> rawCfgs;
      for (int64_t i = 0; i < available; ++i) {
        cfgs.push_back(make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config"));
        rawCfgs.push_back(cfgs.back()->d);
      }
      int64_t got = 0;
      if (available > 0)
        check(cudnnBackendGetAttribute(heur->d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                       available, &got, rawCfgs.data()),
              "heuristics results");
      tried += (tried.empty() ? "" : ", ") + std::to_string(got) + " configs from heuristics mode " +
               std::to_string(static_cast<int>(mode));
      for (int64_t i = 0; i < got; ++i) {
        auto p = make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "execution plan");
        set(p, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_, "plan handle");
        setDesc(p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfgs[i], "plan engine config");
        if (cudnnBackendFinalize(p->d) != CUDNN_STATUS_SUCCESS) continue;
        int64_t count = 0;
        check(cudnnBackendGetAttribute(p->d, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &count,
                                       &workspace),
              "plan workspace size");
        keep = kept_;  // everything made for this graph, the plan included
        return p;
      }
    }
    throw Error("cuDNN attention: no engine can run the attention graph (" + tried +
                "); TINYLLAMA_ATTENTION=mma runs our own kernels in both directions");
  }

 private:
  DescPtr make(cudnnBackendDescriptorType_t type, const std::string& what) {
    auto d = std::make_shared<Desc>(type, what);
    kept_.push_back(d);
    return d;
  }
  cudnnHandle_t handle_;
  std::vector<DescPtr> ops_, kept_;
  int64_t nextVirtual_ = 100;
};

struct Plan {
  std::vector<DescPtr> keep;
  DescPtr plan;
  int64_t workspace = 0;
};

cudnnHandle_t handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t created = nullptr;
    check(cudnnCreate(&created), "cudnnCreate (is libcudnn 9 installed and a GPU present?)");
    return created;
  }();
  return h;
}

// x where the query (row) sees the key (column), -inf elsewhere.
DescPtr causalMask(GraphBuilder& g, const DescPtr& x, const std::vector<int64_t>& dims,
                   const std::vector<int64_t>& strides) {
  auto negInf = g.tensor(kNegInf, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  auto row = g.temp(CUDNN_DATA_INT32, dims, strides);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, x, nullptr, row, "row index", nullptr, 2);
  auto col = g.temp(CUDNN_DATA_INT32, dims, strides);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, x, nullptr, col, "column index", nullptr, 3);
  auto keep = g.pointwiseTemp(CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, dims, strides, "row >= column",
                              CUDNN_DATA_BOOLEAN);
  auto masked = g.temp(CUDNN_DATA_FLOAT, dims, strides);
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, x, negInf, masked, "causal mask", keep);
  return masked;
}

// The forward graph for [B, T, H, D] queries over [B, T, Hkv, D] keys/values.
std::unique_ptr<Plan> buildForward(int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t D, bool causal) {
  GraphBuilder g(handle());
  const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  auto q = g.tensor(kQ, bf, {B, H, T, D}, {T * H * D, D, H * D, 1}, false);
  auto kT = g.tensor(kK, bf, {B, Hkv, D, T}, {T * Hkv * D, D, 1, Hkv * D}, false);  // K^T, read in place
  auto v = g.tensor(kV, bf, {B, Hkv, T, D}, {T * Hkv * D, D, Hkv * D, 1}, false);
  auto o = g.tensor(kO, bf, {B, H, T, D}, {T * H * D, D, H * D, 1}, false);
  auto stats = g.tensor(kStats, f32, {B, H, T, 1}, {H * T, T, 1, 1}, false);
  auto scale = g.tensor(kScale, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  const std::vector<int64_t> sDims{B, H, T, T}, sStrides{H * T * T, T * T, T, 1};
  const std::vector<int64_t> rDims{B, H, T, 1}, rStrides{H * T, T, 1, 1};

  auto s = g.temp(f32, sDims, sStrides);
  g.matmul(q, kT, s, "S = Q K^T");
  auto scaled = g.pointwiseTemp(CUDNN_POINTWISE_MUL, f32, s, scale, sDims, sStrides, "S * scale");
  auto masked = causal ? causalMask(g, scaled, sDims, sStrides) : scaled;
  auto rowMax = g.temp(f32, rDims, rStrides);
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, masked, rowMax, "row max");
  auto shifted = g.pointwiseTemp(CUDNN_POINTWISE_SUB, f32, masked, rowMax, sDims, sStrides, "S - max");
  auto e = g.pointwiseTemp(CUDNN_POINTWISE_EXP, f32, shifted, nullptr, sDims, sStrides, "exp");
  auto rowSum = g.temp(f32, rDims, rStrides);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, rowSum, "row sum");
  auto logSum = g.pointwiseTemp(CUDNN_POINTWISE_LOG, f32, rowSum, nullptr, rDims, rStrides, "log sum");
  g.pointwise(CUDNN_POINTWISE_ADD, f32, rowMax, logSum, stats, "stats = max + log sum");
  auto p = g.pointwiseTemp(CUDNN_POINTWISE_DIV, bf, e, rowSum, sDims, sStrides, "P = exp / sum");
  g.matmul(p, v, o, "O = P V");

  auto plan = std::make_unique<Plan>();
  plan->plan = g.plan(plan->keep, plan->workspace);
  return plan;
}

// y = a b for a key/value gradient: with GQA formed per query head ([B, H, T, D], bf16) and summed
// over each group of H / Hkv heads into y; without, straight into y.
void matmulGrouped(GraphBuilder& g, const DescPtr& a, const DescPtr& b, const DescPtr& y, bool grouped,
                   const std::vector<int64_t>& fullDims, const std::vector<int64_t>& fullStrides,
                   const std::string& what) {
  if (!grouped) {
    g.matmul(a, b, y, what);
    return;
  }
  auto full = g.temp(CUDNN_DATA_BFLOAT16, fullDims, fullStrides);
  g.matmul(a, b, full, what + " per query head");
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, full, y, what + " summed over the group");
}

// The backward graph (cuDNN's SDPA backward pattern): rowDot = rowsum(dO * O) into the
// workspace, P recomputed from the stats (exp(S * scale - stats), causal), dV = P^T dO,
// dS = P (dO V^T - rowDot) scale, dK = dS^T Q, dQ = dS K; with GQA, dK and dV are formed per
// query head and summed over each group. dQ either goes through an fp32 accumulator in the
// workspace (cuDNN adds into it with atomics: fast, not bitwise repeatable) or, with
// `dpWorkspace`, straight into dQ, which has cuDNN keep dP in its own workspace (B H T^2 bf16)
// and form dQ without atomics (its deterministic algorithm on Hopper).
std::unique_ptr<Plan> buildBackward(int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t D, bool causal,
                                    bool dpWorkspace) {
  GraphBuilder g(handle());
  const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  const std::vector<int64_t> qDims{B, H, T, D}, qStrides{T * H * D, D, H * D, 1};
  const std::vector<int64_t> kvDims{B, Hkv, T, D}, kvStrides{T * Hkv * D, D, Hkv * D, 1};
  const std::vector<int64_t> kvTDims{B, Hkv, D, T}, kvTStrides{T * Hkv * D, D, 1, Hkv * D};
  const std::vector<int64_t> sDims{B, H, T, T}, sStrides{H * T * T, T * T, T, 1}, sTStrides{H * T * T, T * T, 1, T};
  const std::vector<int64_t> rDims{B, H, T, 1}, rStrides{H * T, T, 1, 1};
  const std::vector<int64_t> fullStrides{H * T * D, T * D, D, 1};  // [B, H, T, D] packed by head
  auto q = g.tensor(kQ, bf, qDims, qStrides, false);
  auto kT = g.tensor(kK, bf, kvTDims, kvTStrides, false);
  auto vT = g.tensor(kV, bf, kvTDims, kvTStrides, false);
  auto o = g.tensor(kO, bf, qDims, qStrides, false);
  auto dO = g.tensor(kDO, bf, qDims, qStrides, false);
  auto stats = g.tensor(kStats, f32, rDims, rStrides, false);
  auto dQ = g.tensor(kDQ, bf, qDims, qStrides, false);
  auto dK = g.tensor(kDK, bf, kvDims, kvStrides, false);
  auto dV = g.tensor(kDV, bf, kvDims, kvStrides, false);
  auto scale = g.tensor(kScale, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  auto one = g.tensor(kOne, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  auto rowDot = g.tensor(kRowDot, f32, rDims, rStrides, false);        // in the workspace

  auto dOO = g.pointwiseTemp(CUDNN_POINTWISE_MUL, f32, dO, o, qDims, {H * T * D, T * D, H * D, 1}, "dO * O");
  auto dotSum = g.temp(f32, rDims, rStrides);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, dOO, dotSum, "rowsum(dO * O)");
  g.pointwise(CUDNN_POINTWISE_MUL, f32, dotSum, one, rowDot, "rowDot");

  auto s = g.temp(f32, sDims, sStrides);
  g.matmul(q, kT, s, "S = Q K^T");
  auto scaled = g.pointwiseTemp(CUDNN_POINTWISE_MUL, f32, s, scale, sDims, sStrides, "S * scale");
  auto shifted = g.pointwiseTemp(CUDNN_POINTWISE_SUB, f32, scaled, stats, sDims, sStrides, "S - stats");
  auto masked = causal ? causalMask(g, shifted, sDims, sStrides) : shifted;
  auto p = g.pointwiseTemp(CUDNN_POINTWISE_EXP, f32, masked, nullptr, sDims, sStrides, "P = exp");

  auto pT = g.temp(bf, sDims, sTStrides);
  g.reshape(p, pT, "P^T");
  matmulGrouped(g, pT, dO, dV, H != Hkv, qDims, fullStrides, "dV = P^T dO");

  auto dP = g.temp(f32, sDims, sStrides);
  g.matmul(dO, vT, dP, "dP = dO V^T");
  auto dPc = g.pointwiseTemp(CUDNN_POINTWISE_SUB, f32, dP, rowDot, sDims, sStrides, "dP - rowDot");
  auto dSu = g.pointwiseTemp(CUDNN_POINTWISE_MUL, f32, dPc, p, sDims, sStrides, "* P");
  auto dS = g.pointwiseTemp(CUDNN_POINTWISE_MUL, f32, dSu, scale, sDims, sStrides, "dS = * scale");

  auto dST = g.temp(bf, sDims, sTStrides);
  g.reshape(dS, dST, "dS^T");
  matmulGrouped(g, dST, q, dK, H != Hkv, qDims, fullStrides, "dK = dS^T Q");

  auto k = g.temp(bf, kvDims, kvStrides);
  g.reshape(kT, k, "K");
  if (dpWorkspace) {
    g.matmul(dS, k, dQ, "dQ = dS K");
  } else {
    auto dqAccum = g.tensor(kDqAccum, f32, qDims, fullStrides, false);  // in the workspace
    g.matmul(dS, k, dqAccum, "dQ = dS K");
    g.pointwise(CUDNN_POINTWISE_IDENTITY, f32, dqAccum, nullptr, dQ, "dQ to bf16");
  }

  auto plan = std::make_unique<Plan>();
  plan->plan = g.plan(plan->keep, plan->workspace);
  return plan;
}

void execute(const Plan& plan, const std::vector<int64_t>& uids, const std::vector<void*>& ptrs, void* workspace,
             const std::string& what) {
  auto pack = std::make_shared<Desc>(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "variant pack");
  set(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, static_cast<int64_t>(uids.size()), uids.data(),
      "variant pack ids");
  set(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, static_cast<int64_t>(ptrs.size()),
      ptrs.data(), "variant pack pointers");
  set(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace, "variant pack workspace");
  finalize(pack, "variant pack");
  check(cudnnBackendExecute(handle(), plan.plan->d, pack->d), "execute " + what);
}

using PlanKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, bool>;

// The plan cached under `key`, built on first use; past 64 shapes the cache starts over (plans
// are rebuilt on use), so arbitrary shapes cannot grow it without bound.
template <typename Key, typename Build>
const Plan& cachedPlan(std::map<Key, std::unique_ptr<Plan>>& plans, const Key& key, Build&& build) {
  auto it = plans.find(key);
  if (it == plans.end()) {
    if (plans.size() >= 64) plans.clear();
    it = plans.emplace(key, build()).first;
  }
  return *it->second;
}

}  // namespace

void cudnnAttentionForward(const TensorDesc& out, const TensorDesc& lse, const TensorDesc& q, const TensorDesc& k,
                           const TensorDesc& v, const AttentionOptions& o) {
  int64_t B = q.shape[0], T = q.shape[1], H = q.shape[2], D = q.shape[3], Hkv = k.shape[2];
  float scale = o.scale;  // resolved by the binding (0 -> 1/sqrt(D)), as for the other kernels
  static std::map<PlanKey, std::unique_ptr<Plan>> plans;
  const Plan& plan = cachedPlan(plans, PlanKey{B, T, H, Hkv, D, o.causal},
                                [&] { return buildForward(B, T, H, Hkv, D, o.causal); });

  check(cudnnSetStream(handle(), stream()), "cudnnSetStream");
  float negInf = -INFINITY;
  void* workspace = plan.workspace > 0 ? scratch(static_cast<size_t>(plan.workspace)) : nullptr;
  std::vector<int64_t> uids{kQ, kK, kV, kO, kStats, kScale};
  std::vector<void*> ptrs{q.data, k.data, v.data, out.data, lse.data, &scale};
  if (o.causal) {
    uids.push_back(kNegInf);
    ptrs.push_back(&negInf);
  }
  execute(plan, uids, ptrs, workspace, "forward");
}

void cudnnAttentionBackward(const TensorDesc& dq, const TensorDesc& dk, const TensorDesc& dv, const TensorDesc& dOut,
                            const TensorDesc& q, const TensorDesc& k, const TensorDesc& v, const TensorDesc& out,
                            const TensorDesc& lse, const AttentionOptions& o, bool dpWorkspace) {
  int64_t B = q.shape[0], T = q.shape[1], H = q.shape[2], D = q.shape[3], Hkv = k.shape[2];
  float scale = o.scale;  // resolved by the binding
  static std::map<std::pair<PlanKey, bool>, std::unique_ptr<Plan>> plans;
  const Plan& plan = cachedPlan(plans, std::pair<PlanKey, bool>{{B, T, H, Hkv, D, o.causal}, dpWorkspace},
                                [&] { return buildBackward(B, T, H, Hkv, D, o.causal, dpWorkspace); });

  // One scratch region: the row dots, the fp32 dQ accumulator where there is one (zeroed: cuDNN
  // adds into it), then the plan's own workspace, each 256-byte aligned.
  auto align = [](size_t n) { return (n + 255) / 256 * 256; };
  size_t dotBytes = align(static_cast<size_t>(B * H * T) * 4);
  size_t accBytes = dpWorkspace ? 0 : align(static_cast<size_t>(B * H * T * D) * 4);
  auto* base = static_cast<char*>(scratch(dotBytes + accBytes + static_cast<size_t>(plan.workspace)));
  if (accBytes > 0) TK_CUDA(cudaMemsetAsync(base + dotBytes, 0, accBytes, stream()));
  check(cudnnSetStream(handle(), stream()), "cudnnSetStream");
  float negInf = -INFINITY, one = 1.0f;
  std::vector<int64_t> uids{kQ, kK, kV, kO, kDO, kStats, kDQ, kDK, kDV, kScale, kOne, kRowDot};
  std::vector<void*> ptrs{q.data, k.data, v.data, out.data, dOut.data, lse.data, dq.data, dk.data, dv.data,
                          &scale, &one, base};
  if (accBytes > 0) {
    uids.push_back(kDqAccum);
    ptrs.push_back(base + dotBytes);
  }
  if (o.causal) {
    uids.push_back(kNegInf);
    ptrs.push_back(&negInf);
  }
  execute(plan, uids, ptrs, plan.workspace > 0 ? base + dotBytes + accBytes : nullptr, "backward");
}

}  // namespace tk::cuda
