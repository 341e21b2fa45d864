// A small persistent thread pool for the CPU backend. parallelFor splits [0, n) into fixed
// chunks; results never depend on the thread count because reductions are done per fixed
// chunk and combined in chunk order by the caller (determinism across machines).
#pragma once
#include <cstdint>
#include <functional>

namespace tk::cpu {

int threadCount();
// The SIMD kernels in use (matmul micro-kernel, softmax exp): "avx2+fma" or "generic"
// (TINYLLAMA_CPU_KERNELS=generic forces the portable ones; a value other than generic/auto
// gives "", which matmul reports as an error). Read once.
const char* simdKernels();
// simdKernels() == "avx2+fma", decided once.
bool avx2Kernels();
// Calls fn(begin, end) for consecutive chunks of at most `grain` items, on all threads. If fn
// throws, the chunks not yet started are skipped, and parallelFor rethrows the first exception
// on the calling thread once no thread runs fn any more (a worker thread never terminates).
void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace tk::cpu
