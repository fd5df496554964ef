// CPU kernel of ifru::propagate: out = (1/(K+1)) Σ_{k=0..K} A^k x, row-parallel CSR SpMM, the
// rows split among threads by their entries (balance.h), the layer mean summed in the last layer.
// Each output row is summed by one thread in CSR order: no atomics, deterministic.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../checks.h"
#include "balance.h"
#include "rows.h"
#include "widths.h"

namespace ifru {
namespace {

// Rows of `cur` are gathered in CSR order, at random: ask for them a few entries ahead so the
// loads overlap instead of stalling one after another (nearer than rows.h's kPrefetchAhead).
constexpr int64_t kLayerPrefetchAhead = 8;

// One layer for rows [begin, end): out = (Σ_b earlier_b + A cur) * scale per row. An intermediate
// layer has no earlier tables and scale 1 (out is the layer's output A^k x); the last one sums x
// and every kept layer output with its own product and scales by 1/(K+1), so the mean is formed
// once, in the last pass, instead of a running sum read and written by every layer.
// With `probe`, *probe = Σ 0·out over the rows written: 0 if they are all finite, else NaN (the
// overflow check without another pass). D > 0 fixes the width at compile time (d == D), so the
// row sum lives in registers; D = 0 takes any d.
template <typename scalar_t, int D>
void layer_rows(const int64_t* rowptr,                  // [N+1]
                const int64_t* col,                     // [nnz]
                const scalar_t* weight,                 // [nnz]
                const scalar_t* cur,                    // [N, d]
                const scalar_t* const* earlier,         // num_earlier × [N, d]
                int64_t num_earlier,
                scalar_t* out,                          // [N, d]
                scalar_t* probe,                        // one scalar or nullptr
                scalar_t scale, int64_t runtime_d, int64_t begin, int64_t end) {
  const int64_t d = D > 0 ? D : runtime_d;
  std::vector<scalar_t> buffer(D > 0 ? 0 : d);
  scalar_t fixed_sum[D > 0 ? D : 1];
  scalar_t* __restrict__ row_sum = D > 0 ? fixed_sum : buffer.data();  // aliases no input: vectorises
  const int64_t last_entry = rowptr[end];
  scalar_t finite = 0;
  for (int64_t r = begin; r < end; ++r) {
    std::fill(row_sum, row_sum + d, scalar_t(0));
    for (int64_t e = rowptr[r]; e < rowptr[r + 1]; ++e) {
      if (e + kLayerPrefetchAhead < last_entry) prefetch_row(cur + col[e + kLayerPrefetchAhead] * d, d);
      const scalar_t w = weight[e];
      const scalar_t* __restrict__ src = cur + col[e] * d;
      for (int64_t c = 0; c < d; ++c) row_sum[c] += w * src[c];
    }
    scalar_t* out_row = out + r * d;
    if (num_earlier == 0) {
      for (int64_t c = 0; c < d; ++c) out_row[c] = row_sum[c] * scale;
    } else {
      // x + A x + … + A^K x in layer order, as a running sum over the layers would add them
      const scalar_t* first = earlier[0] + r * d;
      for (int64_t c = 0; c < d; ++c) out_row[c] = first[c];
      for (int64_t b = 1; b < num_earlier; ++b) {
        const scalar_t* layer_row = earlier[b] + r * d;
        for (int64_t c = 0; c < d; ++c) out_row[c] += layer_row[c];
      }
      for (int64_t c = 0; c < d; ++c) out_row[c] = (out_row[c] + row_sum[c]) * scale;
    }
    if (probe != nullptr) {
      for (int64_t c = 0; c < d; ++c) finite += out_row[c] * scalar_t(0);
    }
  }
  if (probe != nullptr) *probe = finite;
}

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
  const int64_t num_rows = x.size(0);
  const int64_t d = x.size(1);
  const int64_t* rp = rowptr_c.data_ptr<int64_t>();
  // Work of rows [0, r): their entries plus one unit per row (its output row), in chunks of at
  // least ~32k multiply-adds.
  const auto work_before = [rp](int64_t r) { return rp[r] + r; };
  const int64_t min_work = std::max<int64_t>(1, 32768 / d);
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ifru_propagate_cpu", [&] {
    const auto rows_of_layer = with_width(d, [](auto width) { return &layer_rows<scalar_t, decltype(width)::value>; });
    // x and the outputs A x, …, A^{K−1} x of the intermediate layers, kept for the last layer's sum
    // (K − 1 tables beside x: as many as a running sum's two ping-pong buffers for K = 3).
    std::vector<at::Tensor> kept{x_c};  // owns the tables `earlier` points into
    std::vector<const scalar_t*> earlier{x_c.data_ptr<scalar_t>()};
    std::vector<scalar_t> probes(num_rows + 1, scalar_t(0));  // per chunk of the last layer, by its first row
    for (int64_t layer = 1; layer <= num_layers; ++layer) {
      const bool last = layer == num_layers;
      const scalar_t* cur = earlier.back();
      at::Tensor out = last ? acc : at::empty_like(acc);
      const scalar_t* const* sum_of = last ? earlier.data() : nullptr;
      const int64_t num_earlier = last ? static_cast<int64_t>(earlier.size()) : 0;
      const scalar_t scale = last ? scalar_t(1) / scalar_t(num_layers + 1) : scalar_t(1);
      parallel_rows_by_work(num_rows, work_before, min_work, [&](int64_t begin, int64_t end) {
        rows_of_layer(rp, col_c.data_ptr<int64_t>(), weight_c.data_ptr<scalar_t>(), cur, sum_of, num_earlier,
                      out.data_ptr<scalar_t>(), last ? &probes[begin] : nullptr, scale, d, begin, end);
      });
      if (!last) {
        kept.push_back(out);
        earlier.push_back(out.data_ptr<scalar_t>());
      }
    }
    for (const scalar_t probe : probes) finite = finite && probe == scalar_t(0);
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
