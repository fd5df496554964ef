// CUDA registration of ifru::hvp and ifru::bpr_hvp: the device-generic composites
// (composite/hvp.cpp) around the two fused MF-HVP passes of hvp.cu, as cpu/hvp.cpp does on the
// CPU. Compiled only in CUDA builds.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../composite/hvp.h"
#include "launchers.h"

namespace ifru {
namespace {

// Pairs grouped by endpoint row, in pair order as in cpu/hvp.cpp. Interaction j is the pair
// p = j (user, items[j]), or with neg_items the pairs p = 2j (user, items[j]) and p = 2j + 1
// (user, neg_items[j]); slot s = 2p is pair p seen from its user, s = 2p + 1 from its item. A stable
// sort of the endpoints in slot order lists each row's slots in ascending order; slots whose row
// is outside keep are dropped. Returns (rowptr [N+1], slot [m]).
std::tuple<at::Tensor, at::Tensor> group_by_row(const at::Tensor& users,      // [n]
                                                const at::Tensor& items,      // [n]
                                                const at::Tensor& neg_items,  // [n] or undefined
                                                const at::Tensor& keep,       // [N] or undefined
                                                int64_t num_rows) {
  const auto endpoint_all = (neg_items.defined() ? at::stack({users, items, users, neg_items}, 1)
                                                 : at::stack({users, items}, 1))
                                .reshape({-1});  // [2n] or [4n], in slot order
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
                       const c10::optional<at::Tensor>& neg_items, const c10::optional<at::Tensor>& labels,
                       const c10::optional<at::Tensor>& keep) {
  const int64_t n = users.numel();
  if (n == 0 || emb.numel() == 0) return at::zeros_like(emb, at::MemoryFormat::Contiguous);
  const c10::cuda::CUDAGuard device_guard(emb.device());
  const auto emb_c = emb.contiguous(), v_c = v.contiguous(), users_c = users.contiguous(),
             items_c = items.contiguous();
  const auto neg_c = neg_items.has_value() ? neg_items->contiguous() : at::Tensor();
  const auto labels_c = labels.has_value() ? labels->contiguous() : at::Tensor();
  const auto keep_c = keep.has_value() ? keep->contiguous() : at::Tensor();
  const int64_t num_rows = emb.size(0);
  const int64_t d = emb.size(1);
  const auto incidence = group_by_row(users_c, items_c, neg_c, keep_c, num_rows);
  const at::Tensor& incidence_rowptr = std::get<0>(incidence);
  const at::Tensor& incidence_slot = std::get<1>(incidence);
  auto curvature = at::empty({n}, emb_c.options());  // (1/n)·ℓ''·a per interaction
  auto slope = at::empty({n}, emb_c.options());      // (1/n)·ℓ' per interaction
  auto out = at::empty({num_rows, d}, emb_c.options());  // every row is written by pass 2
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const char* op = neg_c.defined() ? "ifru::bpr_hvp" : "ifru::hvp";
  AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "ifru_mf_hvp_cuda", [&] {
    const bool* keep_ptr = keep_c.defined() ? keep_c.data_ptr<bool>() : nullptr;
    const int64_t* neg_ptr = neg_c.defined() ? neg_c.data_ptr<int64_t>() : nullptr;
    const scalar_t* labels_ptr = labels_c.defined() ? labels_c.data_ptr<scalar_t>() : nullptr;
    cudaError_t err = launch_mf_hvp_interactions<scalar_t>(
        emb_c.data_ptr<scalar_t>(), v_c.data_ptr<scalar_t>(), users_c.data_ptr<int64_t>(),
        items_c.data_ptr<int64_t>(), neg_ptr, labels_ptr, keep_ptr, curvature.data_ptr<scalar_t>(),
        slope.data_ptr<scalar_t>(), n, d, stream);
    TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
    err = launch_mf_hvp_rows<scalar_t>(emb_c.data_ptr<scalar_t>(), v_c.data_ptr<scalar_t>(),
                                       users_c.data_ptr<int64_t>(), items_c.data_ptr<int64_t>(), neg_ptr, keep_ptr,
                                       incidence_rowptr.data_ptr<int64_t>(), incidence_slot.data_ptr<int64_t>(),
                                       curvature.data_ptr<scalar_t>(), slope.data_ptr<scalar_t>(),
                                       out.data_ptr<scalar_t>(), num_rows, d, stream);
    TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CUDA, m) {
  m.impl("hvp", &hvp_with<&mf_hvp_cuda>);
  m.impl("bpr_hvp", &bpr_hvp_with<&mf_hvp_cuda>);
}

}  // namespace ifru
