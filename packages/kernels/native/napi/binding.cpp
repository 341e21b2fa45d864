// The Node-API surface of one backend addon. Every export reads its arguments through Args
// (napi/args.h), checks dtypes, shapes and memory overlap, then calls the backend. The same
// file is compiled into the CPU addon and the CUDA addon, so both reject the same bad calls
// with the same messages and compute the same functions.
#include <napi.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "args.h"
#include "tensor_handle.h"

namespace tk {

namespace {

constexpr int64_t kMaxInt = int64_t{1} << 40;

// Runs a backend call, turning C++ exceptions into JavaScript errors.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, const char* op, F&& f) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string(op) + ": " + e.what());
  }
}

bool initialized = false;

Napi::Value Init(const Napi::CallbackInfo& info) {
  return guarded(info, "init", [&]() -> Napi::Value {
    backend::init();
    initialized = true;
    DeviceInfo d = backend::deviceInfo();
    auto o = Napi::Object::New(info.Env());
    o.Set("backend", d.backend);
    o.Set("name", d.name);
    o.Set("computeCapability", std::to_string(d.computeMajor) + "." + std::to_string(d.computeMinor));
    o.Set("totalMemory", static_cast<double>(d.totalMemory));
    o.Set("threads", d.threads);
    o.Set("detail", d.detail);
    return o;
  });
}

void requireInit(const Napi::CallbackInfo& info, const char* op) {
  if (!initialized) typeError(info.Env(), std::string(op) + ": backend not initialised; call init() first");
}

Napi::Value Empty(const Napi::CallbackInfo& info) {
  requireInit(info, "empty");
  Args a(info, "empty", 2);
  int ndim;
  int64_t shape[kMaxDims], numel;
  std::string err;
  if (!readShape(info[0], &ndim, shape, &numel, &err)) a.fail(err);
  DType dt;
  if (!parseDTypeValue(info[1], &dt)) a.fail("dtype must be one of f32, bf16, i32, u16");
  return guarded(info, "empty", [&]() -> Napi::Value {
    auto storage = std::make_shared<Storage>(static_cast<size_t>(numel) * dtypeSize(dt));
    auto* data = info.Env().GetInstanceData<AddonData>();
    return TensorHandle::Create(info.Env(), data->tensorCtor, storage, 0, dt, ndim, shape);
  });
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  auto& c = counters();
  auto o = Napi::Object::New(info.Env());
  o.Set("liveTensors", static_cast<double>(c.liveTensors.load()));
  o.Set("liveBytes", static_cast<double>(c.liveBytes.load()));
  o.Set("peakBytes", static_cast<double>(c.peakBytes.load()));
  o.Set("allocations", static_cast<double>(c.allocations.load()));
  return o;
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  requireInit(info, "synchronize");
  return guarded(info, "synchronize", [&]() -> Napi::Value {
    backend::synchronize();
    return info.Env().Undefined();
  });
}

const std::initializer_list<DType> kFloat = {DType::F32, DType::BF16};

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingForward", 3);
  auto out = a.tensor(0, "out"), table = a.tensor(1, "table"), ids = a.tensor(2, "ids");
  a.dtypeIn(table, "table", kFloat);
  a.sameDtype(out, "out", table, "table");
  a.ndimIs(table, "table", 2);
  a.dtypeIn(ids, "ids", {DType::I32});
  int64_t C = table.shape[1];
  if (out.lastDim() != C || out.numel != ids.numel * C)
    a.fail("out " + shapeString(out) + " must be [N, C] with N = ids.numel (" +
           std::to_string(ids.numel) + ") and C = " + std::to_string(C));
  a.noOverlap(out, "out", table, "table");
  a.noOverlap(out, "out", ids, "ids");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::embeddingForward(out, table, ids);
    return info.Env().Undefined();
  });
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingBackward", 3);
  auto dTable = a.tensor(0, "dTable"), dOut = a.tensor(1, "dOut"), ids = a.tensor(2, "ids");
  a.dtypeIn(dTable, "dTable", {DType::F32});
  a.ndimIs(dTable, "dTable", 2);
  a.dtypeIn(dOut, "dOut", kFloat);
  a.dtypeIn(ids, "ids", {DType::I32});
  int64_t C = dTable.shape[1];
  if (dOut.lastDim() != C || dOut.numel != ids.numel * C)
    a.fail("dOut " + shapeString(dOut) + " must be [N, C] with N = ids.numel and C = " +
           std::to_string(C));
  a.noOverlap(dTable, "dTable", dOut, "dOut");
  // The kernels validate ids before writing dTable; writes into ids would change them after.
  a.noOverlap(dTable, "dTable", ids, "ids");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::embeddingBackward(dTable, dOut, ids);
    return info.Env().Undefined();
  });
}

