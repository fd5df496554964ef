// The per-row loop shared by the CPU kernels of pair_sums and triple_sums: each row r of a CSR
// sums, over its entries k, three coefficients of the entry's loss term times the term's Jacobian
// J at the row (and its square), Σ s J, Σ s2 J⊙J and Σ c J⊙J. The kernels differ only in how an
// entry finds its term, its logit and its J (`entry`); rows are split among threads by their
// entries and each row is summed in entry order: deterministic, no atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "balance.h"
#include "rows.h"

namespace ifru {

// One entry's term as seen from its row: J = plus (−plus when negate), or plus − minus when minus
// is set (each a table row [d]); s = w ℓ', s2 = w ℓ'², c = w ℓ'' with the term's multiplicity w.
template <typename scalar_t>
struct TermEntry {
  scalar_t s, s2, c;
  const scalar_t* plus;
  const scalar_t* minus;
  bool negate;
};

// Whether no value of row [d] is NaN or infinity: an OR over the values' exponent bits, which
// vectorises (std::isfinite per value does not, and cost ~8% of triple_sums on BookCrossing).
template <typename scalar_t>
inline bool all_finite(const scalar_t* __restrict__ row, int64_t d) {
  using Bits = std::conditional_t<sizeof(scalar_t) == 4, uint32_t, uint64_t>;
  constexpr Bits kExponent = sizeof(scalar_t) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  Bits special = 0;  // non-zero once some value has every exponent bit set (NaN or infinity)
  for (int64_t i = 0; i < d; ++i) {
    Bits bits;
    std::memcpy(&bits, row + i, sizeof(bits));
    special |= Bits((bits & kExponent) == kExponent);
  }
  return special == 0;
}

enum class TermForm { kPlus, kNegated, kDifference };

// Entries whose coefficients (logit, σ, s, s2, c) are evaluated before any of them is added to the
// row's sums: the batch's gathers and logits overlap instead of each entry's additions waiting on
// its own logit. The sums are added in entry order as before (the same bits); one thread,
// interleaved process pairs: pair_sums at BookCrossing LightGCN's size ~15% and triple_sums ~20%
// faster (minima; docs/ARCHITECTURE.md §3).
constexpr int64_t kEntryBatch = 16;

// Adds one entry's s J, s2 J⊙J and c J⊙J to its row's sums. The rows are __restrict__ parameters
// (through a lambda's captures the compiler lost that they do not alias the sums: the pair
// kernel ran ~6% slower on BookCrossing).
template <TermForm kForm, typename scalar_t>
inline void add_term(const TermEntry<scalar_t>& e, int64_t d, scalar_t* __restrict__ gradient,
                     scalar_t* __restrict__ squared, scalar_t* __restrict__ curvature) {
  const scalar_t* __restrict__ plus = e.plus;
  const scalar_t* __restrict__ minus = e.minus;
  const scalar_t s = e.s, s2 = e.s2, c = e.c;
  for (int64_t i = 0; i < d; ++i) {
    const scalar_t t = kForm == TermForm::kPlus ? plus[i] : kForm == TermForm::kNegated ? -plus[i] : plus[i] - minus[i];
    const scalar_t tt = t * t;
    gradient[i] += s * t;
    squared[i] += s2 * tt;
    curvature[i] += c * tt;
  }
}

// D > 0 fixes the width at compile time (d == D, widths.h); D = 0 takes any d. kSignedForms: entries
// may take J = −plus or plus − minus (else always plus: the pair kernel, which without the other
// forms' branch ran ~2% faster on every row of BookCrossing, interleaved runs). entry(r, k) ->
// TermEntry<scalar_t> for entry k of row r (it may prefetch later entries' rows). Each row's sums
// are zeroed by the thread that sums them (no separate fill pass over fresh memory). Returns
// whether every sum is finite, checked row by row while the row is in cache.
template <typename scalar_t, int D, bool kSignedForms, typename Entry>
bool term_row_sums(int64_t num_rows, const int64_t* rowptr, int64_t runtime_d,
                   scalar_t* gradient, scalar_t* squared, scalar_t* curvature,  // [num_rows, d] each
                   const Entry& entry) {
  const int64_t d = D > 0 ? D : runtime_d;
  std::atomic<bool> finite{true};
  const auto work = [&](int64_t r) { return rowptr[r] + r; };  // entries of rows [0, r), plus one per row
  parallel_rows_by_work(num_rows, work, std::max<int64_t>(1, 16384 / d), [&](int64_t begin, int64_t end) {
    bool chunk_finite = true;
    for (int64_t r = begin; r < end; ++r) {
      scalar_t* __restrict__ gradient_r = gradient + r * d;  // fresh buffers: never alias the inputs
      scalar_t* __restrict__ squared_r = squared + r * d;
      scalar_t* __restrict__ curvature_r = curvature + r * d;
      for (int64_t i = 0; i < d; ++i) gradient_r[i] = squared_r[i] = curvature_r[i] = 0;
      for (int64_t first = rowptr[r]; first < rowptr[r + 1]; first += kEntryBatch) {
        const int64_t count = std::min<int64_t>(kEntryBatch, rowptr[r + 1] - first);
        TermEntry<scalar_t> batch[kEntryBatch];
        for (int64_t b = 0; b < count; ++b) batch[b] = entry(r, first + b);
        for (int64_t b = 0; b < count; ++b) {
          const TermEntry<scalar_t>& e = batch[b];
          const TermForm form = !kSignedForms ? TermForm::kPlus  // pairs: J is always the other row
                                : e.minus != nullptr ? TermForm::kDifference
                                : e.negate ? TermForm::kNegated : TermForm::kPlus;
          switch (form) {
            case TermForm::kPlus: add_term<TermForm::kPlus>(e, d, gradient_r, squared_r, curvature_r); break;
            case TermForm::kNegated: add_term<TermForm::kNegated>(e, d, gradient_r, squared_r, curvature_r); break;
            case TermForm::kDifference: add_term<TermForm::kDifference>(e, d, gradient_r, squared_r, curvature_r); break;
          }
        }
      }
      chunk_finite &= all_finite(gradient_r, d) && all_finite(squared_r, d) && all_finite(curvature_r, d);
    }
    if (!chunk_finite) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

// The coefficients of a term with logit x, label y and multiplicity w: p = σ(x), s = w (p − y),
// s2 = w (p − y)², c = w p (1 − p).
template <typename scalar_t>
inline TermEntry<scalar_t> term_coefficients(scalar_t x, scalar_t y, scalar_t w, const scalar_t* plus,
                                             const scalar_t* minus, bool negate) {
  const scalar_t p = logistic(x);
  const scalar_t slope = p - y;
  return {w * slope, w * slope * slope, w * p * (scalar_t(1) - p), plus, minus, negate};
}

}  // namespace ifru
