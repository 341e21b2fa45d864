#include "tensor_handle.h"

#include <cmath>
#include <cstdint>
#include <sstream>
#include <vector>

#include "args.h"

namespace tk {

Counters& counters() {
  static Counters c;
  return c;
}

Storage::Storage(size_t n) : bytes(n) {
  ptr = backend::allocate(n == 0 ? 16 : n);
  auto& c = counters();
  int64_t live = c.liveBytes.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
  int64_t peak = c.peakBytes.load();
  while (live > peak && !c.peakBytes.compare_exchange_weak(peak, live)) {
  }
  c.allocations.fetch_add(1);
}

Storage::~Storage() {
  backend::release(ptr);
  counters().liveBytes.fetch_sub(static_cast<int64_t>(bytes));
}

namespace {
// Handles are only created by native code; JavaScript `new` without this token is refused.
int kConstructToken = 0;
}  // namespace

// upper: "tkTensor" in ASCII; lower: an address in this copy of the library (see the header).
const napi_type_tag kTensorTypeTag = {
    0x746b54656e736f72ULL, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&kConstructToken))};

namespace {

bool parseDType(const std::string& s, DType* out) {
  if (s == "f32") *out = DType::F32;
  else if (s == "bf16") *out = DType::BF16;
  else if (s == "i32") *out = DType::I32;
  else if (s == "u16") *out = DType::U16;
  else return false;
  return true;
}
}  // namespace

Napi::Function TensorHandle::Define(Napi::Env env) {
  return DefineClass(env, "NativeTensor",
                     {
                         InstanceMethod("dispose", &TensorHandle::Dispose),
                         InstanceMethod("view", &TensorHandle::View),
                         InstanceMethod("toHost", &TensorHandle::ToHost),
                         InstanceMethod("fromHost", &TensorHandle::FromHost),
                         InstanceAccessor("disposed", &TensorHandle::IsDisposed, nullptr),
                     });
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {
  if (info.Length() != 1 || !info[0].IsExternal() ||
      info[0].As<Napi::External<int>>().Data() != &kConstructToken) {
    throw Napi::TypeError::New(info.Env(),
                               "NativeTensor cannot be constructed directly; use backend.empty()");
  }
}

TensorHandle::~TensorHandle() { release(); }

void TensorHandle::release() {
  if (storage_) {
    storage_.reset();
    counters().liveTensors.fetch_sub(1);
  }
}

Napi::Object TensorHandle::Create(Napi::Env env, const Napi::FunctionReference& ctor,
                                  std::shared_ptr<Storage> storage, size_t byteOffset,
                                  DType dtype, int ndim, const int64_t* shape) {
  // A handle without storage would count as live forever (release() only counts handles that
  // hold storage); callers re-check disposal after reading JavaScript values, so this is a bug.
  if (!storage) throw Napi::Error::New(env, "internal error: tensor handle without storage");
  Napi::Object obj =
      ctor.New({Napi::External<int>::New(env, &kConstructToken)});
  obj.TypeTag(&kTensorTypeTag);
  auto* h = Unwrap(obj);
  h->storage_ = std::move(storage);
  h->byteOffset_ = byteOffset;
  h->dtype_ = dtype;
  h->ndim_ = ndim;
  h->numel_ = 1;
  for (int i = 0; i < ndim; ++i) {
    h->shape_[i] = shape[i];
    h->numel_ *= shape[i];
  }
  counters().liveTensors.fetch_add(1);
  return obj;
}

TensorDesc TensorHandle::desc() const {
  TensorDesc d;
  d.data = static_cast<char*>(storage_->ptr) + byteOffset_;
  d.dtype = dtype_;
  d.ndim = ndim_;
  for (int i = 0; i < ndim_; ++i) d.shape[i] = shape_[i];
  d.numel = numel_;
  return d;
}

Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

Napi::Value TensorHandle::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed());
}

