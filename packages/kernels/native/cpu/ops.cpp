// CPU reference kernels for every op except matmul and attention (own files). Straight loops
// in f32 over rows, parallel over fixed chunks; every reduction that crosses rows (dWeight,
// sums) is computed per fixed chunk and combined in chunk order, so results are bitwise
// identical whatever the thread count.
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "../common/backend.h"
#include "access.h"
#include "parallel.h"
#include "vexp.h"

namespace tk::backend {
using cpu::bf16_t;
using cpu::ld;
using cpu::st;

namespace {
constexpr int64_t kRowChunk = 64;
int64_t rowGrain(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)); }
}  // namespace

namespace {
// Reads every id once into a validated copy: the kernels index with the copy only, so ids that
// change after the check (memory shared with an output) can never index outside the table.
std::vector<int32_t> validIds(const TensorDesc& ids, int64_t V) {
  const int32_t* src = ids.as<int32_t>();
  std::vector<int32_t> id(static_cast<size_t>(ids.numel));
  for (size_t n = 0; n < id.size(); ++n) {
    int32_t v = src[n];
    if (v < 0 || v >= V)
      throw Error("ids[" + std::to_string(n) + "] = " + std::to_string(v) + " is outside [0, " +
                  std::to_string(V) + ")");
    id[n] = v;
  }
  return id;
}
}  // namespace

void embeddingForward(const TensorDesc& out, const TensorDesc& table, const TensorDesc& ids) {
  int64_t C = table.shape[1], N = ids.numel;
  const std::vector<int32_t> id = validIds(ids, table.shape[0]);
  size_t rowBytes = static_cast<size_t>(C) * dtypeSize(table.dtype);
  cpu::parallelFor(N, rowGrain(C), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n)
      std::memcpy(static_cast<char*>(out.data) + n * rowBytes,
                  static_cast<const char*>(table.data) + id[n] * rowBytes, rowBytes);
  });
}

void embeddingBackward(const TensorDesc& dTable, const TensorDesc& dOut, const TensorDesc& ids) {
  int64_t C = dTable.shape[1], N = ids.numel;
  const std::vector<int32_t> id = validIds(ids, dTable.shape[0]);
  float* dt = dTable.as<float>();
  cpu::dispatchFloat(dOut.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* g = dOut.as<T>();
    // Each thread owns a column range and walks the tokens in order: deterministic.
    cpu::parallelFor(C, 64, [&](int64_t c0, int64_t c1) {
      for (int64_t n = 0; n < N; ++n) {
        float* row = dt + static_cast<int64_t>(id[n]) * C;
        for (int64_t c = c0; c < c1; ++c) row[c] += ld(g, n * C + c);
      }
    });
  });
}

namespace {
template <typename T>
void normRow(T* out, float* rstd, const T* x, const T* w, int64_t C, float eps, int64_t n) {
  float ss = 0;
  for (int64_t c = 0; c < C; ++c) {
    float v = ld(x, c);
    ss += v * v;
  }
  float r = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
  rstd[n] = r;
  for (int64_t c = 0; c < C; ++c) st(out, c, ld(x, c) * r * ld(w, c));
}
}  // namespace

void rmsnormForward(const TensorDesc& out, const TensorDesc& rstd, const TensorDesc& x,
                    const TensorDesc& weight, float eps) {
  int64_t C = x.lastDim(), N = x.rows();
  cpu::dispatchFloat(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::parallelFor(N, rowGrain(C), [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n)
        normRow<T>(out.as<T>() + n * C, rstd.as<float>(), x.as<T>() + n * C, weight.as<T>(), C,
                   eps, n);
    });
  });
}

void residualRmsnormForward(const TensorDesc& residualOut, const TensorDesc& out,
                            const TensorDesc& rstd, const TensorDesc& x,
                            const TensorDesc& residual, const TensorDesc& weight, float eps) {
  int64_t C = x.lastDim(), N = x.rows();
  cpu::dispatchFloat(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::parallelFor(N, rowGrain(C), [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) {
        T* ro = residualOut.as<T>() + n * C;
        const T* xr = x.as<T>() + n * C;
        const T* rr = residual.as<T>() + n * C;
        for (int64_t c = 0; c < C; ++c) st(ro, c, ld(xr, c) + ld(rr, c));
        normRow<T>(out.as<T>() + n * C, rstd.as<float>(), ro, weight.as<T>(), C, eps, n);
      }
    });
  });
}

