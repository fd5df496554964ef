// The device-generic part of ifru::hvp and ifru::bpr_hvp. A device supplies only the fused
// MF-HVP kernel; the LightGCN form Pᵀ H_MF(P E) P v is composed here from propagate calls.
#pragma once

#include <ATen/ATen.h>

namespace ifru {

// (1/n) Σ_j of the per-interaction MF Hessian applied to v (no l2 term), docs/ARCHITECTURE.md §3.
// Interaction j has the logit x_j = f_u·f_i (no neg_items; hvp) or x_j = f_u·f_i − f_u·f_k
// (bpr_hvp), u = users[j], i = items[j], k = neg_items[j], and the loss softplus(x_j) − y_j x_j
// with y_j = labels[j], or y_j = 1 without labels (BPR: softplus(−x_j)).
// emb, v [N, d]; users, items, neg_items int64 [n]; labels [n]; keep bool [N] or none: v is read
// as zero outside keep, rows outside keep are written as zero. Returns [N, d].
using MfHvpKernel = at::Tensor (*)(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users,
                                   const at::Tensor& items, const c10::optional<at::Tensor>& neg_items,
                                   const c10::optional<at::Tensor>& labels, const c10::optional<at::Tensor>& keep);

at::Tensor hvp_composite(MfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users,
                         const at::Tensor& items, const at::Tensor& labels, const c10::optional<at::Tensor>& rowptr,
                         const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                         int64_t num_layers, double l2, const c10::optional<at::Tensor>& keep, bool symmetric);

at::Tensor bpr_hvp_composite(MfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users,
                             const at::Tensor& pos_items, const at::Tensor& neg_items,
                             const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                             const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                             const c10::optional<at::Tensor>& keep, bool symmetric);

// The hvp and bpr_hvp kernels of a device are the composites around its fused kernel:
// m.impl("hvp", &hvp_with<&mf_hvp_cpu>) and m.impl("bpr_hvp", &bpr_hvp_with<&mf_hvp_cpu>).
template <MfHvpKernel mf_hvp>
at::Tensor hvp_with(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users, const at::Tensor& items,
                    const at::Tensor& labels, const c10::optional<at::Tensor>& rowptr,
                    const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                    int64_t num_layers, double l2, const c10::optional<at::Tensor>& keep, bool symmetric) {
  return hvp_composite(mf_hvp, emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep, symmetric);
}

template <MfHvpKernel mf_hvp>
at::Tensor bpr_hvp_with(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users,
                        const at::Tensor& pos_items, const at::Tensor& neg_items,
                        const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                        const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                        const c10::optional<at::Tensor>& keep, bool symmetric) {
  return bpr_hvp_composite(mf_hvp, emb, v, users, pos_items, neg_items, rowptr, col, weight, num_layers, l2, keep,
                           symmetric);
}

}  // namespace ifru
