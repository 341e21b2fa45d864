// CPU causal grouped-query attention, forward and backward, for reference and small models.
// Layout: q/out [B,T,H,D], k/v [B,T,Hkv,D], lse [B,H,T] (natural log of the softmax
// denominator, scaled scores). Per query row the scores live in a T-long scratch vector, never
// a T x T matrix. Backward recomputes probabilities from lse (as FlashAttention does) and is
// parallel over (batch, KV head) so each task owns its dk/dv slice: deterministic.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "../common/backend.h"
#include "access.h"
#include "parallel.h"

namespace tk::backend {
using cpu::ld;
using cpu::st;

namespace {
// One query row against keys/values 0..last (row j at k0/v0 + j * stride): scores, softmax and
// the weighted sum of V into acc (not yet divided by the sum), in the one order every CPU
// attention path uses, so full attention and a decoding step give the same bits. Returns
// {max score, sum of exp}.
template <typename E>
std::pair<float, float> attendRow(const float* qv, const E* k0, const E* v0, int64_t stride,
                                  int64_t last, int64_t D, float scale, float* s, float* acc) {
  float mx = -INFINITY;
  for (int64_t j = 0; j <= last; ++j) {
    const E* kr = k0 + j * stride;
    float dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += qv[d] * ld(kr, d);
    s[j] = dot * scale;
    mx = std::max(mx, s[j]);
  }
  float l = 0;
  std::fill(acc, acc + D, 0.0f);
  for (int64_t j = 0; j <= last; ++j) {
    float p = std::exp(s[j] - mx);
    l += p;
    const E* vr = v0 + j * stride;
    for (int64_t d = 0; d < D; ++d) acc[d] += p * ld(vr, d);
  }
  return {mx, l};
}
}  // namespace

void attentionForward(const TensorDesc& out, const TensorDesc& lse, const TensorDesc& q,
                      const TensorDesc& k, const TensorDesc& v, const AttentionOptions& o) {
  int64_t B = q.shape[0], T = q.shape[1], H = q.shape[2], D = q.shape[3], Hkv = k.shape[2];
  int64_t group = H / Hkv;
  cpu::dispatchFloat(q.dtype, [&](auto tag) {
    using E = decltype(tag);
    cpu::parallelFor(B * H, 1, [&](int64_t b0, int64_t e0) {
      std::vector<float> s(static_cast<size_t>(T)), acc(static_cast<size_t>(D)),
          qv(static_cast<size_t>(D));
      for (int64_t bh = b0; bh < e0; ++bh) {
        int64_t b = bh / H, h = bh % H, g = h / group;
        for (int64_t t = 0; t < T; ++t) {
          const E* qr = q.as<E>() + ((b * T + t) * H + h) * D;
          for (int64_t d = 0; d < D; ++d) qv[d] = ld(qr, d);
          int64_t last = o.causal ? t : T - 1;
          int64_t at = (b * T * Hkv + g) * D;
          auto [mx, l] = attendRow(qv.data(), k.as<E>() + at, v.as<E>() + at, Hkv * D, last, D,
                                   o.scale, s.data(), acc.data());
          E* orow = out.as<E>() + ((b * T + t) * H + h) * D;
          for (int64_t d = 0; d < D; ++d) st(orow, d, acc[d] / l);
          lse.as<float>()[(b * H + h) * T + t] = mx + std::log(l);
        }
      }
    });
  });
}

void attentionBackward(const TensorDesc& dq, const TensorDesc& dk, const TensorDesc& dv,
                       const TensorDesc& dOut, const TensorDesc& q, const TensorDesc& k,
                       const TensorDesc& v, const TensorDesc& out, const TensorDesc& lse,
                       const AttentionOptions& o) {
  int64_t B = q.shape[0], T = q.shape[1], H = q.shape[2], D = q.shape[3], Hkv = k.shape[2];
  int64_t group = H / Hkv;
  cpu::dispatchFloat(q.dtype, [&](auto tag) {
    using E = decltype(tag);
    cpu::parallelFor(B * Hkv, 1, [&](int64_t b0, int64_t e0) {
      std::vector<float> dkAcc(static_cast<size_t>(T * D)), dvAcc(static_cast<size_t>(T * D)),
          dqRow(static_cast<size_t>(D));
      for (int64_t bg = b0; bg < e0; ++bg) {
        int64_t b = bg / Hkv, g = bg % Hkv;
        std::fill(dkAcc.begin(), dkAcc.end(), 0.0f);
        std::fill(dvAcc.begin(), dvAcc.end(), 0.0f);
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
          for (int64_t t = 0; t < T; ++t) {
            int64_t qi = ((b * T + t) * H + h) * D;
            const E* qr = q.as<E>() + qi;
            const E* gr = dOut.as<E>() + qi;
            const E* orow = out.as<E>() + qi;
            float L = lse.as<float>()[(b * H + h) * T + t];
            float Di = 0;
            for (int64_t d = 0; d < D; ++d) Di += ld(gr, d) * ld(orow, d);
            int64_t last = o.causal ? t : T - 1;
            std::fill(dqRow.begin(), dqRow.end(), 0.0f);
            for (int64_t j = 0; j <= last; ++j) {
              int64_t ki = ((b * T + j) * Hkv + g) * D;
              const E* kr = k.as<E>() + ki;
              const E* vr = v.as<E>() + ki;
              float dot = 0, dpj = 0;
              for (int64_t d = 0; d < D; ++d) {
                dot += ld(qr, d) * ld(kr, d);
                dpj += ld(gr, d) * ld(vr, d);
              }
              float pj = std::exp(dot * o.scale - L);
              float ds = pj * (dpj - Di) * o.scale;
              for (int64_t d = 0; d < D; ++d) {
                dqRow[d] += ds * ld(kr, d);
                dkAcc[j * D + d] += ds * ld(qr, d);
                dvAcc[j * D + d] += pj * ld(gr, d);
              }
            }
            E* dqr = dq.as<E>() + qi;
            for (int64_t d = 0; d < D; ++d) st(dqr, d, dqRow[d]);
          }
        }
        for (int64_t j = 0; j < T; ++j) {
          int64_t ki = ((b * T + j) * Hkv + g) * D;
          for (int64_t d = 0; d < D; ++d) {
            st(dk.as<E>() + ki, d, dkAcc[j * D + d]);
            st(dv.as<E>() + ki, d, dvAcc[j * D + d]);
          }
        }
      }
    });
  });
}

