// ifru::propagate_rows from ATen ops and ifru::propagate: the op on every device without its own
// kernel (CPU has one that reads and writes the listed rows only, cpu/propagate_rows.cpp).
#include <torch/library.h>

#include "../checks.h"
#include "../dispatch.h"

namespace ifru {
namespace {

at::Tensor propagate_rows(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& weight,
                          const at::Tensor& x, const c10::optional<at::Tensor>& x_rows,
                          const c10::optional<at::Tensor>& out_rows, int64_t num_layers) {
  check_propagate_rows_structure(rowptr, col, weight, x, x_rows, out_rows, num_layers);
  check_propagate_rows_values(weight, x);
  const int64_t num_nodes = rowptr.numel() - 1;
  // X [N, d]: x on x_rows, zero elsewhere
  const auto table = x_rows.has_value() ? at::zeros({num_nodes, x.size(1)}, x.options()).index_copy_(0, *x_rows, x)
                                        : x;
  const auto propagated = call_propagate(rowptr, col, weight, table, num_layers, false);  // a new tensor
  return out_rows.has_value() ? propagated.index_select(0, *out_rows) : propagated;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CompositeExplicitAutograd, m) { m.impl("propagate_rows", &propagate_rows); }

}  // namespace ifru