// Parses a JS array of dimension sizes; shared with the binding's empty(). Every dim is range-
// checked as a double before the cast, and the running product of the non-zero dims is checked
// before each multiply, so [2^32, 2^32] or [2^39, 2^24] are refused instead of wrapping to a
// small (or negative) numel, and [2^40, 0, 2^40] is refused too: its numel is 0 but rows() and
// the kernels' partial products would overflow.
bool readShape(const Napi::Value& v, int* ndim, int64_t* shape, int64_t* numel, std::string* err) {
  if (!v.IsArray()) {
    *err = "shape must be an array of non-negative integers";
    return false;
  }
  auto arr = v.As<Napi::Array>();
  uint32_t n = arr.Length();
  if (n > static_cast<uint32_t>(kMaxDims)) {
    *err = "shape has more than " + std::to_string(kMaxDims) + " dimensions";
    return false;
  }
  *ndim = static_cast<int>(n);
  int64_t nonzero = 1;
  bool zero = false;
  for (uint32_t i = 0; i < n; ++i) {
    Napi::Value e = arr.Get(i);  // may run a getter
    if (!e.IsNumber()) {
      *err = "shape must be an array of non-negative integers";
      return false;
    }
    double d = e.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d)) {  // NaN, negative, fractional; +Inf fails below
      *err = "shape must be an array of non-negative integers";
      return false;
    }
    if (d > static_cast<double>(kMaxElements)) {
      *err = "shape has too many elements (a dimension exceeds 2^40)";
      return false;
    }
    int64_t dim = static_cast<int64_t>(d);
    shape[i] = dim;
    if (dim == 0) {
      zero = true;
    } else if (nonzero > kMaxElements / dim) {
      *err = "shape has too many elements (the product of its dimensions exceeds 2^40)";
      return false;
    } else {
      nonzero *= dim;
    }
  }
  *numel = zero ? 0 : nonzero;
  return true;
}

bool parseDTypeValue(const Napi::Value& v, DType* out) {
  return v.IsString() && parseDType(v.As<Napi::String>().Utf8Value(), out);
}

// view(byteOffset, shape, dtype): a handle over the same storage.
Napi::Value TensorHandle::View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed()) throw Napi::TypeError::New(env, "view: tensor was disposed");
  if (info.Length() < 3) throw Napi::TypeError::New(env, "view: expected (byteOffset, shape, dtype)");
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "view: byteOffset must be a number");
  double off = info[0].As<Napi::Number>().DoubleValue();
  // readShape may run user JavaScript (a getter on the shape array) that disposes this handle:
  // the local reference keeps the storage alive meanwhile, and disposal is checked again after.
  std::shared_ptr<Storage> storage = storage_;
  int ndim;
  int64_t shape[kMaxDims], numel;
  std::string err;
  if (!readShape(info[1], &ndim, shape, &numel, &err)) throw Napi::TypeError::New(env, "view: " + err);
  DType dt;
  if (!parseDTypeValue(info[2], &dt))
    throw Napi::TypeError::New(env, "view: dtype must be one of f32, bf16, i32, u16");
  if (disposed())
    throw Napi::TypeError::New(env, "view: tensor was disposed while the arguments were read");
  // Range-checked as a double before the cast (a cast of 1e300 to an integer is undefined).
  if (!(off >= 0) || off != std::floor(off))
    throw Napi::RangeError::New(env, "view: byteOffset must be a non-negative integer");
  if (off > static_cast<double>(bytes())) {
    std::ostringstream msg;
    msg << "view: byteOffset " << off << " is outside the tensor's " << bytes() << " bytes";
    throw Napi::RangeError::New(env, msg.str());
  }
  auto byteOff = static_cast<size_t>(off);
  // Alignment is of the address in the allocation, not of the offset within this view: a u16
  // view at byte 2 once gave an f32 view at byte 2 of its allocation (a misaligned float*).
  if ((byteOffset_ + byteOff) % dtypeSize(dt) != 0)
    throw Napi::RangeError::New(env, "view: byteOffset must be a multiple of the dtype size (the view would start at byte " +
                                         std::to_string(byteOffset_ + byteOff) + " of its allocation)");
  // numel <= 2^40 and byteOff <= bytes() <= 2^42: no overflow below.
  size_t need = static_cast<size_t>(numel) * dtypeSize(dt);
  if (byteOff + need > bytes())
    throw Napi::RangeError::New(env, "view: [" + std::to_string(byteOff) + ", " +
                                         std::to_string(byteOff + need) +
                                         ") is outside the tensor's " + std::to_string(bytes()) +
                                         " bytes");
  auto* data = env.GetInstanceData<AddonData>();
  return Create(env, data->tensorCtor, std::move(storage), byteOffset_ + byteOff, dt, ndim, shape);
}

