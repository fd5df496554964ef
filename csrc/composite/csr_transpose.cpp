// Aᵀ of a square CSR matrix from ATen ops alone: the fallback for every device without its
// own kernel (CPU has a counting sort in cpu/csr_transpose.cpp). A stable sort by column keeps
// each transposed row in ascending source-row order, which makes every kernel that sums
// along transposed rows deterministic.
#include <torch/library.h>

#include "../checks.h"

namespace ifru {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> csr_transpose(const at::Tensor& rowptr,  // [N+1]
                                                             const at::Tensor& col,     // [nnz]
                                                             const at::Tensor& weight)  // [nnz]
{
  check_csr_transpose_args(rowptr, col, weight);
  const int64_t num_rows = rowptr.numel() - 1;
  const auto degree = rowptr.slice(0, 1) - rowptr.slice(0, 0, num_rows);
  const auto row = at::repeat_interleave(at::arange(num_rows, rowptr.options()), degree, 0, col.numel());
  const auto perm = std::get<1>(at::sort(col, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  auto transposed_rowptr = at::zeros({num_rows + 1}, rowptr.options());
  transposed_rowptr.slice(0, 1).copy_(at::cumsum(at::bincount(col, {}, num_rows), 0));
  return {transposed_rowptr, row.index_select(0, perm), weight.index_select(0, perm)};
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CompositeExplicitAutograd, m) { m.impl("csr_transpose", &csr_transpose); }

}  // namespace ifru
