// CUDA registration of ifru::hvp, ifru::bpr_hvp and ifru::hvp_planned: the device-generic
// composites (composite/hvp.cpp) around the two fused MF-HVP passes of hvp.cu on a plan (built by
// the composite ifru::hvp_plan, composite/hvp_plan.cpp), as cpu/hvp.cpp does on the CPU. Compiled
// only in CUDA builds.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../composite/hvp.h"
#include "launchers.h"

namespace ifru {
namespace {

at::Tensor planned_mf_hvp_cuda(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& inner_rows,
                               const at::Tensor& ends, const at::Tensor& incidence_rowptr,
                               const at::Tensor& incidence_slot, const c10::optional<at::Tensor>& labels,
                               int64_t num_interactions, bool gauss_newton,
                               const c10::optional<at::Tensor>& gauss_newton_weights) {
  const int64_t num_inner = inner_rows.numel(), d = emb.size(1), a = ends.size(2);
  if (a == 0 || num_inner == 0 || d == 0) return at::zeros({num_inner, d}, emb.options());
  const c10::cuda::CUDAGuard device_guard(emb.device());
  const auto emb_c = emb.contiguous(), v_c = v.contiguous(), ends_c = ends.contiguous(),
             inner_c = inner_rows.contiguous(), rowptr_c = incidence_rowptr.contiguous(),
             slot_c = incidence_slot.contiguous();
  const auto labels_c = labels.has_value() ? labels->contiguous() : at::Tensor();
  const auto weights_c = gauss_newton_weights.has_value() ? gauss_newton_weights->contiguous() : at::Tensor();
  const int num_ends = static_cast<int>(ends.size(1));
  auto curvature = at::empty({a}, emb_c.options());  // (1/n)·ℓ''·a per interaction
  auto slope = at::empty({a}, emb_c.options());      // (1/n)·ℓ' per interaction
  auto out = at::empty({num_inner, d}, emb_c.options());  // every row is written by pass 2
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const char* op = num_ends == 3 ? "ifru::bpr_hvp" : "ifru::hvp";
  AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "ifru_planned_mf_hvp_cuda", [&] {
    const scalar_t* labels_ptr = labels_c.defined() ? labels_c.data_ptr<scalar_t>() : nullptr;
    const scalar_t* weights_ptr = weights_c.defined() ? weights_c.data_ptr<scalar_t>() : nullptr;
    cudaError_t err = launch_mf_hvp_interactions<scalar_t>(
        emb_c.data_ptr<scalar_t>(), v_c.data_ptr<scalar_t>(), ends_c.data_ptr<int64_t>(), num_ends, labels_ptr,
        weights_ptr, curvature.data_ptr<scalar_t>(), slope.data_ptr<scalar_t>(), num_interactions, a, d, stream);
    TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
    if (gauss_newton) slope.zero_();  // Gauss–Newton: no ℓ' term (pass 2 then adds 0·v_o)
    err = launch_mf_hvp_rows<scalar_t>(emb_c.data_ptr<scalar_t>(), v_c.data_ptr<scalar_t>(),
                                       ends_c.data_ptr<int64_t>(), num_ends, inner_c.data_ptr<int64_t>(),
                                       rowptr_c.data_ptr<int64_t>(), slot_c.data_ptr<int64_t>(),
                                       curvature.data_ptr<scalar_t>(), slope.data_ptr<scalar_t>(),
                                       out.data_ptr<scalar_t>(), a, num_inner, d, stream);
    TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CUDA, m) {
  m.impl("hvp", &hvp_with<&planned_mf_hvp_cuda>);
  m.impl("bpr_hvp", &bpr_hvp_with<&planned_mf_hvp_cuda>);
  m.impl("hvp_planned", &hvp_planned_with<&planned_mf_hvp_cuda>);
}

}  // namespace ifru
