// CPU kernel of ifru::csr_transpose: a counting sort by column, O(nnz + N), replacing the
// device-generic sort-based composite on CPU. Rows are scanned in ascending order, so each
// transposed row lists its source rows in ascending order (the same order as the composite).
#include <torch/library.h>

#include <vector>

#include "../checks.h"

namespace ifru {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> csr_transpose_cpu(const at::Tensor& rowptr,  // [N+1]
                                                                 const at::Tensor& col,     // [nnz]
                                                                 const at::Tensor& weight)  // [nnz]
{
  check_csr_transpose_args(rowptr, col, weight);
  const int64_t num_rows = rowptr.numel() - 1;
  const int64_t nnz = col.numel();
  const auto rowptr_c = rowptr.contiguous(), col_c = col.contiguous(), weight_c = weight.contiguous();
  auto t_rowptr = at::zeros({num_rows + 1}, rowptr.options());
  auto t_col = at::empty({nnz}, col.options());
  auto t_weight = at::empty({nnz}, weight.options());
  const int64_t* rp = rowptr_c.data_ptr<int64_t>();
  const int64_t* c = col_c.data_ptr<int64_t>();
  int64_t* t_rp = t_rowptr.data_ptr<int64_t>();
  for (int64_t e = 0; e < nnz; ++e) ++t_rp[c[e] + 1];
  for (int64_t r = 0; r < num_rows; ++r) t_rp[r + 1] += t_rp[r];
  std::vector<int64_t> fill(t_rp, t_rp + num_rows);
  std::vector<int64_t> destination(nnz);
  int64_t* t_c = t_col.data_ptr<int64_t>();
  for (int64_t r = 0; r < num_rows; ++r) {
    for (int64_t e = rp[r]; e < rp[r + 1]; ++e) {
      destination[e] = fill[c[e]]++;
      t_c[destination[e]] = r;
    }
  }
  AT_DISPATCH_ALL_TYPES_AND(at::kBool, weight.scalar_type(), "ifru_csr_transpose_cpu", [&] {
    const scalar_t* w = weight_c.data_ptr<scalar_t>();
    scalar_t* t_w = t_weight.data_ptr<scalar_t>();
    for (int64_t e = 0; e < nnz; ++e) t_w[destination[e]] = w[e];
  });
  return {t_rowptr, t_col, t_weight};
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) { m.impl("csr_transpose", &csr_transpose_cpu); }

}  // namespace ifru