void rmsnormBackward(const TensorDesc& dx, const TensorDesc& dWeight, const TensorDesc& dOut,
                     const TensorDesc& x, const TensorDesc& weight, const TensorDesc& rstd) {
  int64_t C = x.lastDim(), N = x.rows();
  int64_t chunks = (N + kRowChunk - 1) / kRowChunk;
  std::vector<float> partial(static_cast<size_t>(chunks * C), 0.0f);
  cpu::dispatchFloat(x.dtype, [&](auto xt) {
    using T = decltype(xt);
    cpu::dispatchFloat(dOut.dtype, [&](auto gt) {
      using G = decltype(gt);
      cpu::dispatchFloat(dx.dtype, [&](auto dt) {
        using D = decltype(dt);
        cpu::parallelFor(chunks, 1, [&](int64_t cb, int64_t ce) {
          for (int64_t chunk = cb; chunk < ce; ++chunk) {
            float* pw = partial.data() + chunk * C;
            int64_t n1 = std::min(N, (chunk + 1) * kRowChunk);
            for (int64_t n = chunk * kRowChunk; n < n1; ++n) {
              const T* xr = x.as<T>() + n * C;
              const G* gr = dOut.as<G>() + n * C;
              D* dr = dx.as<D>() + n * C;
              const T* w = weight.as<T>();
              float r = rstd.as<float>()[n];
              float dot = 0;
              for (int64_t c = 0; c < C; ++c) dot += ld(gr, c) * ld(w, c) * ld(xr, c);
              float k = r * r * r * dot / static_cast<float>(C);
              for (int64_t c = 0; c < C; ++c) {
                float xv = ld(xr, c), gv = ld(gr, c);
                st(dr, c, ld(dr, c) + r * gv * ld(w, c) - k * xv);
                pw[c] += gv * xv * r;
              }
            }
          }
        });
      });
    });
  });
  float* dw = dWeight.as<float>();
  for (int64_t chunk = 0; chunk < chunks; ++chunk)
    for (int64_t c = 0; c < C; ++c) dw[c] += partial[static_cast<size_t>(chunk * C + c)];
}

void rope(const TensorDesc& out, const TensorDesc& x, float base, int64_t positionOffset,
          bool inverse) {
  int64_t B = x.shape[0], T = x.shape[1], H = x.shape[2], D = x.shape[3], half = D / 2;
  // cos/sin table in f32 as Hugging Face computes it: inv_freq = 1 / base^(2i/D), angle = pos * inv_freq.
  std::vector<float> cs(static_cast<size_t>(T * half)), sn(static_cast<size_t>(T * half));
  for (int64_t i = 0; i < half; ++i) {
    float invFreq = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(D));
    for (int64_t t = 0; t < T; ++t) {
      float angle = static_cast<float>(t + positionOffset) * invFreq;
      cs[static_cast<size_t>(t * half + i)] = std::cos(angle);
      sn[static_cast<size_t>(t * half + i)] = std::sin(angle);
    }
  }
  float sign = inverse ? -1.0f : 1.0f;
  cpu::dispatchFloat(x.dtype, [&](auto tag) {
    using E = decltype(tag);
    cpu::parallelFor(B * T * H, 64, [&](int64_t b0, int64_t e0) {
      for (int64_t row = b0; row < e0; ++row) {
        int64_t t = (row / H) % T;
        const E* xr = x.as<E>() + row * D;
        E* orow = out.as<E>() + row * D;
        for (int64_t i = 0; i < half; ++i) {
          float c = cs[static_cast<size_t>(t * half + i)], s = sign * sn[static_cast<size_t>(t * half + i)];
          float x1 = ld(xr, i), x2 = ld(xr, i + half);
          st(orow, i, x1 * c - x2 * s);
          st(orow, i + half, x2 * c + x1 * s);
        }
      }
    });
  });
}

