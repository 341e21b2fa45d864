// Argument checking at the native boundary. Every binding reads its arguments through these
// helpers, which throw a JavaScript TypeError/RangeError naming the op and the argument, so
// a wrong call from JavaScript is an exception, never a crash or a silent misuse of memory.
#pragma once
#include <napi.h>

#include <cmath>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "tensor_handle.h"

namespace tk {

struct AddonData {
  Napi::FunctionReference tensorCtor;
};

[[noreturn]] inline void typeError(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}
[[noreturn]] inline void rangeError(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}

inline std::string shapeString(const TensorDesc& t) {
  std::ostringstream s;
  s << "[";
  for (int i = 0; i < t.ndim; ++i) s << (i ? "," : "") << t.shape[i];
  s << "]";
  return s.str();
}

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op, size_t expected)
      : info_(info), env_(info.Env()), op_(op) {
    if (info.Length() < expected) {
      typeError(env_, std::string(op) + ": expected " + std::to_string(expected) +
                          " arguments, got " + std::to_string(info.Length()));
    }
  }
  Napi::Env env() const { return env_; }
  const char* op() const { return op_; }

  [[noreturn]] void fail(const std::string& msg) const { typeError(env_, std::string(op_) + ": " + msg); }
  [[noreturn]] void failRange(const std::string& msg) const {
    rangeError(env_, std::string(op_) + ": " + msg);
  }

  // No user JavaScript runs here (a type-tag check, not instanceof), so a handle checked for
  // disposal stays valid while the remaining arguments are read: reading numbers and booleans
  // runs no JavaScript either. Values that can run user code (array elements, shapes) are read
  // before any handle is resolved (see sumSquares).
  TensorHandle* handle(size_t i, const char* name) const { return handleOf(info_[i], name); }
  TensorHandle* handleOf(const Napi::Value& v, const std::string& name) const {
    if (!isTensorObject(v)) fail(name + " must be a Tensor");
    auto* h = Napi::ObjectWrap<TensorHandle>::Unwrap(v.As<Napi::Object>());
    if (h->disposed()) fail(name + " was disposed");
    return h;
  }
  TensorDesc tensor(size_t i, const char* name) const { return handle(i, name)->desc(); }
  bool isNull(size_t i) const { return info_[i].IsNull() || info_[i].IsUndefined(); }

  double number(size_t i, const char* name) const {
    if (!info_[i].IsNumber()) fail(std::string(name) + " must be a number");
    double d = info_[i].As<Napi::Number>().DoubleValue();
    if (!(d == d) || d == 1.0 / 0.0 || d == -1.0 / 0.0) fail(std::string(name) + " must be finite");
    return d;
  }
  // A scalar the kernels take as a float: a finite double beyond float's range would become
  // inf there (1e300 as a learning rate), so it is refused here, where the name is known.
  float float32(size_t i, const char* name) const {
    double d = number(i, name);
    if (std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max())) {
      std::ostringstream got;
      got << d;
      failRange(std::string(name) + " must fit in a float32 (|x| <= 3.4e38), got " + got.str());
    }
    return static_cast<float>(d);
  }
  // lo and hi must be exact doubles (|x| <= 2^53). The range is checked on the double before
  // the cast: casting an out-of-range double (1e300) to int64_t is undefined behaviour.
  int64_t integer(size_t i, const char* name, int64_t lo, int64_t hi) const {
    double d = number(i, name);
    if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::floor(d)) {
      std::ostringstream got;
      got << d;
      failRange(std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "], got " + got.str());
    }
    return static_cast<int64_t>(d);
  }
  bool boolean(size_t i, const char* name) const {
    if (!info_[i].IsBoolean()) fail(std::string(name) + " must be a boolean");
    return info_[i].As<Napi::Boolean>().Value();
  }

  void dtypeIn(const TensorDesc& t, const char* name, std::initializer_list<DType> ok) const {
    for (DType d : ok)
      if (t.dtype == d) return;
    std::string allowed;
    for (DType d : ok) allowed += std::string(allowed.empty() ? "" : " or ") + dtypeName(d);
    fail(std::string(name) + " must be " + allowed + ", got " + dtypeName(t.dtype));
  }
  void sameDtype(const TensorDesc& a, const char* an, const TensorDesc& b, const char* bn) const {
    if (a.dtype != b.dtype)
      fail(std::string(an) + " (" + dtypeName(a.dtype) + ") and " + bn + " (" +
           dtypeName(b.dtype) + ") must have the same dtype");
  }
  void shapeIs(const TensorDesc& t, const char* name, std::initializer_list<int64_t> dims) const {
    bool ok = t.ndim == static_cast<int>(dims.size());
    int i = 0;
    for (int64_t d : dims) {
      if (ok && t.shape[i] != d) ok = false;
      ++i;
    }
    if (!ok) {
      std::ostringstream s;
      s << name << " must have shape [";
      i = 0;
      for (int64_t d : dims) s << (i++ ? "," : "") << d;
      s << "], got " << shapeString(t);
      fail(s.str());
    }
  }
  void sameShape(const TensorDesc& a, const char* an, const TensorDesc& b, const char* bn) const {
    bool ok = a.ndim == b.ndim;
    for (int i = 0; ok && i < a.ndim; ++i) ok = a.shape[i] == b.shape[i];
    if (!ok)
      fail(std::string(an) + " " + shapeString(a) + " and " + bn + " " + shapeString(b) +
           " must have the same shape");
  }
  void ndimIs(const TensorDesc& t, const char* name, int n) const {
    if (t.ndim != n)
      fail(std::string(name) + " must have " + std::to_string(n) + " dimensions, got " +
           shapeString(t));
  }
  void noOverlap(const TensorDesc& a, const char* an, const TensorDesc& b, const char* bn) const {
    auto a0 = static_cast<const char*>(a.data), b0 = static_cast<const char*>(b.data);
    if (a0 < b0 + b.bytes() && b0 < a0 + a.bytes())
      fail(std::string(an) + " and " + bn + " must not overlap in memory");
  }
  // Same memory or disjoint memory (elementwise ops may run in place).
  void exactOrNoOverlap(const TensorDesc& a, const char* an, const TensorDesc& b,
                        const char* bn) const {
    if (a.data == b.data && a.bytes() == b.bytes()) return;
    noOverlap(a, an, b, bn);
  }

 private:
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  const char* op_;
};

}  // namespace tk
