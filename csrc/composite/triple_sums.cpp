// ifru::triple_sums from ATen ops alone (gathers and index_add): the op on every device without
// its own kernel (CPU has a one-pass kernel in cpu/triple_sums.cpp).
#include <torch/library.h>

#include <tuple>

#include "../checks.h"

namespace ifru {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> triple_sums(const at::Tensor& table, const at::Tensor& users,
                                                           const at::Tensor& items, const at::Tensor& negatives,
                                                           const at::Tensor& labels,
                                                           const c10::optional<at::Tensor>& weight,
                                                           const at::Tensor& rowptr, const at::Tensor& col) {
  check_triple_sums_structure(table, users, items, negatives, labels, weight, rowptr, col);
  const int64_t num_rows = rowptr.numel() - 1;
  // The row of each entry [e], from the CSR's row lengths; its term and the column it sees it from.
  const auto entry_row = at::repeat_interleave(at::arange(num_rows, rowptr.options()), rowptr.diff(), 0, col.numel());
  const auto term = at::div(col, 3, "floor"), column = col.remainder(3);
  const auto user = table.index_select(0, users.index_select(0, term));          // [e, d]
  const auto difference = table.index_select(0, items.index_select(0, term)) -
                          table.index_select(0, negatives.index_select(0, term));  // [e, d]
  const auto p = at::sigmoid((user * difference).sum(1));                        // [e]
  // J: f_i − f_k at the user, f_u at the item, −f_u at the negative.
  const auto sign = at::where(column == 2, -1.0, 1.0).to(table.scalar_type()).unsqueeze(1);
  const auto jacobian = at::where((column == 0).unsqueeze(1), difference, sign * user);
  auto s = p - labels.index_select(0, term), s2 = s * s, c = p * (1 - p);
  if (weight.has_value()) {
    const auto w = weight->index_select(0, term);
    s = s * w;
    s2 = s2 * w;
    c = c * w;
  }
  const auto jacobian_squared = jacobian * jacobian;
  const auto zeros = [&] { return at::zeros({num_rows, table.size(1)}, table.options()); };
  auto sums = std::make_tuple(zeros().index_add_(0, entry_row, s.unsqueeze(1) * jacobian),
                              zeros().index_add_(0, entry_row, s2.unsqueeze(1) * jacobian_squared),
                              zeros().index_add_(0, entry_row, c.unsqueeze(1) * jacobian_squared));
  const auto& [gradient, squared, curvature] = sums;
  check_triple_sums_result(result_is_finite(gradient) && result_is_finite(squared) && result_is_finite(curvature),
                           table, weight);
  return sums;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CompositeExplicitAutograd, m) { m.impl("triple_sums", &triple_sums); }

}  // namespace ifru
