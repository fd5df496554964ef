// CUDA registration of ifru::importance: the hop loop of cpu/importance.cpp around the seed and
// hop kernels of importance.cu, with the top-fraction selection in ATen. Compiled only in CUDA
// builds.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "../checks.h"
#include "../dispatch.h"
#include "launchers.h"

namespace ifru {
namespace {

// Keeps round-half-up(ratio·|S|) members of S (member bool [N]) with the highest score; ties go
// to the lower index, as on the CPU: the candidates in ascending index order, then a stable sort
// by descending score.
void keep_top_fraction(at::Tensor& member, const at::Tensor& score, double ratio) {
  const auto candidates = member.nonzero().squeeze(1);
  const int64_t count = candidates.numel();
  const auto kept = std::min<int64_t>(count, static_cast<int64_t>(std::floor(ratio * count + 0.5)));
  if (kept == count) return;
  // Adding zero turns -0.0 into +0.0: equal under the CPU's comparison, distinct to a radix sort.
  const auto candidate_score = score.index_select(0, candidates).add(0.0);
  const auto order = std::get<1>(at::sort(candidate_score, /*stable=*/true, /*dim=*/0, /*descending=*/true));
  member.index_fill_(0, candidates.index_select(0, order.slice(0, kept)), false);
}

std::tuple<at::Tensor, at::Tensor> importance_cuda(const at::Tensor& rowptr,       // [N+1]
                                                   const at::Tensor& col,          // [nnz]
                                                   const at::Tensor& seed_counts,  // [N]
                                                   at::ArrayRef<double> ratios,    // [K+1]
                                                   bool symmetric)
{
  check_importance_args(rowptr, col, seed_counts, ratios);
  const c10::cuda::CUDAGuard device_guard(seed_counts.device());
  const int64_t num_nodes = seed_counts.numel();
  const auto rowptr_c = rowptr.contiguous();
  // Hops gather along the rows of Aᵀ: A's own when it is symmetric, none for K = 0. The
  // transpose's weight is not read: an uninitialised byte vector (bytes are not value-checked,
  // floats must be finite).
  at::Tensor in_rowptr, in_src;
  if (ratios.size() > 1 && symmetric) {
    in_rowptr = rowptr_c;
    in_src = col.contiguous();
  } else if (ratios.size() > 1) {
    std::tie(in_rowptr, in_src, std::ignore) =
        call_csr_transpose(rowptr_c, col, at::empty({col.numel()}, col.options().dtype(at::kByte)));
    in_rowptr = in_rowptr.contiguous();
    in_src = in_src.contiguous();
  }
  auto scores = seed_counts.contiguous().clone();
  auto member = at::empty({num_nodes}, seed_counts.options().dtype(at::kBool));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(seed_counts.scalar_type(), "ifru_importance_cuda", [&] {
    const cudaError_t err = launch_importance_seed<scalar_t>(rowptr_c.data_ptr<int64_t>(),
                                                             scores.data_ptr<scalar_t>(), member.data_ptr<bool>(),
                                                             num_nodes, stream);
    TORCH_CHECK(err == cudaSuccess, "ifru::importance: CUDA kernel launch failed: ", cudaGetErrorString(err));
  });
  keep_top_fraction(member, scores, ratios[0]);
  auto keep = member.clone();

  auto next = at::empty_like(scores);
  auto reached = at::empty_like(member);
  auto bad_node = at::empty({1}, rowptr_c.options());  // lowest reached node without row entries
  for (size_t hop = 1; hop < ratios.size(); ++hop) {
    bad_node.fill_(num_nodes);
    AT_DISPATCH_FLOATING_TYPES(seed_counts.scalar_type(), "ifru_importance_cuda", [&] {
      const cudaError_t err = launch_importance_hop<scalar_t>(
          rowptr_c.data_ptr<int64_t>(), in_rowptr.data_ptr<int64_t>(), in_src.data_ptr<int64_t>(),
          scores.data_ptr<scalar_t>(), member.data_ptr<bool>(), next.data_ptr<scalar_t>(), reached.data_ptr<bool>(),
          bad_node.data_ptr<int64_t>(), num_nodes, stream);
      TORCH_CHECK(err == cudaSuccess, "ifru::importance: CUDA kernel launch failed: ", cudaGetErrorString(err));
    });
    const int64_t bad = bad_node.item<int64_t>();
    TORCH_CHECK_VALUE(bad == num_nodes, "ifru::importance: node ", bad, " is a neighbour of a selected node but has "
                      "no row entries; the adjacency must list every edge in both directions");
    std::swap(scores, next);
    std::swap(member, reached);
    keep_top_fraction(member, scores, ratios[hop]);
    keep.logical_or_(member);
  }
  return {scores, keep};
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CUDA, m) { m.impl("importance", &importance_cuda); }

}  // namespace ifru