void checkNorm(const Args& a, const TensorDesc& x, const TensorDesc& weight, const TensorDesc& rstd) {
  a.dtypeIn(x, "x", kFloat);
  a.sameDtype(weight, "weight", x, "x");
  if (weight.ndim != 1 || weight.shape[0] != x.lastDim())
    a.fail("weight " + shapeString(weight) + " must be [C] with C = " + std::to_string(x.lastDim()));
  a.dtypeIn(rstd, "rstd", {DType::F32});
  if (rstd.numel != x.rows())
    a.fail("rstd must have N = " + std::to_string(x.rows()) + " elements, got " +
           std::to_string(rstd.numel));
}

// eps is used as a float: read through float32() (1e300 was accepted and became inf, giving
// rstd = 0 and an all-zero output) and checked after rounding (1e-50 rounds to 0).
float readEps(const Args& a, size_t i) {
  float eps = a.float32(i, "eps");
  if (!(eps > 0)) a.failRange("eps must be > 0 (and not round to 0 in float32)");
  return eps;
}

Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormForward", 5);
  auto out = a.tensor(0, "out"), rstd = a.tensor(1, "rstd"), x = a.tensor(2, "x"),
       weight = a.tensor(3, "weight");
  float eps = readEps(a, 4);
  checkNorm(a, x, weight, rstd);
  a.sameShape(out, "out", x, "x");
  a.sameDtype(out, "out", x, "x");
  a.exactOrNoOverlap(out, "out", x, "x");
  a.noOverlap(out, "out", weight, "weight");
  a.noOverlap(rstd, "rstd", x, "x");
  a.noOverlap(rstd, "rstd", out, "out");
  a.noOverlap(rstd, "rstd", weight, "weight");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::rmsnormForward(out, rstd, x, weight, eps);
    return info.Env().Undefined();
  });
}

