// Aᵀ of a square CSR matrix from ATen ops alone, so one implementation serves every device.
// A stable sort by column keeps each transposed row in ascending source-row order, which
// makes every kernel that sums along transposed rows deterministic.
#include <torch/library.h>

#include "../checks.h"

namespace ifru {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> csr_transpose(const at::Tensor& rowptr,  // [N+1]
                                                             const at::Tensor& col,     // [nnz]
                                                             const at::Tensor& weight)  // [nnz]
{
  const char* op = "ifru::csr_transpose";
  const int64_t num_rows = rowptr.numel() - 1;
  TORCH_CHECK(num_rows >= 0, op, ": rowptr must have at least one entry");
  check_csr(rowptr, col, num_rows, op, rowptr.device());
  TORCH_CHECK(weight.dim() == 1 && weight.numel() == col.numel(), op, ": weight must have shape [nnz] = [",
              col.numel(), "], got ", weight.sizes());
  TORCH_CHECK(weight.device() == rowptr.device(), op, ": weight is on ", weight.device(), ", rowptr on ",
              rowptr.device());

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