// toHost(typedArray): f32/bf16 -> Float32Array (bf16 also raw into Uint16Array),
// i32 -> Int32Array, u16 -> Uint16Array. Lengths must equal numel.
Napi::Value TensorHandle::ToHost(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed()) throw Napi::TypeError::New(env, "toHost: tensor was disposed");
  if (info.Length() < 1 || !info[0].IsTypedArray())
    throw Napi::TypeError::New(env, "toHost: expected a typed array");
  auto ta = info[0].As<Napi::TypedArray>();
  if (static_cast<int64_t>(ta.ElementLength()) != numel_)
    throw Napi::RangeError::New(env, "toHost: array length " + std::to_string(ta.ElementLength()) +
                                         " != numel " + std::to_string(numel_));
  auto type = ta.TypedArrayType();
  void* dst = static_cast<char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  const void* src = static_cast<char*>(storage_->ptr) + byteOffset_;
  bool raw = (dtype_ == DType::F32 && type == napi_float32_array) ||
             (dtype_ == DType::I32 && type == napi_int32_array) ||
             ((dtype_ == DType::U16 || dtype_ == DType::BF16) && type == napi_uint16_array);
  if (raw) {
    backend::copyToHost(dst, src, bytes());
  } else if (dtype_ == DType::BF16 && type == napi_float32_array) {
    std::vector<uint16_t> tmp(static_cast<size_t>(numel_));
    backend::copyToHost(tmp.data(), src, bytes());
    auto* f = static_cast<float*>(dst);
    for (size_t i = 0; i < tmp.size(); ++i) f[i] = bf16ToF32(tmp[i]);
  } else {
    throw Napi::TypeError::New(env, std::string("toHost: a ") + dtypeName(dtype_) +
                                        " tensor cannot be read into this typed array type");
  }
  return info[0];
}

// fromHost(typedArray): the inverse of toHost; f32 data into bf16 rounds to nearest even.
Napi::Value TensorHandle::FromHost(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed()) throw Napi::TypeError::New(env, "fromHost: tensor was disposed");
  if (info.Length() < 1 || !info[0].IsTypedArray())
    throw Napi::TypeError::New(env, "fromHost: expected a typed array");
  auto ta = info[0].As<Napi::TypedArray>();
  if (static_cast<int64_t>(ta.ElementLength()) != numel_)
    throw Napi::RangeError::New(env, "fromHost: array length " + std::to_string(ta.ElementLength()) +
                                         " != numel " + std::to_string(numel_));
  auto type = ta.TypedArrayType();
  const void* src = static_cast<char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  void* dst = static_cast<char*>(storage_->ptr) + byteOffset_;
  bool raw = (dtype_ == DType::F32 && type == napi_float32_array) ||
             (dtype_ == DType::I32 && type == napi_int32_array) ||
             ((dtype_ == DType::U16 || dtype_ == DType::BF16) && type == napi_uint16_array);
  if (raw) {
    backend::copyFromHost(dst, src, bytes());
  } else if (dtype_ == DType::BF16 && type == napi_float32_array) {
    std::vector<uint16_t> tmp(static_cast<size_t>(numel_));
    const auto* f = static_cast<const float*>(src);
    for (size_t i = 0; i < tmp.size(); ++i) tmp[i] = f32ToBf16(f[i]);
    backend::copyFromHost(dst, tmp.data(), bytes());
  } else {
    throw Napi::TypeError::New(env, std::string("fromHost: a ") + dtypeName(dtype_) +
                                        " tensor cannot be filled from this typed array type");
  }
  return env.Undefined();
}

}  // namespace tk
