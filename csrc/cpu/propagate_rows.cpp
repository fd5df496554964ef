// CPU kernel of ifru::propagate_rows: (P X)[out_rows] with X given on its rows x_rows (zero
// elsewhere), P = (1/(K+1)) Σ_{k=0..K} A^k: the layer loop of propagate_layers.h reading X through
// a row map and writing the asked rows only, where propagate would need X zero-filled to
// [N, d] and compute rows nobody reads (an unlearning request's product and right-hand sides).
#include <torch/library.h>

#include <vector>

#include "../checks.h"
#include "propagate_layers.h"

namespace ifru {
namespace {

at::Tensor propagate_rows_cpu(const at::Tensor& rowptr,                    // [N+1] int64
                              const at::Tensor& col,                       // [nnz] int64
                              const at::Tensor& weight,                    // [nnz]
                              const at::Tensor& x,                         // [R, d]: X on x_rows (or [N, d])
                              const c10::optional<at::Tensor>& x_rows,     // [R] int64, ascending
                              const c10::optional<at::Tensor>& out_rows,   // [M] int64
                              int64_t num_layers) {
  check_propagate_rows_structure(rowptr, col, weight, x, x_rows, out_rows, num_layers);
  const int64_t num_nodes = rowptr.numel() - 1, d = x.size(1);
  const int64_t num_out = out_rows.has_value() ? out_rows->numel() : num_nodes;
  auto out = at::empty({num_out, d}, x.options());  // every row is written by the last layer
  if (num_out == 0 || d == 0) return out;
  const auto x_c = x.contiguous(), rowptr_c = rowptr.contiguous(), col_c = col.contiguous(),
             weight_c = weight.contiguous();
  const auto out_rows_c = out_rows.has_value() ? out_rows->contiguous() : at::Tensor();
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ifru_propagate_rows_cpu", [&] {
    const scalar_t* rows = x_c.data_ptr<scalar_t>();
    // Row v of X: x's row where x_rows lists v, else one shared zero row.
    const std::vector<scalar_t> zero_row(d, scalar_t(0));
    std::vector<const scalar_t*> row_of;
    if (x_rows.has_value()) {
      row_of.assign(num_nodes, zero_row.data());
      const auto x_rows_c = x_rows->contiguous();
      const int64_t* listed = x_rows_c.data_ptr<int64_t>();
      for (int64_t i = 0; i < x_rows_c.numel(); ++i) row_of[listed[i]] = rows + i * d;
    }
    const int64_t* wanted = out_rows_c.defined() ? out_rows_c.data_ptr<int64_t>() : nullptr;
    scalar_t* result = out.data_ptr<scalar_t>();
    if (num_layers == 0) {  // P = I: the asked rows of X
      for (int64_t i = 0; i < num_out; ++i) {
        const int64_t r = wanted == nullptr ? i : wanted[i];
        const scalar_t* source = row_of.empty() ? rows + r * d : row_of[r];
        std::copy(source, source + d, result + i * d);
      }
      finite = result_is_finite(out);
      return;
    }
    finite = propagate_layers<scalar_t>(rowptr_c.data_ptr<int64_t>(), col_c.data_ptr<int64_t>(),
                                        weight_c.data_ptr<scalar_t>(), rows, row_of.empty() ? nullptr : row_of.data(),
                                        num_nodes, wanted, num_out, d, num_layers, result, x_c.options());
  });
  // A non-finite result comes from a non-finite x or weight (named first) or an overflow of A^k X.
  // Their values are checked only then: a clean call does not read x and weight once more
  // (BookCrossing LightGCN 1%: ~13 ms of a 270 ms request), and a value no listed row reads
  // cannot spoil the result.
  if (!finite) {
    check_propagate_rows_values(weight, x);
    check_finite_result(out, "ifru::propagate_rows", kPropagateOverflowHint);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) { m.impl("propagate_rows", &propagate_rows_cpu); }

}  // namespace ifru
