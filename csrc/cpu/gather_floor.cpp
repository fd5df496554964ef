// CPU kernel of ifru::_gather_floor, the benchmark floor of the HVPs (bench/test_bench_ops.py):
// Σ_k table[index[k]], the tightest loop that reads the rows an HVP reads, in the HVP's order,
// with the same prefetching and the same vectorisable inner loop over d. Not deterministic across
// thread counts (each thread sums its own share): a probe, not a result.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <mutex>
#include <vector>

#include "../checks.h"
#include "rows.h"
#include "widths.h"

namespace ifru {
namespace {

// Σ_{k ∈ [begin, end)} rows[idx[k]] into acc [d], the width fixed for D > 0 as in the HVP (widths.h).
template <typename scalar_t, int D>
void gather_rows(const scalar_t* rows, const int64_t* idx, int64_t runtime_d, int64_t begin, int64_t end,
                 scalar_t* __restrict__ acc) {
  const int64_t d = D > 0 ? D : runtime_d;
  for (int64_t k = begin; k < end; ++k) {
    if (k + kPrefetchAhead < end) prefetch_row(rows + idx[k + kPrefetchAhead] * d, d);
    const scalar_t* __restrict__ row = rows + idx[k] * d;
    for (int64_t w = 0; w < d; ++w) acc[w] += row[w];
  }
}

at::Tensor gather_floor_cpu(const at::Tensor& table, const at::Tensor& index) {
  check_gather_floor_args(table, index);
  const int64_t d = table.size(1), m = index.numel();
  auto out = at::zeros({d}, table.options());
  const auto table_c = table.contiguous(), index_c = index.contiguous();
  const int64_t* idx = index_c.data_ptr<int64_t>();
  std::mutex merge;
  AT_DISPATCH_FLOATING_TYPES(table.scalar_type(), "ifru_gather_floor_cpu", [&] {
    const scalar_t* rows = table_c.data_ptr<scalar_t>();
    scalar_t* total = out.data_ptr<scalar_t>();
    const auto gather = with_width(d, [](auto width) { return &gather_rows<scalar_t, decltype(width)::value>; });
    at::parallel_for(0, m, 2048, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> sum(d);
      gather(rows, idx, d, begin, end, sum.data());
      const std::lock_guard<std::mutex> lock(merge);
      for (int64_t w = 0; w < d; ++w) total[w] += sum[w];
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) { m.impl("_gather_floor", &gather_floor_cpu); }

}  // namespace ifru