void swigluForward(const TensorDesc& out, const TensorDesc& gate, const TensorDesc& up) {
  cpu::dispatchFloat(gate.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::parallelFor(gate.numel, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float g = ld(gate.as<T>(), i), u = ld(up.as<T>(), i);
        st(out.as<T>(), i, g / (1.0f + std::exp(-g)) * u);
      }
    });
  });
}

void swigluBackward(const TensorDesc& dGate, const TensorDesc& dUp, const TensorDesc& dOut,
                    const TensorDesc& gate, const TensorDesc& up) {
  cpu::dispatchFloat(gate.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::parallelFor(gate.numel, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float g = ld(gate.as<T>(), i), u = ld(up.as<T>(), i), d = ld(dOut.as<T>(), i);
        float sig = 1.0f / (1.0f + std::exp(-g));
        st(dUp.as<T>(), i, d * g * sig);
        st(dGate.as<T>(), i, d * u * sig * (1.0f + g * (1.0f - sig)));
      }
    });
  });
}

void crossEntropy(const TensorDesc& losses, const TensorDesc& logits, const TensorDesc& targets,
                  float dlossScale, bool computeGrad) {
  int64_t V = logits.lastDim(), N = logits.rows();
  const int32_t* tg = targets.as<int32_t>();
  for (int64_t n = 0; n < N; ++n)
    if (tg[n] >= V)
      throw Error("targets[" + std::to_string(n) + "] = " + std::to_string(tg[n]) +
                  " is outside [0, " + std::to_string(V) + ") (negative targets are ignored)");
  // One exp per logit: exp(x - max) is kept in a row buffer for the gradient p = e / sum
  // (cpu/vexp.h: AVX2 where available).
  cpu::dispatchFloat(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::parallelFor(N, rowGrain(V), [&](int64_t b, int64_t e) {
      std::vector<float> xf(std::is_same_v<T, float> ? 0 : static_cast<size_t>(V)),
          ex(static_cast<size_t>(V));
      for (int64_t n = b; n < e; ++n) {
        T* row = logits.as<T>() + n * V;
        int32_t target = tg[n];
        if (target < 0) {
          losses.as<float>()[n] = 0.0f;
          if (computeGrad)
            for (int64_t j = 0; j < V; ++j) st(row, j, 0.0f);
          continue;
        }
        const float* x;
        if constexpr (std::is_same_v<T, float>) {
          x = row;
        } else {
          for (int64_t j = 0; j < V; ++j) xf[j] = ld(row, j);
          x = xf.data();
        }
        float mx = cpu::rowMax(x, V);
        float s = cpu::expShiftedSum(x, V, mx, ex.data());
        losses.as<float>()[n] = mx + std::log(s) - x[target];
        if (computeGrad) {
          float scale = dlossScale / s;
          for (int64_t j = 0; j < V; ++j) st(row, j, ex[j] * scale);
          st(row, target, (ex[target] / s - 1.0f) * dlossScale);
        }
      }
    });
  });
}

void argmax(const TensorDesc& out, const TensorDesc& logits) {
  int64_t V = logits.lastDim(), N = logits.rows();
  cpu::dispatchFloat(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::parallelFor(N, rowGrain(V), [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) {
        const T* row = logits.as<T>() + n * V;
        int64_t best = 0;
        float mx = ld(row, 0);
        // strictly greater keeps the first of equal maxima; the first NaN wins and stays
        for (int64_t j = 1; j < V && !std::isnan(mx); ++j) {
          float x = ld(row, j);
          if (x > mx || std::isnan(x)) {
            mx = x;
            best = j;
          }
        }
        out.as<int32_t>()[n] = static_cast<int32_t>(best);
      }
    });
  });
}