Napi::Value ResidualRmsnormForward(const Napi::CallbackInfo& info) {
  Args a(info, "residualRmsnormForward", 7);
  auto residualOut = a.tensor(0, "residualOut"), out = a.tensor(1, "out"),
       rstd = a.tensor(2, "rstd"), x = a.tensor(3, "x"), residual = a.tensor(4, "residual"),
       weight = a.tensor(5, "weight");
  float eps = readEps(a, 6);
  checkNorm(a, x, weight, rstd);
  for (auto [t, n] : {std::pair{residualOut, "residualOut"}, {out, "out"}, {residual, "residual"}}) {
    a.sameShape(t, n, x, "x");
    a.sameDtype(t, n, x, "x");
  }
  a.exactOrNoOverlap(residualOut, "residualOut", x, "x");
  a.exactOrNoOverlap(residualOut, "residualOut", residual, "residual");
  a.noOverlap(out, "out", residualOut, "residualOut");
  a.exactOrNoOverlap(out, "out", x, "x");
  a.exactOrNoOverlap(out, "out", residual, "residual");
  a.noOverlap(rstd, "rstd", out, "out");
  a.noOverlap(rstd, "rstd", residualOut, "residualOut");
  // weight is read by every row and rstd is written per row: neither may share memory with
  // another row's input or output.
  a.noOverlap(residualOut, "residualOut", weight, "weight");
  a.noOverlap(out, "out", weight, "weight");
  a.noOverlap(rstd, "rstd", x, "x");
  a.noOverlap(rstd, "rstd", residual, "residual");
  a.noOverlap(rstd, "rstd", weight, "weight");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::residualRmsnormForward(residualOut, out, rstd, x, residual, weight, eps);
    return info.Env().Undefined();
  });
}

Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormBackward", 6);
  auto dx = a.tensor(0, "dx"), dWeight = a.tensor(1, "dWeight"), dOut = a.tensor(2, "dOut"),
       x = a.tensor(3, "x"), weight = a.tensor(4, "weight"), rstd = a.tensor(5, "rstd");
  checkNorm(a, x, weight, rstd);
  a.dtypeIn(dx, "dx", kFloat);
  a.dtypeIn(dOut, "dOut", kFloat);
  a.sameShape(dx, "dx", x, "x");
  a.sameShape(dOut, "dOut", x, "x");
  a.dtypeIn(dWeight, "dWeight", {DType::F32});
  a.sameShape(dWeight, "dWeight", weight, "weight");
  a.noOverlap(dx, "dx", dOut, "dOut");
  a.noOverlap(dx, "dx", x, "x");
  a.noOverlap(dx, "dx", weight, "weight");
  a.noOverlap(dx, "dx", rstd, "rstd");
  // dWeight sums over all rows: it may share memory with nothing the rows read.
  a.noOverlap(dWeight, "dWeight", dx, "dx");
  a.noOverlap(dWeight, "dWeight", dOut, "dOut");
  a.noOverlap(dWeight, "dWeight", x, "x");
  a.noOverlap(dWeight, "dWeight", weight, "weight");
  a.noOverlap(dWeight, "dWeight", rstd, "rstd");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::rmsnormBackward(dx, dWeight, dOut, x, weight, rstd);
    return info.Env().Undefined();
  });
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Args a(info, "matmul", 7);
  auto out = a.tensor(0, "out"), A = a.tensor(1, "a"), B = a.tensor(2, "b");
  MatmulOptions o;
  o.transA = a.boolean(3, "transA");
  o.transB = a.boolean(4, "transB");
  o.accumulate = a.boolean(5, "accumulate");
  o.alpha = a.float32(6, "alpha");
  a.dtypeIn(A, "a", kFloat);
  a.sameDtype(A, "a", B, "b");
  a.dtypeIn(out, "out", kFloat);
  if (A.ndim < 2 || B.ndim < 2 || out.ndim < 2)
    a.fail("a, b and out must have at least 2 dimensions (leading dimensions are flattened)");
  int64_t M = o.transA ? A.lastDim() : A.rows(), K = o.transA ? A.rows() : A.lastDim();
  int64_t Kb = o.transB ? B.lastDim() : B.rows(), N = o.transB ? B.rows() : B.lastDim();
  if (K != Kb)
    a.fail("inner dimensions differ: op(a) is [" + std::to_string(M) + "," + std::to_string(K) +
           "], op(b) is [" + std::to_string(Kb) + "," + std::to_string(N) + "]");
  if (out.rows() != M || out.lastDim() != N)
    a.fail("out " + shapeString(out) + " must be [" + std::to_string(M) + "," + std::to_string(N) + "]");
  if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) a.failRange("dimensions exceed 2^31-1");
  a.noOverlap(out, "out", A, "a");
  a.noOverlap(out, "out", B, "b");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::matmul(out, A, B, M, N, K, o);
    return info.Env().Undefined();
  });
}

Napi::Value Rope(const Napi::CallbackInfo& info) {
  Args a(info, "rope", 5);
  auto out = a.tensor(0, "out"), x = a.tensor(1, "x");
  // base is used as a float: 1e300 or 1e39 became inf (every frequency but the first 0).
  float base = a.float32(2, "base");
  int64_t offset = a.integer(3, "positionOffset", 0, kMaxInt);
  bool inverse = a.boolean(4, "inverse");
  if (!(base > 1)) a.failRange("base must be > 1");
  a.dtypeIn(x, "x", kFloat);
  a.ndimIs(x, "x", 4);
  if (x.shape[3] % 2 != 0) a.fail("head dim D must be even, got " + std::to_string(x.shape[3]));
  a.sameShape(out, "out", x, "x");
  a.sameDtype(out, "out", x, "x");
  a.exactOrNoOverlap(out, "out", x, "x");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::rope(out, x, base, offset, inverse);
    return info.Env().Undefined();
  });
}