// Decoding step: per row s, rotate q and kNew at the row's position exactly as rope() does,
// append k/v to the cache, then attend over the slot's keys 0..pos with the loop of
// attentionForward (same operations in the same order, so a decode step gives the bits of the
// last row of full causal attention over the same cache).
void decodeAttention(const TensorDesc& out, const TensorDesc& q, const TensorDesc& kNew,
                     const TensorDesc& vNew, const TensorDesc& kCache, const TensorDesc& vCache,
                     const TensorDesc& meta, float ropeBase, float scale) {
  int64_t S = q.shape[0], H = q.shape[1], D = q.shape[2], Hkv = kNew.shape[1];
  int64_t slots = kCache.shape[0], maxLen = kCache.shape[1], half = D / 2, group = H / Hkv;
  const int32_t* slotOf = meta.as<int32_t>();
  const int32_t* posOf = slotOf + S;
  for (int64_t r = 0; r < S; ++r) {
    if (slotOf[r] < 0 || slotOf[r] >= slots)
      throw Error("meta slot[" + std::to_string(r) + "] = " + std::to_string(slotOf[r]) +
                  " is outside [0, " + std::to_string(slots) + ")");
    if (posOf[r] < 0 || posOf[r] >= maxLen)
      throw Error("meta position[" + std::to_string(r) + "] = " + std::to_string(posOf[r]) +
                  " is outside [0, " + std::to_string(maxLen) + ")");
    for (int64_t o = 0; o < r; ++o)
      if (slotOf[o] == slotOf[r]) throw Error("meta: slot " + std::to_string(slotOf[r]) + " appears twice");
  }
  std::vector<float> invFreq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    invFreq[i] = 1.0f / std::pow(ropeBase, static_cast<float>(2 * i) / static_cast<float>(D));
  cpu::dispatchFloat(q.dtype, [&](auto tag) {
    using E = decltype(tag);
    // RoPE of one head row, rounded to E as rope() stores it.
    auto rotate = [&](const E* x, E* dst, int64_t pos) {
      for (int64_t i = 0; i < half; ++i) {
        float angle = static_cast<float>(pos) * invFreq[i];
        float c = std::cos(angle), sn = std::sin(angle);
        float x1 = ld(x, i), x2 = ld(x, i + half);
        st(dst, i, x1 * c - x2 * sn);
        st(dst, i + half, x2 * c + x1 * sn);
      }
    };
    for (int64_t r = 0; r < S; ++r) {
      int64_t base = (static_cast<int64_t>(slotOf[r]) * maxLen + posOf[r]) * Hkv * D;
      for (int64_t g = 0; g < Hkv; ++g) {
        rotate(kNew.as<E>() + (r * Hkv + g) * D, kCache.as<E>() + base + g * D, posOf[r]);
        const E* vr = vNew.as<E>() + (r * Hkv + g) * D;
        E* vc = vCache.as<E>() + base + g * D;
        for (int64_t d = 0; d < D; ++d) vc[d] = vr[d];
      }
    }
    cpu::parallelFor(S * H, 1, [&](int64_t b0, int64_t e0) {
      std::vector<E> qe(static_cast<size_t>(D));
      std::vector<float> qv(static_cast<size_t>(D)), acc(static_cast<size_t>(D)), s;
      for (int64_t sh = b0; sh < e0; ++sh) {
        int64_t r = sh / H, h = sh % H, g = h / group, pos = posOf[r];
        rotate(q.as<E>() + (r * H + h) * D, qe.data(), pos);
        for (int64_t d = 0; d < D; ++d) qv[d] = ld(qe.data(), d);
        const E* kb = kCache.as<E>() + static_cast<int64_t>(slotOf[r]) * maxLen * Hkv * D;
        const E* vb = vCache.as<E>() + static_cast<int64_t>(slotOf[r]) * maxLen * Hkv * D;
        s.resize(static_cast<size_t>(pos + 1));
        float l = attendRow(qv.data(), kb + g * D, vb + g * D, Hkv * D, pos, D, scale, s.data(),
                            acc.data())
                      .second;
        E* orow = out.as<E>() + (r * H + h) * D;
        for (int64_t d = 0; d < D; ++d) st(orow, d, acc[d] / l);
      }
    });
  });
}

}  // namespace tk::backend
