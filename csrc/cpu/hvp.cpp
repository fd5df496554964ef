// CPU kernel of ifru::hvp, ifru::bpr_hvp and ifru::hvp_planned: the fused MF Hessian-vector product
// on a plan of ifru::hvp_plan (docs/ARCHITECTURE.md §3). Pass 1 (parallel over the plan's
// interactions, whole users per thread) computes x = e_u·e_i, a = v_u·e_i + e_u·v_i (BPR: the
// difference of these over the positive and the negative item) and the two per-interaction
// coefficients (given the Gauss–Newton weights of ifru::gauss_newton_weights, a alone: x is fixed
// during a solve), and sums each inner user's row over its interactions, whose item rows it has
// just read; pass 2 (parallel over the plan's inner rows, split among threads by their item
// incidences) gathers each item row's incidences in pair order. Every row is summed by one thread
// in pair order, so the sums are deterministic and need no atomics.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

#include "../composite/hvp.h"
#include "balance.h"
#include "plan_ends.h"
#include "rows.h"
#include "widths.h"

namespace ifru {
namespace {

// Adds incidence (interaction j, pair q) of a row to that row's sum `row_sum` [d]: c_j e_o (+ s_j v_o
// where the other end o = endpoint e is inner and the product is exact), with the pair's sign. The
// one expression both passes use, so a row gets the same bits whichever pass sums it.
template <typename scalar_t, int kPairs, int D>
inline void add_incidence(scalar_t* __restrict__ row_sum, const scalar_t* curvature, const scalar_t* slope,
                          const PlanEnds<kPairs>& ends, const scalar_t* emb, const scalar_t* v, int64_t j, int q,
                          int e, int64_t runtime_d, bool gauss_newton) {
  const int64_t d = D > 0 ? D : runtime_d;
  const scalar_t c = signed_add(scalar_t(0), curvature[j], q);
  const scalar_t* __restrict__ e_o = emb + ends.row(e, j) * d;
  const int64_t local_o = gauss_newton ? -1 : ends.local(e, j);  // Gauss–Newton has no ℓ'·v term
  if (local_o >= 0) {
    const scalar_t sl = signed_add(scalar_t(0), slope[j], q);
    const scalar_t* __restrict__ v_o = v + local_o * d;
    for (int64_t w = 0; w < d; ++w) row_sum[w] += c * e_o[w] + sl * v_o[w];
  } else {
    for (int64_t w = 0; w < d; ++w) row_sum[w] += c * e_o[w];
  }
}

// D > 0 fixes the width at compile time (d == D); D = 0 takes any d.
template <typename scalar_t, int kPairs, int D>
void planned_mf_hvp_kernel(const scalar_t* emb,            // [N, d]
                           const scalar_t* v,              // [R', d], on inner_rows
                           const PlanEnds<kPairs>& ends,   // [2, kPairs + 1, a]
                           const scalar_t* labels,         // [a], or nullptr for labels 1
                           const scalar_t* weights,        // [a] (1/n)·ℓ'' (gauss_newton), or nullptr
                           const int64_t* inner_rows,      // [R']
                           const int64_t* incidence_rowptr,  // [N+1]
                           const int64_t* incidence_slot,  // [m]
                           scalar_t* out,                  // [R', d], every row written
                           int64_t num_inner, int64_t num_incidences, int64_t n, int64_t runtime_d,
                           bool gauss_newton) {
  const int64_t d = D > 0 ? D : runtime_d;
  const int64_t a = ends.a;
  const scalar_t inv_n = scalar_t(1) / scalar_t(n);
  // (1/n)·ℓ''·a and (1/n)·ℓ' per interaction, every entry written by pass 1 (not value-initialised:
  // that was a memset of 4–8 bytes per interaction on every product); Gauss–Newton has no slope.
  const std::unique_ptr<scalar_t[]> curvature(new scalar_t[a]);
  const std::unique_ptr<scalar_t[]> slope(gauss_newton ? nullptr : new scalar_t[a]);
  // Pass 1 also sums each inner user's row: the plan lists a user's interactions consecutively in
  // the order pass 2 would visit them, and their item rows are in cache from the dot products.
  // Each thread takes whole users (a range starts at a user's first interaction), so every user
  // row is summed by one thread in interaction order: the bits pass 2 would give.
  const auto user_start = [&](int64_t j) {  // the first interaction at or after j that starts a user
    while (j > 0 && j < a && ends.row(0, j) == ends.row(0, j - 1)) ++j;
    return j;
  };
  at::parallel_for(0, a, 2048, [&](int64_t chunk_begin, int64_t chunk_end) {
    const int64_t begin = user_start(chunk_begin), end = user_start(chunk_end);
    scalar_t user_sum_local[D > 0 ? D : 1];
    for (int64_t j = begin; j < end; ++j) {
      if (j + kPrefetchAhead < end) {
        const int64_t ahead = j + kPrefetchAhead;
        if (weights != nullptr) {  // a = Σ_q ±(v_u·e_i + e_u·v_i): an endpoint's e only where the other is inner
          __builtin_prefetch(weights + ahead);
          const int64_t local_u = ends.local(0, ahead);
          bool item_inner = false;
          for (int e = 1; e <= kPairs; ++e) {
            const int64_t local_i = ends.local(e, ahead);
            if (local_u >= 0) prefetch_row(emb + ends.row(e, ahead) * d, d);
            if (local_i >= 0) prefetch_row(v + local_i * d, d);
            item_inner = item_inner || local_i >= 0;
          }
          if (local_u >= 0) prefetch_row(v + local_u * d, d);
          if (item_inner) prefetch_row(emb + ends.row(0, ahead) * d, d);
        } else {
          for (int e = 0; e <= kPairs; ++e) {
            prefetch_row(emb + ends.row(e, ahead) * d, d);
            const int64_t local_ahead = ends.local(e, ahead);
            if (local_ahead >= 0) prefetch_row(v + local_ahead * d, d);
          }
        }
      }
      const scalar_t* e_u = emb + ends.row(0, j) * d;
      const int64_t local_u = ends.local(0, j);
      scalar_t acc = 0;
      for (int q = 0; q < kPairs; ++q) {
        const scalar_t* e_i = emb + ends.row(1 + q, j) * d;
        const int64_t local_i = ends.local(1 + q, j);
        // v is read as zero outside the inner rows
        acc = signed_add(acc, (local_u >= 0 ? dot(v + local_u * d, e_i, d) : 0) +
                                  (local_i >= 0 ? dot(e_u, v + local_i * d, d) : 0), q);
      }
      if (weights != nullptr) {  // the Gauss–Newton weights at emb, given: no logit to evaluate
        curvature[j] = weights[j] * acc;
      } else {
        const scalar_t sigma = logistic(plan_logit(emb, ends, j, d));
        curvature[j] = gauss_newton_weight(sigma, inv_n) * acc;
        if (!gauss_newton) slope[j] = inv_n * (sigma - (labels == nullptr ? scalar_t(1) : labels[j]));
      }
      if (local_u < 0) continue;
      // The user's row: its sum, in pair order, lives in a local array at a compiled width (out's
      // row otherwise) from its first interaction to its last, where it is stored.
      scalar_t* out_u = out + local_u * d;
      scalar_t* __restrict__ user_sum = D > 0 ? user_sum_local : out_u;
      const int64_t user = ends.row(0, j);
      if (j == begin || ends.row(0, j - 1) != user) {
        for (int64_t w = 0; w < d; ++w) user_sum[w] = 0;
      }
      for (int q = 0; q < kPairs; ++q) {
        add_incidence<scalar_t, kPairs, D>(user_sum, curvature.get(), slope.get(), ends, emb, v, j, q, 1 + q, d,
                                           gauss_newton);
      }
      if (D > 0 && (j + 1 == end || ends.row(0, j + 1) != user)) std::copy(user_sum, user_sum + d, out_u);
    }
  });
  // Pass 2 sums the item rows: a row's incidences are its pairs seen from its item end (odd slots;
  // even ones were its user end's, summed by pass 1). A row that is an inner user only is done; one
  // that is both (its id among the users and among the items) adds its item incidences to pass 1's
  // sum. Threads split the rows by their item incidences.
  const auto item_work = [&](int64_t row) {
    const int64_t first = incidence_rowptr[row], last = incidence_rowptr[row + 1];
    const bool items = first < last && ((incidence_slot[first] & 1) || (incidence_slot[last - 1] & 1));
    return items ? last - first : 0;
  };
  std::vector<int64_t> work_before(num_inner + 1, 0);  // item incidences of inner rows [0, t), plus one per row
  for (int64_t t = 0; t < num_inner; ++t) work_before[t + 1] = work_before[t] + item_work(inner_rows[t]) + 1;
  const auto work = [&](int64_t t) { return work_before[t]; };
  const int64_t min_work = std::max<int64_t>(1, 16384 / d);  // d > 0 here
  parallel_rows_by_work(num_inner, work, min_work, [&](int64_t begin, int64_t end) {
    // Row t's sum, in pair order, accumulates in `row_sum` and is stored once: a local array at a
    // compiled width (kept in registers), row t of out itself otherwise. No separate zero fill of out.
    scalar_t local_sum[D > 0 ? D : 1];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t first = incidence_rowptr[inner_rows[t]], last = incidence_rowptr[inner_rows[t] + 1];
      bool user_end = false, item_end = false;
      for (int64_t k = first; k < last && !(user_end && item_end); ++k) {
        (incidence_slot[k] & 1 ? item_end : user_end) = true;
      }
      if (user_end && !item_end) continue;  // pass 1 summed it
      scalar_t* out_t = out + t * d;
      // out is a fresh buffer: never aliases emb or v; out_t is the sum's home (pass 1's part of it
      // for a row that is both), not read through another pointer while row_sum is in use
      scalar_t* __restrict__ row_sum = D > 0 ? local_sum : out_t;
      if (user_end) {  // both ends: pass 1's sum of its user incidences first
        if (D > 0) std::copy(out_t, out_t + d, row_sum);
      } else {
        for (int64_t w = 0; w < d; ++w) row_sum[w] = 0;
      }
      for (int64_t k = first; k < last; ++k) {
        // The plan's entries of an incidence (its other end's row and position, its coefficients)
        // sit at a random interaction j: fetched twice as far ahead as the rows they locate, so the
        // row prefetch below finds them in cache instead of stalling on them (BookCrossing MF: the
        // product ~1.6× faster than with the rows alone prefetched).
        if (k + 2 * kPrefetchAhead < num_incidences) {
          const int64_t further = incidence_slot[k + 2 * kPrefetchAhead];
          const int64_t j_further = (further >> 1) / kPairs;
          const int e_further = PlanEnds<kPairs>::other_end(further);
          __builtin_prefetch(ends.rows + e_further * ends.a + j_further);
          __builtin_prefetch(curvature.get() + j_further);
          if (!gauss_newton) {  // the other end's position and slope are read only with ℓ'·v
            __builtin_prefetch(ends.locals + e_further * ends.a + j_further);
            __builtin_prefetch(slope.get() + j_further);
          }
        }
        if (k + kPrefetchAhead < num_incidences) {  // the next rows' incidences follow this row's
          const int64_t ahead = incidence_slot[k + kPrefetchAhead];
          const int64_t j_ahead = (ahead >> 1) / kPairs;
          const int e_ahead = PlanEnds<kPairs>::other_end(ahead);
          prefetch_row(emb + ends.row(e_ahead, j_ahead) * d, d);
          if (!gauss_newton) {
            const int64_t local_ahead = ends.local(e_ahead, j_ahead);
            if (local_ahead >= 0) prefetch_row(v + local_ahead * d, d);
          }
        }
        const int64_t s = incidence_slot[k];
        if (!(s & 1)) continue;  // a user incidence: in pass 1's sum
        add_incidence<scalar_t, kPairs, D>(row_sum, curvature.get(), slope.get(), ends, emb, v, (s >> 1) / kPairs,
                                           static_cast<int>((s >> 1) % kPairs), 0, d, gauss_newton);
      }
      if (D > 0) std::copy(row_sum, row_sum + d, out_t);
    }
  });
}

at::Tensor planned_mf_hvp_cpu(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& inner_rows,
                              const at::Tensor& ends, const at::Tensor& incidence_rowptr,
                              const at::Tensor& incidence_slot, const c10::optional<at::Tensor>& labels,
                              int64_t num_interactions, bool gauss_newton,
                              const c10::optional<at::Tensor>& gauss_newton_weights) {
  const int64_t num_inner = inner_rows.numel(), d = emb.size(1), a = ends.size(2);
  if (a == 0 || num_inner == 0 || d == 0) return at::zeros({num_inner, d}, emb.options());
  auto out = at::empty({num_inner, d}, emb.options());  // pass 2 writes every row
  const auto emb_c = emb.contiguous(), v_c = v.contiguous(), ends_c = ends.contiguous(),
             inner_c = inner_rows.contiguous(), rowptr_c = incidence_rowptr.contiguous(),
             slot_c = incidence_slot.contiguous();
  const auto labels_c = labels.has_value() ? labels->contiguous() : at::Tensor();
  const auto weights_c = gauss_newton_weights.has_value() ? gauss_newton_weights->contiguous() : at::Tensor();
  const int64_t* rows = ends_c.data_ptr<int64_t>();
  const int64_t* locals = rows + ends.size(1) * a;
  AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "ifru_planned_mf_hvp_cpu", [&] {
    const scalar_t* labels_ptr = labels_c.defined() ? labels_c.data_ptr<scalar_t>() : nullptr;
    const scalar_t* weights_ptr = weights_c.defined() ? weights_c.data_ptr<scalar_t>() : nullptr;
    auto run = [&](const auto& plan_ends) {
      // The common widths fixed at compile time (widths.h): the dot products and the row updates
      // unroll, the same operations in the same order (BookCrossing MF, d = 48: ~25% faster in
      // interleaved runs, the same bits).
      constexpr int kPairs = std::remove_reference_t<decltype(plan_ends)>::kPairsOf;
      const auto kernel =
          with_width(d, [](auto width) { return &planned_mf_hvp_kernel<scalar_t, kPairs, decltype(width)::value>; });
      kernel(emb_c.data_ptr<scalar_t>(), v_c.data_ptr<scalar_t>(), plan_ends, labels_ptr, weights_ptr,
                            inner_c.data_ptr<int64_t>(), rowptr_c.data_ptr<int64_t>(), slot_c.data_ptr<int64_t>(),
                            out.data_ptr<scalar_t>(), num_inner, incidence_slot.numel(), num_interactions, d,
                            gauss_newton);
    };
    if (ends.size(1) == 3) {
      run(PlanEnds<2>{rows, locals, a});
    } else {
      run(PlanEnds<1>{rows, locals, a});
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) {
  m.impl("hvp", &hvp_with<&planned_mf_hvp_cpu>);
  m.impl("bpr_hvp", &bpr_hvp_with<&planned_mf_hvp_cpu>);
  m.impl("hvp_planned", &hvp_planned_with<&planned_mf_hvp_cpu>);
}

}  // namespace ifru
