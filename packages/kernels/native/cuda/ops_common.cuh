// What the memory-bound op files (ops.cu, rmsnorm.cu, cross_entropy.cu) share: the alignment
// tests of their vectorised paths, the grid of the grid-stride kernels, and the choice between
// the row kernels that keep a row in registers and the two-pass ones. Inline: one definition
// (and one environment read) per process, whichever file asks first.
#pragma once
#include <cstdint>
#include <initializer_list>

#include "common.cuh"

namespace tk::cuda {

// Row kernels that hold their whole row in registers (one read of each input, every load of a
// row issued before the first use): the RMSNorm backward and the cross-entropy, where the
// two-pass kernels re-read the row from L1/L2. On an H200 at the 1.1B shapes (2026-11-28): RMSNorm
// backward 2,366 GB/s two-pass, 2,592-2,734 with a row per warp (regs), 3,016-3,059 with a row per
// pair of warps (split), 3,263-3,272 with a row per block of four warps (quad: a quarter of the
// registers per warp, 28 warps per SM instead of 12); cross-entropy 3,049 -> 4,009 GB/s (0.688 ->
// 0.523 ms). The RMSNorm backward's default is a row per block of 8 warps that keeps only 8
// columns per lane in registers (rmsnormBackwardBlockRowKernel, 3,414-3,445 GB/s, 40 warps per
// SM); TINYLLAMA_ROW_KERNELS=quad, split, regs or two-pass keeps an earlier kernel, for
// comparisons; read once per process.
enum class RowKernels { TwoPass, Regs, Split, Quad, Block };
inline RowKernels rowKernels() {
  static const RowKernels choice = [] {
    constexpr RowKernels named[] = {RowKernels::Block, RowKernels::Quad, RowKernels::Split, RowKernels::Regs,
                                    RowKernels::TwoPass};
    int i = settingChoice("TINYLLAMA_ROW_KERNELS", {"block", "quad", "split", "regs", "two-pass"});
    return i < 0 ? RowKernels::Block : named[i];
  }();
  return choice;
}
inline bool registerRowKernels() { return rowKernels() != RowKernels::TwoPass; }

inline bool aligned(const TensorDesc& t, int bytes) { return (reinterpret_cast<uintptr_t>(t.data) % bytes) == 0; }
// Alignment the 8-element vector loads need: 16 bytes for bf16, 32 for f32.
inline int vecAlign(DType d) { return d == DType::F32 ? 32 : 16; }
inline bool allAligned(std::initializer_list<const TensorDesc*> ts, int bytes) {
  for (const TensorDesc* t : ts)
    if (!aligned(*t, bytes)) return false;
  return true;
}

// Blocks for a grid-stride kernel over n elements: enough to fill every SM 16 times, no more.
inline int gridFor(int64_t n) { return blocksFor(n, 256, static_cast<int64_t>(smCount()) * 16); }

}  // namespace tk::cuda
