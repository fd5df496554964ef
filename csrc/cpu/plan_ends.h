// A plan of ifru::hvp_plan as the CPU kernels read it (composite/hvp.h), and the per-interaction
// logistic quantities, written once so ifru::hvp_planned's pass 1 and ifru::gauss_newton_weights
// round them the same way (the weights the one returns are the bits the other computes).
#pragma once

#include <cstdint>

#include "rows.h"

namespace ifru {

// A plan's interactions (composite/hvp.h): endpoint e of interaction j is row `row(e, j)` of the
// table, at position `local(e, j)` of inner_rows (−1 outside). Pair p = kPairs·j + q joins the user
// (e = 0) with item q (e = 1 + q) and enters the logit with the sign +1 (q = 0) or −1 (q = 1).
template <int kPairs>
struct PlanEnds {
  static constexpr int kPairsOf = kPairs;
  const int64_t* rows;    // ends[0], [kPairs + 1, a]
  const int64_t* locals;  // ends[1], [kPairs + 1, a]
  int64_t a;
  int64_t row(int e, int64_t j) const { return rows[e * a + j]; }
  int64_t local(int e, int64_t j) const { return locals[e * a + j]; }
  // The endpoint across incidence slot s: pair s / 2 seen from its user (s even: its item) or from
  // its item (s odd: the user).
  static int other_end(int64_t s) { return (s & 1) ? 0 : 1 + static_cast<int>((s >> 1) % kPairs); }
};

// acc + term for pair slot 0, acc − term for slot 1 (the sign of the pair in the logit).
template <typename scalar_t>
inline scalar_t signed_add(scalar_t acc, scalar_t term, int slot) {
  return slot == 0 ? acc + term : acc - term;
}

// x_j = Σ_q ± f_u·f_{i_q}: interaction j's logit on table [N, d].
template <typename scalar_t, int kPairs>
inline scalar_t plan_logit(const scalar_t* table, const PlanEnds<kPairs>& ends, int64_t j, int64_t d) {
  const scalar_t* f_u = table + ends.row(0, j) * d;
  scalar_t x = 0;
  for (int q = 0; q < kPairs; ++q) x = signed_add(x, dot(f_u, table + ends.row(1 + q, j) * d, d), q);
  return x;
}

// (1/n)·ℓ''(x) = (1/n)·σ(1 − σ) for σ = σ(x).
template <typename scalar_t>
inline scalar_t gauss_newton_weight(scalar_t sigma, scalar_t inv_n) {
  return inv_n * sigma * (scalar_t(1) - sigma);
}

}  // namespace ifru
