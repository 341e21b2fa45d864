// CUDA backend runtime: device selection and checks, the stream, device memory, copies,
// scratch and the data-error flag.
#include <cstdlib>
#include <string>
#ifdef TK_WITH_CUDNN
#include <cudnn.h>
#endif

#include "common.cuh"

namespace tk::cuda {
namespace {
struct State {
  bool ready = false;
  int device = 0;
  cudaDeviceProp prop{};
  cudaStream_t stream = nullptr;
  void* scratch[3] = {nullptr, nullptr, nullptr};
  size_t scratchBytes[3] = {0, 0, 0};
  int* flag = nullptr;
};
State& state() {
  static State s;
  return s;
}
void* growScratch(int which, size_t bytes) {
  auto& s = state();
  if (bytes > s.scratchBytes[which]) {
    if (s.scratch[which]) {
      TK_CUDA(cudaStreamSynchronize(s.stream));
      TK_CUDA(cudaFree(s.scratch[which]));
      s.scratch[which] = nullptr;
    }
    size_t rounded = (bytes + (1 << 20) - 1) / (1 << 20) * (1 << 20);
    TK_CUDA(cudaMalloc(&s.scratch[which], rounded));
    s.scratchBytes[which] = rounded;
  }
  return s.scratch[which];
}
}  // namespace

cudaStream_t stream() { return state().stream; }
int smCount() { return state().prop.multiProcessorCount; }
void* scratch(size_t bytes) { return growScratch(0, bytes); }
void* scratch2(size_t bytes) { return growScratch(1, bytes); }
void* ropeTableScratch(size_t bytes) { return growScratch(2, bytes); }
int* errorFlag() { return state().flag; }
std::string envValue(const char* name) {
  const char* e = std::getenv(name);
  return e ? e : "";
}
int settingChoice(const char* name, std::initializer_list<const char*> values) {
  const std::string value = envValue(name);
  if (value.empty()) return -1;
  std::string choices = "unset";
  int i = 0;
  for (const char* v : values) {
    if (value == v) return i;
    choices += (++i == static_cast<int>(values.size()) ? " or " : ", ") + std::string(v);
  }
  throw Error(std::string(name) + " must be " + choices + ", not '" + value + "'");
}

}  // namespace tk::cuda

namespace tk::backend {
using namespace tk::cuda;

void init() {
  auto& s = state();
  if (s.ready) return;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    throw Error(std::string("no CUDA device is usable (cudaGetDeviceCount: ") +
                (err == cudaSuccess ? "0 devices" : cudaGetErrorString(err)) +
                "). Check nvidia-smi, the NVIDIA driver and CUDA_VISIBLE_DEVICES, or use the cpu backend.");
  }
  const char* env = std::getenv("TINYLLAMA_CUDA_DEVICE");
  s.device = env ? std::atoi(env) : 0;
  if (s.device < 0 || s.device >= count)
    throw Error("TINYLLAMA_CUDA_DEVICE=" + std::to_string(s.device) + " but only " +
                std::to_string(count) + " CUDA devices are visible");
  TK_CUDA(cudaSetDevice(s.device));
  TK_CUDA(cudaGetDeviceProperties(&s.prop, s.device));
  if (s.prop.major < 8)
    throw Error(std::string(s.prop.name) + " has compute capability " +
                std::to_string(s.prop.major) + "." + std::to_string(s.prop.minor) +
                "; the CUDA backend needs 8.0 or newer (bf16 tensor cores). Use the cpu backend.");
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  if (driver < runtime)
    throw Error("the NVIDIA driver supports CUDA " + std::to_string(driver) +
                " but this addon was built with CUDA runtime " + std::to_string(runtime) +
                "; update the driver or rebuild with an older toolkit");
  TK_CUDA(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  TK_CUDA(cudaMalloc(&s.flag, sizeof(int)));
  TK_CUDA(cudaMemset(s.flag, 0, sizeof(int)));
  s.ready = true;
}

DeviceInfo deviceInfo() {
  auto& s = state();
  DeviceInfo d;
  d.backend = "cuda";
  d.name = s.prop.name;
  d.computeMajor = s.prop.major;
  d.computeMinor = s.prop.minor;
  d.totalMemory = static_cast<int64_t>(s.prop.totalGlobalMem);
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  d.detail = "device " + std::to_string(s.device) + ", " + std::to_string(s.prop.multiProcessorCount) +
             " SMs, driver " + std::to_string(driver) + ", runtime " + std::to_string(runtime);
#ifdef TK_WITH_CUDNN
  // the library loaded at run time, which the attention forward uses (attention_cudnn.cu)
  d.detail += ", cuDNN " + std::to_string(cudnnGetVersion());
#endif
  return d;
}

void* allocate(size_t bytes) {
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();
    size_t freeB = 0, totalB = 0;
    cudaMemGetInfo(&freeB, &totalB);
    throw Error("cudaMalloc of " + std::to_string(bytes) + " bytes failed (" +
                cudaGetErrorString(err) + "); " + std::to_string(freeB >> 20) + " MiB free of " +
                std::to_string(totalB >> 20) + " MiB");
  }
  return p;
}

void release(void* ptr) {
  // cudaFree waits for work in flight on the device; errors here cannot be thrown from a
  // finalizer, so they are dropped (the next checked call reports a broken context).
  if (ptr) cudaFree(ptr);
}

void copyFromHost(void* dst, const void* src, size_t bytes) {
  TK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
  TK_CUDA(cudaStreamSynchronize(stream()));
}

void copyToHost(void* dst, const void* src, size_t bytes) {
  TK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
  TK_CUDA(cudaStreamSynchronize(stream()));
}

void synchronize() {
  TK_CUDA(cudaStreamSynchronize(stream()));
  int flag = 0;
  TK_CUDA(cudaMemcpy(&flag, errorFlag(), sizeof(int), cudaMemcpyDeviceToHost));
  if (flag != kNoError) {
    TK_CUDA(cudaMemsetAsync(errorFlag(), 0, sizeof(int), stream()));
    TK_CUDA(cudaStreamSynchronize(stream()));
    if (flag == kBadTokenId)
      throw Error("an embedding id was outside [0, V) (its rows were written as zeros / skipped)");
    if (flag == kBadDecodeMeta)
      throw Error("decodeAttention: a slot or position in meta was outside the cache (its rows were skipped)");
    throw Error("a cross-entropy target was >= V (its loss and gradient row were set to 0)");
  }
}

}  // namespace tk::backend
