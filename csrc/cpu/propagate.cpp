// CPU kernel of ifru::propagate: out = (1/(K+1)) Σ_{k=0..K} A^k x, row-parallel CSR SpMM.
// Each output row is summed by one thread in CSR order: no atomics, deterministic.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../checks.h"

namespace ifru {
namespace {

// One layer for rows [begin, end): next = A cur (skipped when next is null) and
// acc = (acc + A cur) * acc_scale, so the layer mean needs no extra pass.
template <typename scalar_t>
void layer_rows(const int64_t* rowptr,    // [N+1]
                const int64_t* col,       // [nnz]
                const scalar_t* weight,   // [nnz]
                const scalar_t* cur,      // [N, d]
                scalar_t* next,           // [N, d] or nullptr
                scalar_t* acc,            // [N, d]
                scalar_t acc_scale, int64_t d, int64_t begin, int64_t end) {
  std::vector<scalar_t> buffer(d);
  scalar_t* __restrict__ row_sum = buffer.data();  // never aliases the inputs: lets the loops vectorise
  for (int64_t r = begin; r < end; ++r) {
    std::fill(row_sum, row_sum + d, scalar_t(0));
    for (int64_t e = rowptr[r]; e < rowptr[r + 1]; ++e) {
      const scalar_t w = weight[e];
      const scalar_t* __restrict__ src = cur + col[e] * d;
      for (int64_t c = 0; c < d; ++c) row_sum[c] += w * src[c];
    }
    scalar_t* __restrict__ acc_row = acc + r * d;
    for (int64_t c = 0; c < d; ++c) acc_row[c] = (acc_row[c] + row_sum[c]) * acc_scale;
    if (next != nullptr) std::copy(row_sum, row_sum + d, next + r * d);
  }
}

at::Tensor propagate_cpu(const at::Tensor& rowptr,  // [N+1] int64
                         const at::Tensor& col,     // [nnz] int64
                         const at::Tensor& weight,  // [nnz]
                         const at::Tensor& x,       // [N, d]
                         int64_t num_layers, bool /*symmetric: only the backward uses it*/) {
  check_propagate_args(rowptr, col, weight, x, num_layers);
  const auto rowptr_c = rowptr.contiguous();
  const auto col_c = col.contiguous();
  const auto weight_c = weight.contiguous();
  auto acc = x.contiguous().clone();
  if (num_layers == 0 || x.numel() == 0) return acc;

  const int64_t num_rows = x.size(0);
  const int64_t d = x.size(1);
  // Rows are uneven; aim for ~32k multiply-adds per task on average.
  const int64_t avg_row_work = std::max<int64_t>(1, (col.numel() / std::max<int64_t>(1, num_rows) + 1) * d);
  const int64_t grain = std::max<int64_t>(1, 32768 / avg_row_work);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ifru_propagate_cpu", [&] {
    at::Tensor cur = x.contiguous();
    at::Tensor next = at::empty_like(acc);
    for (int64_t layer = 1; layer <= num_layers; ++layer) {
      const bool last = layer == num_layers;
      const scalar_t acc_scale = last ? scalar_t(1) / scalar_t(num_layers + 1) : scalar_t(1);
      scalar_t* next_ptr = last ? nullptr : next.data_ptr<scalar_t>();
      at::parallel_for(0, num_rows, grain, [&](int64_t begin, int64_t end) {
        layer_rows<scalar_t>(rowptr_c.data_ptr<int64_t>(), col_c.data_ptr<int64_t>(), weight_c.data_ptr<scalar_t>(),
                             cur.data_ptr<scalar_t>(), next_ptr, acc.data_ptr<scalar_t>(), acc_scale, d, begin, end);
      });
      if (!last) {
        // The previous input becomes the next layer's output buffer (never x itself).
        at::Tensor spent = layer == 1 ? at::empty_like(acc) : cur;
        cur = next;
        next = spent;
      }
    }
  });
  // x and weight are finite (checked above), so a non-finite result is an overflow of A^k x.
  check_finite_result(acc, "ifru::propagate", kPropagateOverflowHint);
  return acc;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) { m.impl("propagate", &propagate_cpu); }

}  // namespace ifru
