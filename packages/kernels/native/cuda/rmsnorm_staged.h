// The staged RMSNorm kernels (rmsnorm_staged.cu): bf16 rows of 256, 512, 1024 or 2048 columns,
// 16-byte aligned, on GPUs with the shared memory for them (H100/H200). Each returns that it did
// not apply (false / 0 blocks, nothing launched) so the caller can use its other kernels.
#pragma once
#include <cstdint>

#include "common.cuh"

namespace tk::cuda {

// residualOut = x + residual and out = RMSNorm(residualOut) * w, or out = RMSNorm(x) * w when
// residual is null; rstd per row.
bool rmsnormForwardStaged(bf16* residualOut, bf16* out, float* rstd, const bf16* x, const bf16* residual,
                          const bf16* w, int64_t N, int64_t C, float eps);

// dx += the input gradient; the dW partial sums go to partialFor(blocks * C) floats, one row per
// block (to be added by sumChunksKernel). Returns the number of blocks, 0 when not launched.
int64_t rmsnormBackwardStaged(bf16* dx, float* (*partialFor)(int64_t), const bf16* dOut, const bf16* x,
                              const bf16* w, const float* rstd, int64_t N, int64_t C);

}  // namespace tk::cuda