AttentionOptions readAttention(const Args& a, size_t i, const TensorDesc& q) {
  AttentionOptions o;
  o.causal = a.boolean(i, "causal");
  double s = a.float32(i + 1, "scale");
  if (s < 0) a.failRange("scale must be >= 0 (0 selects 1/sqrt(D))");
  o.scale = s == 0 ? 1.0f / std::sqrt(static_cast<float>(q.shape[3])) : static_cast<float>(s);
  return o;
}

void checkQkv(const Args& a, const TensorDesc& q, const TensorDesc& k, const TensorDesc& v) {
  a.dtypeIn(q, "q", kFloat);
  a.ndimIs(q, "q", 4);
  a.ndimIs(k, "k", 4);
  a.sameDtype(k, "k", q, "q");
  a.sameDtype(v, "v", q, "q");
  a.sameShape(v, "v", k, "k");
  if (k.shape[0] != q.shape[0] || k.shape[1] != q.shape[1] || k.shape[3] != q.shape[3])
    a.fail("k " + shapeString(k) + " must be [B,T,Hkv,D] matching q " + shapeString(q));
  if (k.shape[2] == 0 || q.shape[2] % k.shape[2] != 0)
    a.fail("query heads (" + std::to_string(q.shape[2]) + ") must be a multiple of KV heads (" +
           std::to_string(k.shape[2]) + ")");
}

void checkLse(const Args& a, const TensorDesc& lse, const TensorDesc& q) {
  a.dtypeIn(lse, "lse", {DType::F32});
  a.shapeIs(lse, "lse", {q.shape[0], q.shape[2], q.shape[1]});
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionForward", 7);
  auto out = a.tensor(0, "out"), lse = a.tensor(1, "lse"), q = a.tensor(2, "q"),
       k = a.tensor(3, "k"), v = a.tensor(4, "v");
  checkQkv(a, q, k, v);
  auto o = readAttention(a, 5, q);
  a.sameShape(out, "out", q, "q");
  a.sameDtype(out, "out", q, "q");
  checkLse(a, lse, q);
  for (auto [t, n] : {std::pair{q, "q"}, {k, "k"}, {v, "v"}}) {
    a.noOverlap(out, "out", t, n);
    a.noOverlap(lse, "lse", t, n);
  }
  a.noOverlap(out, "out", lse, "lse");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::attentionForward(out, lse, q, k, v, o);
    return info.Env().Undefined();
  });
}

