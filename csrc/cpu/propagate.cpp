// CPU kernel of ifru::propagate: out = (1/(K+1)) Σ_{k=0..K} A^k x on every row, the layer loop of
// propagate_layers.h.
#include <torch/library.h>

#include "../checks.h"
#include "propagate_layers.h"

namespace ifru {
namespace {

at::Tensor propagate_cpu(const at::Tensor& rowptr,  // [N+1] int64
                         const at::Tensor& col,     // [nnz] int64
                         const at::Tensor& weight,  // [nnz]
                         const at::Tensor& x,       // [N, d]
                         int64_t num_layers, bool /*symmetric: only the backward uses it*/) {
  const char* op = "ifru::propagate";
  check_propagate_structure(rowptr, col, weight, x, num_layers);
  const auto x_c = x.contiguous();
  if (num_layers == 0 || x.numel() == 0) {
    check_propagate_values(weight, x);
    return x_c.clone();
  }
  const auto rowptr_c = rowptr.contiguous();
  const auto col_c = col.contiguous();
  const auto weight_c = weight.contiguous();
  auto acc = at::empty_like(x_c);  // every row is written by the last layer
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ifru_propagate_cpu", [&] {
    finite = propagate_layers<scalar_t>(rowptr_c.data_ptr<int64_t>(), col_c.data_ptr<int64_t>(),
                                        weight_c.data_ptr<scalar_t>(), x_c.data_ptr<scalar_t>(), nullptr, x.size(0),
                                        nullptr, x.size(0), x.size(1), num_layers, acc.data_ptr<scalar_t>(),
                                        x_c.options());
  });
  // A finite result implies finite x and weight (x enters every row of it, and every entry of A
  // enters its row's first layer), so their checks run only when the result is not finite: the
  // error still names the bad input first, and a clean call reads x and weight once less.
  if (!finite) {
    check_propagate_values(weight, x);
    check_finite_result(acc, op, kPropagateOverflowHint);
  }
  return acc;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) { m.impl("propagate", &propagate_cpu); }

}  // namespace ifru
