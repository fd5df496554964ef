// CPU kernel of ifru::pair_sums: the per-row sums of dot-product pair terms that a segment of the
// training response reads (docs/ARCHITECTURE.md §3), in one pass over each row's entries. Each
// entry reads its other row once for its logit and all three sums, where one sparse product per
// sum (and a sampled one for the logits) read it four times. Rows are split among threads by
// their entries and each row is summed in entry order: deterministic, no atomics.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>
#include <cmath>
#include <tuple>

#include "../checks.h"
#include "balance.h"
#include "rows.h"
#include "widths.h"

namespace ifru {
namespace {

// D > 0 fixes the width at compile time (d == D, widths.h); D = 0 takes any d. Each row's sums are
// zeroed by the thread that sums them (no separate fill pass over fresh memory). Returns whether
// every sum is finite, checked row by row while the row is in cache.
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
  std::atomic<bool> finite{true};
  const auto work = [&](int64_t r) { return rowptr[r] + r; };  // entries of rows [0, r), plus one per row
  parallel_rows_by_work(num_rows, work, std::max<int64_t>(1, 16384 / d), [&](int64_t begin, int64_t end) {
    bool chunk_finite = true;
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t* __restrict__ own = rows_table + r * d;
      scalar_t* __restrict__ gradient_r = gradient + r * d;  // fresh buffers: never alias the inputs
      scalar_t* __restrict__ squared_r = squared + r * d;
      scalar_t* __restrict__ curvature_r = curvature + r * d;
      for (int64_t i = 0; i < d; ++i) gradient_r[i] = squared_r[i] = curvature_r[i] = 0;
      for (int64_t k = rowptr[r]; k < rowptr[r + 1]; ++k) {
        if (k + kPrefetchAhead < entries) prefetch_row(table + col[k + kPrefetchAhead] * d, d);
        const scalar_t* __restrict__ other = table + col[k] * d;
        const scalar_t p = scalar_t(1) / (scalar_t(1) + std::exp(-dot(own, other, d)));
        const scalar_t w = weight == nullptr ? scalar_t(1) : weight[k];
        const scalar_t slope = p - labels[k];
        const scalar_t s = w * slope, s2 = w * slope * slope, c = w * p * (scalar_t(1) - p);
        for (int64_t i = 0; i < d; ++i) {
          const scalar_t t = other[i], tt = t * t;
          gradient_r[i] += s * t;
          squared_r[i] += s2 * tt;
          curvature_r[i] += c * tt;
        }
      }
      for (int64_t i = 0; i < d; ++i) {
        chunk_finite &= std::isfinite(gradient_r[i]) && std::isfinite(squared_r[i]) && std::isfinite(curvature_r[i]);
      }
    }
    if (!chunk_finite) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
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