Napi::Value DecodeAttention(const Napi::CallbackInfo& info) {
  Args a(info, "decodeAttention", 9);
  auto out = a.tensor(0, "out"), q = a.tensor(1, "q"), kNew = a.tensor(2, "kNew"),
       vNew = a.tensor(3, "vNew"), kCache = a.tensor(4, "kCache"), vCache = a.tensor(5, "vCache"),
       meta = a.tensor(6, "meta");
  float base = a.float32(7, "ropeBase");  // used as a float, as rope's base
  double s = a.float32(8, "scale");
  if (!(base > 1)) a.failRange("ropeBase must be > 1");
  if (s < 0) a.failRange("scale must be >= 0 (0 selects 1/sqrt(D))");
  a.dtypeIn(q, "q", kFloat);
  a.ndimIs(q, "q", 3);
  a.ndimIs(kNew, "kNew", 3);
  a.ndimIs(kCache, "kCache", 4);
  for (auto [t, n] : {std::pair{out, "out"}, {kNew, "kNew"}, {vNew, "vNew"}, {kCache, "kCache"},
                      {vCache, "vCache"}})
    a.sameDtype(t, n, q, "q");
  a.sameShape(out, "out", q, "q");
  a.sameShape(vNew, "vNew", kNew, "kNew");
  a.sameShape(vCache, "vCache", kCache, "kCache");
  int64_t S = q.shape[0], H = q.shape[1], D = q.shape[2], Hkv = kNew.shape[1];
  if (kNew.shape[0] != S || kNew.shape[2] != D)
    a.fail("kNew " + shapeString(kNew) + " must be [S,Hkv,D] matching q " + shapeString(q));
  if (Hkv == 0 || H % Hkv != 0)
    a.fail("query heads (" + std::to_string(H) + ") must be a multiple of KV heads (" + std::to_string(Hkv) + ")");
  if (D % 2 != 0) a.fail("head dim D must be even, got " + std::to_string(D));
  if (kCache.shape[2] != Hkv || kCache.shape[3] != D)
    a.fail("kCache " + shapeString(kCache) + " must be [slots,maxLen,Hkv,D] matching kNew " + shapeString(kNew));
  a.dtypeIn(meta, "meta", {DType::I32});
  a.shapeIs(meta, "meta", {2, S});
  for (auto [t, n] : {std::pair{q, "q"}, {kNew, "kNew"}, {vNew, "vNew"}, {kCache, "kCache"},
                      {vCache, "vCache"}, {meta, "meta"}})
    a.noOverlap(out, "out", t, n);
  for (auto [t, n] : {std::pair{kNew, "kNew"}, {vNew, "vNew"}, {q, "q"}, {meta, "meta"}}) {
    a.noOverlap(kCache, "kCache", t, n);
    a.noOverlap(vCache, "vCache", t, n);
  }
  a.noOverlap(kCache, "kCache", vCache, "vCache");
  float scale = s == 0 ? 1.0f / std::sqrt(static_cast<float>(D)) : static_cast<float>(s);
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::decodeAttention(out, q, kNew, vNew, kCache, vCache, meta, base, scale);
    return info.Env().Undefined();
  });
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionBackward", 11);
  auto dq = a.tensor(0, "dq"), dk = a.tensor(1, "dk"), dv = a.tensor(2, "dv"),
       dOut = a.tensor(3, "dOut"), q = a.tensor(4, "q"), k = a.tensor(5, "k"),
       v = a.tensor(6, "v"), out = a.tensor(7, "out"), lse = a.tensor(8, "lse");
  checkQkv(a, q, k, v);
  auto o = readAttention(a, 9, q);
  for (auto [t, n] : {std::pair{dq, "dq"}, {dOut, "dOut"}, {out, "out"}}) {
    a.sameShape(t, n, q, "q");
    a.sameDtype(t, n, q, "q");
  }
  for (auto [t, n] : {std::pair{dk, "dk"}, {dv, "dv"}}) {
    a.sameShape(t, n, k, "k");
    a.sameDtype(t, n, k, "k");
  }
  checkLse(a, lse, q);
  std::pair<TensorDesc, const char*> grads[] = {{dq, "dq"}, {dk, "dk"}, {dv, "dv"}};
  std::pair<TensorDesc, const char*> inputs[] = {{dOut, "dOut"}, {q, "q"}, {k, "k"},
                                                 {v, "v"},       {out, "out"}, {lse, "lse"}};
  for (auto& g : grads) {
    for (auto& in : inputs) a.noOverlap(g.first, g.second, in.first, in.second);
  }
  a.noOverlap(dq, "dq", dk, "dk");
  a.noOverlap(dq, "dq", dv, "dv");
  a.noOverlap(dk, "dk", dv, "dv");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, o);
    return info.Env().Undefined();
  });
}

Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluForward", 3);
  auto out = a.tensor(0, "out"), gate = a.tensor(1, "gate"), up = a.tensor(2, "up");
  a.dtypeIn(gate, "gate", kFloat);
  a.sameShape(up, "up", gate, "gate");
  a.sameDtype(up, "up", gate, "gate");
  a.sameShape(out, "out", gate, "gate");
  a.sameDtype(out, "out", gate, "gate");
  a.exactOrNoOverlap(out, "out", gate, "gate");
  a.exactOrNoOverlap(out, "out", up, "up");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::swigluForward(out, gate, up);
    return info.Env().Undefined();
  });
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluBackward", 5);
  auto dGate = a.tensor(0, "dGate"), dUp = a.tensor(1, "dUp"), dOut = a.tensor(2, "dOut"),
       gate = a.tensor(3, "gate"), up = a.tensor(4, "up");
  a.dtypeIn(gate, "gate", kFloat);
  for (auto [t, n] : {std::pair{dGate, "dGate"}, {dUp, "dUp"}, {dOut, "dOut"}, {up, "up"}}) {
    a.sameShape(t, n, gate, "gate");
    a.sameDtype(t, n, gate, "gate");
  }
  a.noOverlap(dGate, "dGate", dUp, "dUp");
  for (auto [t, n] : {std::pair{dGate, "dGate"}, {dUp, "dUp"}}) {
    a.exactOrNoOverlap(t, n, dOut, "dOut");
    a.exactOrNoOverlap(t, n, gate, "gate");
    a.exactOrNoOverlap(t, n, up, "up");
  }
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::swigluBackward(dGate, dUp, dOut, gate, up);
    return info.Env().Undefined();
  });
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Args a(info, "crossEntropy", 5);
  auto losses = a.tensor(0, "losses"), logits = a.tensor(1, "logits"),
       targets = a.tensor(2, "targets");
  float dlossScale = a.float32(3, "dlossScale");
  bool computeGrad = a.boolean(4, "computeGrad");
  a.dtypeIn(logits, "logits", kFloat);
  if (logits.ndim < 2) a.fail("logits must be [N, V]");
  if (logits.lastDim() < 1) a.fail("logits rows must not be empty (V = 0)");
  a.dtypeIn(losses, "losses", {DType::F32});
  a.dtypeIn(targets, "targets", {DType::I32});
  int64_t N = logits.rows();
  if (losses.numel != N || targets.numel != N)
    a.fail("losses and targets must have N = " + std::to_string(N) + " elements (logits " +
           shapeString(logits) + ")");
  a.noOverlap(losses, "losses", logits, "logits");
  a.noOverlap(losses, "losses", targets, "targets");
  a.noOverlap(logits, "logits", targets, "targets");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::crossEntropy(losses, logits, targets, dlossScale, computeGrad);
    return info.Env().Undefined();
  });
}

