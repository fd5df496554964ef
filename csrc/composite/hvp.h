// The device-generic part of ifru::hvp. A device supplies only the fused MF-HVP
// kernel; the LightGCN form Pᵀ H_MF(P E) P v is composed here from propagate calls.
#pragma once

#include <ATen/ATen.h>

namespace ifru {

// (1/n) Σ_j of the per-interaction MF Hessian applied to v (no l2 term), docs/ARCHITECTURE.md §3.
// emb, v [N, d]; users, items int64 [n]; labels [n]; keep bool [N] or none: v is read
// as zero outside keep, rows outside keep are written as zero. Returns [N, d].
using MfHvpKernel = at::Tensor (*)(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users,
                                   const at::Tensor& items, const at::Tensor& labels,
                                   const c10::optional<at::Tensor>& keep);

at::Tensor hvp_composite(MfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users,
                         const at::Tensor& items, const at::Tensor& labels, const c10::optional<at::Tensor>& rowptr,
                         const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                         int64_t num_layers, double l2, const c10::optional<at::Tensor>& keep, bool symmetric);

}  // namespace ifru
