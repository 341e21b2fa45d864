// Tensor handles as the JavaScript side sees them: an ObjectWrap over a reference-counted
// device allocation (Storage) plus a byte offset, dtype and shape. Views share the Storage,
// so the memory lives until the last handle over it is disposed or collected. dispose() is the
// contract; the ObjectWrap finalizer is only a safety net for handles the program forgot.
// Counters (live handles, live bytes, peak bytes) back the leak tests.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <string>

#include "../common/backend.h"

namespace tk {

struct Counters {
  std::atomic<int64_t> liveTensors{0};
  std::atomic<int64_t> liveBytes{0};
  std::atomic<int64_t> peakBytes{0};
  std::atomic<int64_t> allocations{0};
};
Counters& counters();

// Limits of a shape read at the boundary (readShape): the product of the non-zero dims, and so
// numel, rows() and every other partial product of one tensor's dims, stays <= kMaxElements
// (2^40; 4 TiB of f32), so no size or index computed from a checked shape can overflow int64.
constexpr int64_t kMaxElements = int64_t{1} << 40;

// Parses a JS array of dimension sizes (empty() and view()). May run user JavaScript (array
// getters): call it before taking raw pointers out of any handle.
bool readShape(const Napi::Value& v, int* ndim, int64_t* shape, int64_t* numel, std::string* err);
bool parseDTypeValue(const Napi::Value& v, DType* out);

// Every NativeTensor object carries this type tag (napi_type_tag_object), set when native code
// creates it. Checking the tag runs no JavaScript, unlike instanceof (Symbol.hasInstance on the
// constructor, which user code can redefine). Part of the tag is an address inside this loaded
// library, so handles of another addon (the CUDA one, or a second copy) are refused.
extern const napi_type_tag kTensorTypeTag;
inline bool isTensorObject(const Napi::Value& v) {
  return v.IsObject() && v.As<Napi::Object>().CheckTypeTag(&kTensorTypeTag);
}

struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit Storage(size_t n);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  // Creates a JS handle; `ctor` is the class constructor kept by the addon.
  static Napi::Object Create(Napi::Env env, const Napi::FunctionReference& ctor,
                             std::shared_ptr<Storage> storage, size_t byteOffset, DType dtype,
                             int ndim, const int64_t* shape);

  bool disposed() const { return !storage_; }
  TensorDesc desc() const;
  size_t bytes() const { return static_cast<size_t>(numel_) * dtypeSize(dtype_); }
  DType dtype() const { return dtype_; }
  int64_t numel() const { return numel_; }

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value View(const Napi::CallbackInfo& info);
  Napi::Value ToHost(const Napi::CallbackInfo& info);
  Napi::Value FromHost(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);
  void release();

  std::shared_ptr<Storage> storage_;
  size_t byteOffset_ = 0;
  DType dtype_ = DType::F32;
  int ndim_ = 0;
  int64_t shape_[kMaxDims] = {0, 0, 0, 0, 0, 0};
  int64_t numel_ = 0;
};

}  // namespace tk