Napi::Value Argmax(const Napi::CallbackInfo& info) {
  Args a(info, "argmax", 2);
  auto out = a.tensor(0, "out"), logits = a.tensor(1, "logits");
  a.dtypeIn(logits, "logits", kFloat);
  if (logits.ndim < 2) a.fail("logits must be [N, V]");
  if (logits.lastDim() < 1) a.fail("logits rows must not be empty (V = 0)");
  a.dtypeIn(out, "out", {DType::I32});
  int64_t N = logits.rows();
  if (out.numel != N)
    a.fail("out must have N = " + std::to_string(N) + " elements (logits " + shapeString(logits) +
           ")");
  if (logits.lastDim() > INT32_MAX) a.fail("rows longer than 2^31 - 1 do not fit an i32 index");
  a.noOverlap(out, "out", logits, "logits");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::argmax(out, logits);
    return info.Env().Undefined();
  });
}

Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Args a(info, "adamw", 12);
  auto param = a.tensor(0, "param");
  bool hasMaster = !a.isNull(1);
  TensorDesc master;
  if (hasMaster) master = a.tensor(1, "master");
  auto grad = a.tensor(2, "grad"), m = a.tensor(3, "m"), v = a.tensor(4, "v");
  AdamWOptions o;
  o.lr = a.float32(5, "lr");
  o.beta1 = a.float32(6, "beta1");
  o.beta2 = a.float32(7, "beta2");
  o.eps = a.float32(8, "eps");
  o.weightDecay = a.float32(9, "weightDecay");
  o.step = a.integer(10, "step", 1, kMaxInt);
  o.gradScale = a.float32(11, "gradScale");
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1))
    a.failRange("beta1 and beta2 must be in [0, 1)");
  if (!(o.eps > 0)) a.failRange("eps must be > 0");
  a.dtypeIn(param, "param", kFloat);
  if (param.dtype == DType::BF16 && !hasMaster)
    a.fail("a bf16 param needs an f32 master copy (pass master)");
  if (param.dtype == DType::F32 && hasMaster)
    a.fail("an f32 param is its own master copy (pass master = null)");
  std::vector<std::pair<TensorDesc, const char*>> all = {{param, "param"}, {grad, "grad"}, {m, "m"}, {v, "v"}};
  if (hasMaster) all.push_back({master, "master"});
  for (size_t i = 1; i < all.size(); ++i) {
    a.dtypeIn(all[i].first, all[i].second, {DType::F32});
    if (all[i].first.numel != param.numel)
      a.fail(std::string(all[i].second) + " must have " + std::to_string(param.numel) +
             " elements like param, got " + std::to_string(all[i].first.numel));
  }
  for (size_t i = 0; i < all.size(); ++i)
    for (size_t j = i + 1; j < all.size(); ++j)
      a.noOverlap(all[i].first, all[i].second, all[j].first, all[j].second);
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::adamw(param, hasMaster ? &master : nullptr, grad, m, v, o);
    return info.Env().Undefined();
  });
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Args a(info, "sumSquares", 1);
  if (!info[0].IsArray()) a.fail("expected an array of tensors");
  auto arr = info[0].As<Napi::Array>();
  // Reading the elements may run user JavaScript (getters) that disposes a tensor: read them
  // all first, then resolve the handles, so no pointer is taken before user code has run.
  // Each element is type-checked as it is read (a tag check runs no JavaScript) and nothing is
  // reserved from the length: a sparse array of length 2^32 - 1 once made reserve() throw
  // std::bad_alloc outside any handler, which aborted the process.
  uint32_t n = arr.Length();
  std::vector<Napi::Value> values;
  for (uint32_t i = 0; i < n; ++i) {
    values.push_back(arr.Get(i));
    if (!isTensorObject(values.back())) a.fail("tensors[" + std::to_string(i) + "] must be a Tensor");
  }
  std::vector<TensorDesc> ts;
  ts.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    std::string name = "tensors[" + std::to_string(i) + "]";
    ts.push_back(a.handleOf(values[i], name)->desc());
    a.dtypeIn(ts.back(), name.c_str(), kFloat);
  }
  return guarded(info, a.op(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), backend::sumSquares(ts));
  });
}

