// CPU kernel of ifru::gauss_newton_weights: each plan interaction's (1/n)·σ(x)(1 − σ(x)), one
// parallel pass over the plan's interactions with the rows prefetched ahead. The logit and the
// weight are plan_ends.h's, which ifru::hvp_planned's pass 1 evaluates without the weights: a
// product given these weights has the bits of one that evaluates them.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <type_traits>

#include "../checks.h"
#include "plan_ends.h"
#include "rows.h"
#include "widths.h"

namespace ifru {
namespace {

// D > 0 fixes the width at compile time (d == D); D = 0 takes any d.
template <typename scalar_t, int kPairs, int D>
void gauss_newton_weights_kernel(const scalar_t* table,          // [N, d]
                                 const PlanEnds<kPairs>& ends,   // [2, kPairs + 1, a]
                                 scalar_t* out,                  // [a]
                                 int64_t n, int64_t runtime_d) {
  const int64_t d = D > 0 ? D : runtime_d;
  const scalar_t inv_n = scalar_t(1) / scalar_t(n);
  at::parallel_for(0, ends.a, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      if (j + kPrefetchAhead < end) {
        for (int e = 0; e <= kPairs; ++e) prefetch_row(table + ends.row(e, j + kPrefetchAhead) * d, d);
      }
      out[j] = gauss_newton_weight(logistic(plan_logit(table, ends, j, d)), inv_n);
    }
  });
}

at::Tensor gauss_newton_weights_cpu(const at::Tensor& table, const at::Tensor& ends, int64_t num_interactions) {
  check_gauss_newton_weights_args(table, ends, num_interactions);
  const int64_t a = ends.size(2), d = table.size(1);
  auto out = at::empty({a}, table.options());
  if (a == 0) return out;
  const auto table_c = table.contiguous(), ends_c = ends.contiguous();
  const int64_t* rows = ends_c.data_ptr<int64_t>();
  const int64_t* locals = rows + ends.size(1) * a;
  AT_DISPATCH_FLOATING_TYPES(table.scalar_type(), "ifru_gauss_newton_weights_cpu", [&] {
    auto run = [&](const auto& plan_ends) {
      constexpr int kPairs = std::remove_reference_t<decltype(plan_ends)>::kPairsOf;
      const auto kernel = with_width(
          d, [](auto width) { return &gauss_newton_weights_kernel<scalar_t, kPairs, decltype(width)::value>; });
      kernel(table_c.data_ptr<scalar_t>(), plan_ends, out.data_ptr<scalar_t>(), num_interactions, d);
    };
    if (ends.size(1) == 3) {
      run(PlanEnds<2>{rows, locals, a});
    } else {
      run(PlanEnds<1>{rows, locals, a});
    }
  });
  check_gauss_newton_weights_result(out);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) { m.impl("gauss_newton_weights", &gauss_newton_weights_cpu); }

}  // namespace ifru
