// ifru::gauss_newton_weights from ATen ops alone (row gathers and a sigmoid): the op on every device
// without its own kernel (CPU has a one-pass kernel in cpu/gauss_newton_weights.cpp).
#include <torch/library.h>

#include "../checks.h"

namespace ifru {
namespace {

at::Tensor gauss_newton_weights(const at::Tensor& table, const at::Tensor& ends, int64_t num_interactions) {
  check_gauss_newton_weights_args(table, ends, num_interactions);
  const auto rows = ends[0];  // [E, a]
  const auto f_u = table.index_select(0, rows[0]);
  auto x = (f_u * table.index_select(0, rows[1])).sum(1);
  if (ends.size(1) == 3) x = x - (f_u * table.index_select(0, rows[2])).sum(1);  // BPR: f_u·(f_i − f_k)
  const auto sigma = at::sigmoid(x);
  const auto out = sigma * (1 - sigma) / static_cast<double>(num_interactions);
  check_gauss_newton_weights_result(out);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CompositeExplicitAutograd, m) { m.impl("gauss_newton_weights", &gauss_newton_weights); }

}  // namespace ifru