Napi::Value Sum(const Napi::CallbackInfo& info) {
  Args a(info, "sum", 1);
  auto t = a.tensor(0, "t");
  a.dtypeIn(t, "t", kFloat);
  return guarded(info, a.op(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), backend::sum(t));
  });
}

Napi::Value Cast(const Napi::CallbackInfo& info) {
  Args a(info, "cast", 2);
  auto out = a.tensor(0, "out"), x = a.tensor(1, "x");
  if (out.numel != x.numel)
    a.fail("out (" + std::to_string(out.numel) + " elements) and x (" + std::to_string(x.numel) +
           " elements) must have the same numel");
  bool floats = (x.dtype == DType::F32 || x.dtype == DType::BF16) &&
                (out.dtype == DType::F32 || out.dtype == DType::BF16);
  bool ints = (x.dtype == DType::U16 || x.dtype == DType::I32) && out.dtype == DType::I32;
  if (!floats && !ints)
    a.fail(std::string("cannot cast ") + dtypeName(x.dtype) + " to " + dtypeName(out.dtype) +
           " (supported: f32<->bf16, u16->i32, same dtype)");
  a.exactOrNoOverlap(out, "out", x, "x");
  if (out.data == x.data && out.dtype != x.dtype) a.fail("out and x must not overlap in memory");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::cast(out, x);
    return info.Env().Undefined();
  });
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  Args a(info, "fill", 2);
  auto t = a.tensor(0, "t");
  double value = a.number(1, "value");
  if ((t.dtype == DType::F32 || t.dtype == DType::BF16) &&
      std::fabs(value) > static_cast<double>(std::numeric_limits<float>::max()))
    a.failRange("value must fit in a float32 (|x| <= 3.4e38) for a float tensor");
  if (t.dtype == DType::I32 && (value != std::floor(value) || value < INT32_MIN || value > INT32_MAX))
    a.failRange("value must be an int32 for an i32 tensor");
  if (t.dtype == DType::U16 && (value != std::floor(value) || value < 0 || value > 65535))
    a.failRange("value must be in [0, 65535] for a u16 tensor");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::fill(t, value);
    return info.Env().Undefined();
  });
}

