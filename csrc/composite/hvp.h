// The device-generic part of ifru::hvp, ifru::bpr_hvp and ifru::hvp_planned. A device supplies
// only the fused MF-HVP kernel on a plan (ifru::hvp_plan); the stateless ops build the plan per
// call, and the LightGCN form Pᵀ H_MF(P E) P v is composed here from propagate calls.
#pragma once

#include <ATen/ATen.h>

namespace ifru {

// (1/n) Σ_j of the per-interaction MF Hessian applied to v (no l2 term), docs/ARCHITECTURE.md §3,
// over the plan's interactions j < a: ends [2, E, a] holds their rows ends[0][e][j] (e = 0 the user,
// e = 1 the item, e = 2 the negative item of a BPR triple) and those rows' positions in inner_rows
// [R'] (ends[1][e][j], −1 for a row outside inner_rows); incidence_rowptr [N+1] and incidence_slot [m]
// group the pairs by inner endpoint row (ifru::hvp_plan). Pair p = (E−1)·j + q joins the user with
// item q and enters the logit x_j with the sign + (q = 0) or − (q = 1); the loss is
// softplus(x_j) − y_j x_j, y_j = labels[j] ([a]) or 1 without labels; n = num_interactions.
// emb [N, d] (all rows); v [R', d] holds v on inner_rows (read as zero elsewhere). Returns (H v) on
// inner_rows, [R', d], summed per row in pair order. gauss_newton: the ℓ'' (Gauss–Newton) part
// only, without the ℓ' term (labels are then not read); gauss_newton_weights [a] (with gauss_newton
// only): each interaction's (1/n)·ℓ'' at emb (ifru::gauss_newton_weights), read instead of evaluated.
using PlannedMfHvpKernel = at::Tensor (*)(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& inner_rows,
                                          const at::Tensor& ends, const at::Tensor& incidence_rowptr,
                                          const at::Tensor& incidence_slot, const c10::optional<at::Tensor>& labels,
                                          int64_t num_interactions, bool gauss_newton,
                                          const c10::optional<at::Tensor>& gauss_newton_weights);

at::Tensor hvp_composite(PlannedMfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v,
                         const at::Tensor& users, const at::Tensor& items, const at::Tensor& labels,
                         const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                         const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                         const c10::optional<at::Tensor>& keep, bool symmetric);

at::Tensor bpr_hvp_composite(PlannedMfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v,
                             const at::Tensor& users, const at::Tensor& pos_items, const at::Tensor& neg_items,
                             const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                             const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                             const c10::optional<at::Tensor>& keep, bool symmetric);

at::Tensor hvp_planned_composite(PlannedMfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v,
                                 const at::Tensor& rows, const at::Tensor& inner_rows, const at::Tensor& ends,
                                 const at::Tensor& incidence_rowptr, const at::Tensor& incidence_slot,
                                 const c10::optional<at::Tensor>& labels, int64_t num_interactions,
                                 const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                                 const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                                 const c10::optional<at::Tensor>& propagated, bool symmetric, bool gauss_newton,
                                 const c10::optional<at::Tensor>& gauss_newton_weights);

// A device's hvp, bpr_hvp and hvp_planned kernels are the composites around its fused kernel:
// m.impl("hvp", &hvp_with<&planned_mf_hvp_cpu>), and likewise bpr_hvp_with and hvp_planned_with.
template <PlannedMfHvpKernel mf_hvp>
at::Tensor hvp_with(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users, const at::Tensor& items,
                    const at::Tensor& labels, const c10::optional<at::Tensor>& rowptr,
                    const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                    int64_t num_layers, double l2, const c10::optional<at::Tensor>& keep, bool symmetric) {
  return hvp_composite(mf_hvp, emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep, symmetric);
}

template <PlannedMfHvpKernel mf_hvp>
at::Tensor bpr_hvp_with(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users,
                        const at::Tensor& pos_items, const at::Tensor& neg_items,
                        const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                        const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                        const c10::optional<at::Tensor>& keep, bool symmetric) {
  return bpr_hvp_composite(mf_hvp, emb, v, users, pos_items, neg_items, rowptr, col, weight, num_layers, l2, keep,
                           symmetric);
}

template <PlannedMfHvpKernel mf_hvp>
at::Tensor hvp_planned_with(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& rows,
                            const at::Tensor& inner_rows, const at::Tensor& ends, const at::Tensor& incidence_rowptr,
                            const at::Tensor& incidence_slot, const c10::optional<at::Tensor>& labels,
                            int64_t num_interactions, const c10::optional<at::Tensor>& rowptr,
                            const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                            int64_t num_layers, double l2, const c10::optional<at::Tensor>& propagated,
                            bool symmetric, bool gauss_newton,
                            const c10::optional<at::Tensor>& gauss_newton_weights) {
  return hvp_planned_composite(mf_hvp, emb, v, rows, inner_rows, ends, incidence_rowptr, incidence_slot, labels,
                               num_interactions, rowptr, col, weight, num_layers, l2, propagated, symmetric,
                               gauss_newton, gauss_newton_weights);
}

}  // namespace ifru