void adamw(const TensorDesc& param, const TensorDesc* master, const TensorDesc& grad,
           const TensorDesc& m, const TensorDesc& v, const AdamWOptions& o) {
  // PyTorch AdamW (decoupled weight decay, bias correction as in torch.optim.AdamW).
  float bc1 = 1.0f - static_cast<float>(std::pow(static_cast<double>(o.beta1), static_cast<double>(o.step)));
  float bc2 = 1.0f - static_cast<float>(std::pow(static_cast<double>(o.beta2), static_cast<double>(o.step)));
  float stepSize = o.lr / bc1, bc2Sqrt = std::sqrt(bc2), decay = 1.0f - o.lr * o.weightDecay;
  float* w = master ? master->as<float>() : param.as<float>();
  cpu::parallelFor(param.numel, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float g = grad.as<float>()[i] * o.gradScale;
      float mi = o.beta1 * m.as<float>()[i] + (1.0f - o.beta1) * g;
      float vi = o.beta2 * v.as<float>()[i] + (1.0f - o.beta2) * g * g;
      m.as<float>()[i] = mi;
      v.as<float>()[i] = vi;
      float wi = w[i] * decay;
      wi -= stepSize * mi / (std::sqrt(vi) / bc2Sqrt + o.eps);
      w[i] = wi;
      if (master) st(param.as<bf16_t>(), i, wi);
    }
  });
}

namespace {
constexpr int64_t kSumChunk = 1 << 16;
template <typename F>
double chunkedSum(int64_t n, F&& term) {
  int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  std::vector<double> part(static_cast<size_t>(chunks), 0.0);
  cpu::parallelFor(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      double s = 0;
      int64_t end = std::min(n, (c + 1) * kSumChunk);
      for (int64_t i = c * kSumChunk; i < end; ++i) s += term(i);
      part[static_cast<size_t>(c)] = s;
    }
  });
  double s = 0;
  for (double p : part) s += p;
  return s;
}
}  // namespace

double sumSquares(const std::vector<TensorDesc>& tensors) {
  double total = 0;
  for (const auto& t : tensors)
    cpu::dispatchFloat(t.dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* p = t.as<T>();
      total += chunkedSum(t.numel, [&](int64_t i) {
        double x = ld(p, i);
        return x * x;
      });
    });
  return total;
}

double sum(const TensorDesc& t) {
  double total = 0;
  cpu::dispatchFloat(t.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* p = t.as<T>();
    total = chunkedSum(t.numel, [&](int64_t i) { return static_cast<double>(ld(p, i)); });
  });
  return total;
}

void cast(const TensorDesc& out, const TensorDesc& x) {
  if (out.dtype == x.dtype) {
    if (out.data != x.data) std::memcpy(out.data, x.data, x.bytes());
    return;
  }
  if (x.dtype == DType::U16) {
    for (int64_t i = 0; i < x.numel; ++i) out.as<int32_t>()[i] = x.as<uint16_t>()[i];
    return;
  }
  cpu::dispatchFloat(x.dtype, [&](auto xt) {
    using X = decltype(xt);
    cpu::dispatchFloat(out.dtype, [&](auto ot) {
      using O = decltype(ot);
      cpu::parallelFor(x.numel, 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) st(out.as<O>(), i, ld(x.as<X>(), i));
      });
    });
  });
}

void fill(const TensorDesc& t, double value) {
  switch (t.dtype) {
    case DType::F32: std::fill_n(t.as<float>(), t.numel, static_cast<float>(value)); break;
    case DType::BF16: std::fill_n(t.as<bf16_t>(), t.numel, f32ToBf16(static_cast<float>(value))); break;
    case DType::I32: std::fill_n(t.as<int32_t>(), t.numel, static_cast<int32_t>(value)); break;
    case DType::U16: std::fill_n(t.as<uint16_t>(), t.numel, static_cast<uint16_t>(value)); break;
  }
}

void copy(const TensorDesc& dst, const TensorDesc& src) {
  if (dst.data != src.data) std::memcpy(dst.data, src.data, src.bytes());
}

void scale(const TensorDesc& t, float s) {
  cpu::dispatchFloat(t.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::parallelFor(t.numel, 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) st(t.as<T>(), i, ld(t.as<T>(), i) * s);
    });
  });
}

}  // namespace tk::backend