Napi::Value Copy(const Napi::CallbackInfo& info) {
  Args a(info, "copy", 2);
  auto dst = a.tensor(0, "dst"), src = a.tensor(1, "src");
  a.sameDtype(dst, "dst", src, "src");
  if (dst.numel != src.numel) a.fail("dst and src must have the same numel");
  a.exactOrNoOverlap(dst, "dst", src, "src");
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::copy(dst, src);
    return info.Env().Undefined();
  });
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  Args a(info, "scale", 2);
  auto t = a.tensor(0, "t");
  float s = a.float32(1, "s");
  a.dtypeIn(t, "t", kFloat);
  return guarded(info, a.op(), [&]() -> Napi::Value {
    backend::scale(t, s);
    return info.Env().Undefined();
  });
}

// Every op needs an initialised backend; wrap the op table once.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value op(const Napi::CallbackInfo& info) {
  requireInit(info, "op");
  return F(info);
}

}  // namespace

#ifdef TK_WITH_NCCL
void registerNccl(Napi::Env env, Napi::Object exports);
#endif

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->tensorCtor = Napi::Persistent(TensorHandle::Define(env));
  env.SetInstanceData<AddonData>(data);
  exports.Set("NativeTensor", data->tensorCtor.Value());
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("empty", Napi::Function::New(env, Empty));
  exports.Set("stats", Napi::Function::New(env, Stats));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize));
  exports.Set("embeddingForward", Napi::Function::New(env, op<EmbeddingForward>));
  exports.Set("embeddingBackward", Napi::Function::New(env, op<EmbeddingBackward>));
  exports.Set("rmsnormForward", Napi::Function::New(env, op<RmsnormForward>));
  exports.Set("residualRmsnormForward", Napi::Function::New(env, op<ResidualRmsnormForward>));
  exports.Set("rmsnormBackward", Napi::Function::New(env, op<RmsnormBackward>));
  exports.Set("matmul", Napi::Function::New(env, op<Matmul>));
  exports.Set("rope", Napi::Function::New(env, op<Rope>));
  exports.Set("decodeAttention", Napi::Function::New(env, op<DecodeAttention>));
  exports.Set("attentionForward", Napi::Function::New(env, op<AttentionForward>));
  exports.Set("attentionBackward", Napi::Function::New(env, op<AttentionBackward>));
  exports.Set("swigluForward", Napi::Function::New(env, op<SwigluForward>));
  exports.Set("swigluBackward", Napi::Function::New(env, op<SwigluBackward>));
  exports.Set("crossEntropy", Napi::Function::New(env, op<CrossEntropy>));
  exports.Set("argmax", Napi::Function::New(env, op<Argmax>));
  exports.Set("adamw", Napi::Function::New(env, op<AdamW>));
  exports.Set("sumSquares", Napi::Function::New(env, op<SumSquares>));
  exports.Set("sum", Napi::Function::New(env, op<Sum>));
  exports.Set("cast", Napi::Function::New(env, op<Cast>));
  exports.Set("fill", Napi::Function::New(env, op<Fill>));
  exports.Set("copy", Napi::Function::New(env, op<Copy>));
  exports.Set("scale", Napi::Function::New(env, op<Scale>));
#ifdef TK_WITH_NCCL
  registerNccl(env, exports);  // cuda/comm_nccl.cu: NCCL collectives
#endif
  return exports;
}

}  // namespace tk

static Napi::Object InitTinyllamaKernels(Napi::Env env, Napi::Object exports) {
  return tk::InitModule(env, exports);
}
NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitTinyllamaKernels)
