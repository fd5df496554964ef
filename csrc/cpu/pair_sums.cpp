// CPU kernel of ifru::pair_sums: the per-row sums of dot-product pair terms that a segment of the
// training response reads (docs/ARCHITECTURE.md §3), in one pass over each row's entries
// (term_sums.h). Each entry reads its other row once for its logit and all three sums, where one
// sparse product per sum (and a sampled one for the logits) read it four times.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>

#include "../checks.h"
#include "rows.h"
#include "term_sums.h"
#include "widths.h"

namespace ifru {
namespace {

// D > 0 fixes the width at compile time (d == D, widths.h); D = 0 takes any d. Returns whether
// every sum is finite. Each entry is the pair x = own·other, J = other at the row.
template <typename scalar_t, int D>
bool pair_sums_kernel(const scalar_t* rows_table,  // [a, d]
                      const scalar_t* table,       // [L, d]
                      const int64_t* rowptr,       // [a + 1]
                      const int64_t* col,          // [e]
                      const scalar_t* labels,      // [e]
                      const scalar_t* weight,      // [e], or nullptr for 1
                      scalar_t* gradient, scalar_t* squared, scalar_t* curvature,  // [a, d] each
                      int64_t num_rows, int64_t runtime_d) {
  const int64_t d = D > 0 ? D : runtime_d;
  const int64_t entries = rowptr[num_rows];
  return term_row_sums<scalar_t, D, false>(num_rows, rowptr, d, gradient, squared, curvature, [&](int64_t r, int64_t k) {
    if (k + kPrefetchAhead < entries) prefetch_row(table + col[k + kPrefetchAhead] * d, d);
    const scalar_t* other = table + col[k] * d;
    return term_coefficients<scalar_t>(dot(rows_table + r * d, other, d), labels[k],
                                       weight == nullptr ? scalar_t(1) : weight[k], other, nullptr, false);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pair_sums_cpu(const at::Tensor& rows_table, const at::Tensor& table,
                                                             const at::Tensor& rowptr, const at::Tensor& col,
                                                             const at::Tensor& labels,
                                                             const c10::optional<at::Tensor>& weight) {
  check_pair_sums_structure(rows_table, table, rowptr, col, labels, weight);
  const int64_t num_rows = rows_table.size(0), d = table.size(1);
  auto sums = std::make_tuple(at::empty({num_rows, d}, table.options()), at::empty({num_rows, d}, table.options()),
                              at::empty({num_rows, d}, table.options()));
  if (num_rows == 0 || d == 0) return sums;
  const auto rows_c = rows_table.contiguous(), table_c = table.contiguous(), rowptr_c = rowptr.contiguous(),
             col_c = col.contiguous(), labels_c = labels.contiguous();
  const auto weight_c = weight.has_value() ? weight->contiguous() : at::Tensor();
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(table.scalar_type(), "ifru_pair_sums_cpu", [&] {
    const auto kernel = with_width(d, [](auto width) { return &pair_sums_kernel<scalar_t, decltype(width)::value>; });
    finite = kernel(rows_c.data_ptr<scalar_t>(), table_c.data_ptr<scalar_t>(), rowptr_c.data_ptr<int64_t>(),
                    col_c.data_ptr<int64_t>(), labels_c.data_ptr<scalar_t>(),
                    weight_c.defined() ? weight_c.data_ptr<scalar_t>() : nullptr,
                    std::get<0>(sums).data_ptr<scalar_t>(), std::get<1>(sums).data_ptr<scalar_t>(),
                    std::get<2>(sums).data_ptr<scalar_t>(), num_rows, d);
  });
  check_pair_sums_result(finite, rows_table, table, weight);
  return sums;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) { m.impl("pair_sums", &pair_sums_cpu); }

}  // namespace ifru
