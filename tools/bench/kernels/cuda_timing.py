"""CUDA-event timing shared by torch_bench.py and attention_table.py (GPU machine only)."""
import statistics

import torch


def timed(fn, iters=10, reps=3):
    """Median over `reps` of the mean ms per call of `iters` back-to-back calls, after one warm-up."""
    fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(iters):
            fn()
        e.record()
        torch.cuda.synchronize()
        samples.append(s.elapsed_time(e) / iters)
    return statistics.median(samples)
