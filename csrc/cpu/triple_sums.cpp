// CPU kernel of ifru::triple_sums: the per-row sums of BPR's triple terms that a segment of the
// training response reads (docs/ARCHITECTURE.md §3), in one pass over each row's entries
// (term_sums.h). An entry reads its term's three rows once for the logit and all three sums,
// where the per-term path gathered each Jacobian and its square as [s, d] tensors and scattered
// every product onto the rows. The terms' arrays are read at col[k] / 3: a caller that passes
// one copy of its term per entry, in entry order (terms.TermIncidence), makes those reads
// sequential.
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
// every sum is finite. Entry k of a row is term j = col[k] / 3 seen from its column col[k] % 3:
// x = f_u·f_i − f_u·f_k, J = f_i − f_k at the user, f_u at the item, −f_u at the negative.
template <typename scalar_t, int D>
bool triple_sums_kernel(const scalar_t* table,     // [L, d]
                        const int64_t* users,      // [s]
                        const int64_t* items,      // [s]
                        const int64_t* negatives,  // [s]
                        const scalar_t* labels,    // [s]
                        const scalar_t* weight,    // [s], or nullptr for 1
                        const int64_t* rowptr,     // [a + 1]
                        const int64_t* col,        // [e], 3 j + column
                        scalar_t* gradient, scalar_t* squared, scalar_t* curvature,  // [a, d] each
                        int64_t num_rows, int64_t runtime_d) {
  const int64_t d = D > 0 ? D : runtime_d;
  const int64_t entries = rowptr[num_rows];
  return term_row_sums<scalar_t, D, true>(num_rows, rowptr, d, gradient, squared, curvature, [&](int64_t, int64_t k) {
    if (k + kPrefetchAhead < entries) {  // the rows of a later entry's term (its own row is in cache)
      const int64_t later = col[k + kPrefetchAhead] / 3;
      prefetch_row(table + users[later] * d, d);
      prefetch_row(table + items[later] * d, d);
      prefetch_row(table + negatives[later] * d, d);
    }
    const int64_t j = col[k] / 3, column = col[k] % 3;
    const scalar_t* user = table + users[j] * d;
    const scalar_t* item = table + items[j] * d;
    const scalar_t* negative = table + negatives[j] * d;
    const scalar_t x = dot(user, item, d) - dot(user, negative, d);
    const scalar_t w = weight == nullptr ? scalar_t(1) : weight[j];
    if (column == 0) return term_coefficients<scalar_t>(x, labels[j], w, item, negative, false);
    return term_coefficients<scalar_t>(x, labels[j], w, user, nullptr, column == 2);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> triple_sums_cpu(const at::Tensor& table, const at::Tensor& users,
                                                               const at::Tensor& items, const at::Tensor& negatives,
                                                               const at::Tensor& labels,
                                                               const c10::optional<at::Tensor>& weight,
                                                               const at::Tensor& rowptr, const at::Tensor& col) {
  check_triple_sums_structure(table, users, items, negatives, labels, weight, rowptr, col);
  const int64_t num_rows = rowptr.numel() - 1, d = table.size(1);
  auto sums = std::make_tuple(at::empty({num_rows, d}, table.options()), at::empty({num_rows, d}, table.options()),
                              at::empty({num_rows, d}, table.options()));
  if (num_rows == 0 || d == 0) return sums;
  const auto table_c = table.contiguous(), users_c = users.contiguous(), items_c = items.contiguous(),
             negatives_c = negatives.contiguous(), labels_c = labels.contiguous(), rowptr_c = rowptr.contiguous(),
             col_c = col.contiguous();
  const auto weight_c = weight.has_value() ? weight->contiguous() : at::Tensor();
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(table.scalar_type(), "ifru_triple_sums_cpu", [&] {
    const auto kernel = with_width(d, [](auto width) { return &triple_sums_kernel<scalar_t, decltype(width)::value>; });
    finite = kernel(table_c.data_ptr<scalar_t>(), users_c.data_ptr<int64_t>(), items_c.data_ptr<int64_t>(),
                    negatives_c.data_ptr<int64_t>(), labels_c.data_ptr<scalar_t>(),
                    weight_c.defined() ? weight_c.data_ptr<scalar_t>() : nullptr, rowptr_c.data_ptr<int64_t>(),
                    col_c.data_ptr<int64_t>(), std::get<0>(sums).data_ptr<scalar_t>(),
                    std::get<1>(sums).data_ptr<scalar_t>(), std::get<2>(sums).data_ptr<scalar_t>(), num_rows, d);
  });
  check_triple_sums_result(finite, table, weight);
  return sums;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) { m.impl("triple_sums", &triple_sums_cpu); }

}  // namespace ifru
