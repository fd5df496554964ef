// ifru::pair_sums from ATen ops alone (gathers and index_add): the op on every device without
// its own kernel (CPU has a one-pass kernel in cpu/pair_sums.cpp).
#include <torch/library.h>

#include <tuple>

#include "../checks.h"

namespace ifru {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> pair_sums(const at::Tensor& rows_table, const at::Tensor& table,
                                                         const at::Tensor& rowptr, const at::Tensor& col,
                                                         const at::Tensor& labels,
                                                         const c10::optional<at::Tensor>& weight) {
  check_pair_sums_structure(rows_table, table, rowptr, col, labels, weight);
  const int64_t num_rows = rows_table.size(0);
  // The row of each entry [e], from the CSR's row lengths.
  const auto entry_row = at::repeat_interleave(at::arange(num_rows, rowptr.options()), rowptr.diff(), 0, col.numel());
  const auto other = table.index_select(0, col);                                      // [e, d]
  const auto p = at::sigmoid((rows_table.index_select(0, entry_row) * other).sum(1));  // [e]
  auto s = p - labels, s2 = s * s, c = p * (1 - p);
  if (weight.has_value()) {
    s = s * *weight;
    s2 = s2 * *weight;
    c = c * *weight;
  }
  const auto other_squared = other * other;
  const auto zeros = [&] { return at::zeros({num_rows, table.size(1)}, table.options()); };
  auto sums = std::make_tuple(zeros().index_add_(0, entry_row, s.unsqueeze(1) * other),
                              zeros().index_add_(0, entry_row, s2.unsqueeze(1) * other_squared),
                              zeros().index_add_(0, entry_row, c.unsqueeze(1) * other_squared));
  const auto& [gradient, squared, curvature] = sums;
  check_pair_sums_result(result_is_finite(gradient) && result_is_finite(squared) && result_is_finite(curvature),
                         rows_table, table, weight);
  return sums;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CompositeExplicitAutograd, m) { m.impl("pair_sums", &pair_sums); }

}  // namespace ifru
