// CPU backend runtime: host memory (64-byte aligned), copies and device information.
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "../common/backend.h"
#include "parallel.h"

namespace tk::backend {

void init() {}

DeviceInfo deviceInfo() {
  DeviceInfo d;
  d.backend = "cpu";
  d.name = "host CPU";
  d.threads = cpu::threadCount();
  const char* mm = cpu::simdKernels();
  d.detail = "f32 compute, " + std::to_string(d.threads) + " threads (TINYLLAMA_CPU_THREADS), " +
             (*mm ? std::string(mm) : std::string("bad TINYLLAMA_CPU_KERNELS")) + " kernels";
  return d;
}

void* allocate(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}

void release(void* ptr) { std::free(ptr); }

void copyFromHost(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void copyToHost(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void synchronize() {}

}  // namespace tk::backend
