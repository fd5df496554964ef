// CUDA registration of ifru::hvp: the device-generic composite (composite/hvp.cpp) around the
// two fused MF-HVP passes of hvp.cu, as cpu/hvp.cpp does on the CPU. Compiled only in CUDA builds.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../composite/hvp.h"
#include "launchers.h"

namespace ifru {
namespace {

// Interactions grouped by endpoint row, in interaction order as in cpu/hvp.cpp: slot s = 2j is
// interaction j seen from its user, s = 2j + 1 from its item. A stable sort of the interleaved
// endpoints u_0, i_0, u_1, i_1, … lists each row's slots in ascending order; slots whose row is
// outside keep are dropped. Returns (rowptr [N+1], slot [m]).
std::tuple<at::Tensor, at::Tensor> group_by_row(const at::Tensor& users,  // [n]
                                                const at::Tensor& items,  // [n]
                                                const at::Tensor& keep,   // [N] or undefined
                                                int64_t num_rows) {
  const auto endpoint_all = at::stack({users, items}, 1).reshape({-1});  // [2n]
  at::Tensor endpoint = endpoint_all;
  at::Tensor slot = at::arange(endpoint_all.numel(), users.options());
  if (keep.defined()) {
    slot = keep.index_select(0, endpoint_all).nonzero().squeeze(1);
    endpoint = endpoint_all.index_select(0, slot);
  }
  const auto order = std::get<1>(at::sort(endpoint, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  auto rowptr = at::zeros({num_rows + 1}, users.options());
  rowptr.slice(0, 1).copy_(at::cumsum(at::bincount(endpoint, {}, num_rows), 0));
  return {rowptr, slot.index_select(0, order).contiguous()};
}

at::Tensor mf_hvp_cuda(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users, const at::Tensor& items,
                       const at::Tensor& labels, const c10::optional<at::Tensor>& keep) {
  const int64_t n = users.numel();
  if (n == 0 || emb.numel() == 0) return at::zeros_like(emb, at::MemoryFormat::Contiguous);
  const c10::cuda::CUDAGuard device_guard(emb.device());
  const auto emb_c = emb.contiguous(), v_c = v.contiguous(), users_c = users.contiguous(),
             items_c = items.contiguous(), labels_c = labels.contiguous();
  const auto keep_c = keep.has_value() ? keep->contiguous() : at::Tensor();
  const int64_t num_rows = emb.size(0);
  const int64_t d = emb.size(1);
  const auto incidence = group_by_row(users_c, items_c, keep_c, num_rows);
  const at::Tensor& incidence_rowptr = std::get<0>(incidence);
  const at::Tensor& incidence_slot = std::get<1>(incidence);
  auto curvature = at::empty({n}, emb_c.options());  // (1/n)·ℓ''·a per interaction
  auto slope = at::empty({n}, emb_c.options());      // (1/n)·ℓ' per interaction
  auto out = at::empty({num_rows, d}, emb_c.options());  // every row is written by pass 2
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "ifru_mf_hvp_cuda", [&] {
    const bool* keep_ptr = keep_c.defined() ? keep_c.data_ptr<bool>() : nullptr;
    cudaError_t err = launch_mf_hvp_interactions<scalar_t>(
        emb_c.data_ptr<scalar_t>(), v_c.data_ptr<scalar_t>(), users_c.data_ptr<int64_t>(),
        items_c.data_ptr<int64_t>(), labels_c.data_ptr<scalar_t>(), keep_ptr, curvature.data_ptr<scalar_t>(),
        slope.data_ptr<scalar_t>(), n, d, stream);
    TORCH_CHECK(err == cudaSuccess, "ifru::hvp: CUDA kernel launch failed: ", cudaGetErrorString(err));
    err = launch_mf_hvp_rows<scalar_t>(emb_c.data_ptr<scalar_t>(), v_c.data_ptr<scalar_t>(),
                                       users_c.data_ptr<int64_t>(), items_c.data_ptr<int64_t>(), keep_ptr,
                                       incidence_rowptr.data_ptr<int64_t>(), incidence_slot.data_ptr<int64_t>(),
                                       curvature.data_ptr<scalar_t>(), slope.data_ptr<scalar_t>(),
                                       out.data_ptr<scalar_t>(), num_rows, d, stream);
    TORCH_CHECK(err == cudaSuccess, "ifru::hvp: CUDA kernel launch failed: ", cudaGetErrorString(err));
  });
  return out;
}

at::Tensor hvp_cuda(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users, const at::Tensor& items,
                    const at::Tensor& labels, const c10::optional<at::Tensor>& rowptr,
                    const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                    int64_t num_layers, double l2, const c10::optional<at::Tensor>& keep, bool symmetric) {
  return hvp_composite(&mf_hvp_cuda, emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep,
                       symmetric);
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CUDA, m) { m.impl("hvp", &hvp_cuda); }

}  // namespace ifru
