#include "hvp.h"

#include <c10/util/Exception.h>

#include <cmath>

#include "../checks.h"
#include "../dispatch.h"

namespace ifru {
namespace {

// x [N, d] on `rows` [R] (ascending, distinct): x itself when rows are all N rows.
at::Tensor on_rows(const at::Tensor& x, const at::Tensor& rows, int64_t num_nodes) {
  return rows.numel() == num_nodes ? x : x.index_select(0, rows);
}

// The [N, d] table that is x [R, d] on `rows` and zero elsewhere: x itself when rows are all N rows.
at::Tensor on_all_rows(const at::Tensor& x, const at::Tensor& rows, int64_t num_nodes) {
  if (rows.numel() == num_nodes) return x;
  return at::zeros({num_nodes, x.size(1)}, x.options()).index_copy_(0, rows, x);
}

// (H v)[rows] for v [R, d] on the plan's rows, whose arguments are already checked:
// H v = Pᵀ H_MF(P E) (P v) + l2 v (P = identity without layers), the MF part on the plan.
// `inputs_checked`: emb and v were checked finite, so a non-finite result is an overflow.
at::Tensor planned(const char* op, bool inputs_checked, PlannedMfHvpKernel mf_hvp, const at::Tensor& emb,
                   const at::Tensor& v, const at::Tensor& rows, const at::Tensor& inner_rows, const at::Tensor& ends,
                   const at::Tensor& incidence_rowptr, const at::Tensor& incidence_slot,
                   const c10::optional<at::Tensor>& labels, int64_t num_interactions,
                   const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                   const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                   const c10::optional<at::Tensor>& propagated, bool symmetric, bool gauss_newton,
                   const c10::optional<at::Tensor>& gauss_newton_weights) {
  const int64_t num_nodes = emb.size(0);
  at::Tensor out;
  if (num_layers == 0) {  // MF: the plan's inner rows are its rows
    out = mf_hvp(emb, v, inner_rows, ends, incidence_rowptr, incidence_slot, labels, num_interactions, gauss_newton,
                 gauss_newton_weights);
  } else {
    // L(E) = L_MF(P E) with P linear, so H_E v = Pᵀ H_MF(P E) (P v) exactly. P v is zero outside the
    // K-hop reach of rows (the plan's inner rows) and Pᵀ reads the inner product there only for rows:
    // propagate_rows reads v on rows and the inner product on the inner rows, and writes only the
    // rows asked for (no [N, d] table zero-filled and gathered from; the same sums).
    const auto propagated_emb =
        propagated.has_value() ? *propagated : call_propagate(*rowptr, *col, *weight, emb, num_layers, symmetric);
    const auto all = [num_nodes](const at::Tensor& listed) {
      return listed.numel() == num_nodes ? c10::optional<at::Tensor>() : c10::optional<at::Tensor>(listed);
    };
    const auto propagated_v = call_propagate_rows(*rowptr, *col, *weight, v, all(rows), all(inner_rows), num_layers);
    const auto inner = mf_hvp(propagated_emb, propagated_v, inner_rows, ends, incidence_rowptr, incidence_slot, labels,
                              num_interactions, gauss_newton, gauss_newton_weights);
    if (symmetric) {
      out = call_propagate_rows(*rowptr, *col, *weight, inner, all(inner_rows), all(rows), num_layers);
    } else {
      const auto [t_rowptr, t_col, t_weight] = call_csr_transpose(*rowptr, *col, *weight);
      out = call_propagate_rows(t_rowptr, t_col, t_weight, inner, all(inner_rows), all(rows), num_layers);
    }
  }
  if (l2 != 0.0) out.add_(v, l2);
  if (inputs_checked) {
    check_finite_result(out, op, "emb, v or l2 is too large for this dtype (the logits or their products overflow)");
  } else if (out.numel() > 0) {
    const auto [low, high] = at::aminmax(out);
    TORCH_CHECK_VALUE(std::isfinite(low.item<double>()) && std::isfinite(high.item<double>()), op,
                      ": the result holds NaN or infinity: emb, v, labels or propagated hold NaN or infinity in a "
                      "row the plan reads (their values are not checked per call), or they are too large for ",
                      out.scalar_type());
  }
  return out;
}

// The stateless ops: the plan of this call's interactions, then the planned product on all N rows.
at::Tensor stateless(const char* op, PlannedMfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v,
                     const at::Tensor& users, const at::Tensor& items, const c10::optional<at::Tensor>& neg_items,
                     const c10::optional<at::Tensor>& labels, const c10::optional<at::Tensor>& rowptr,
                     const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                     int64_t num_layers, double l2, const c10::optional<at::Tensor>& keep, bool symmetric) {
  const int64_t num_nodes = emb.size(0);
  const auto [rows, inner_rows, interactions, ends, incidence_rowptr, incidence_slot] =
      call_hvp_plan(users, items, neg_items, keep, num_nodes, rowptr, col, num_layers);
  c10::optional<at::Tensor> planned_labels;
  if (labels.has_value()) {
    planned_labels = labels->index_select(0, interactions);  // in the plan's order (grouped by user)
  }
  const auto out = planned(op, true, mf_hvp, emb, on_rows(v, rows, num_nodes), rows, inner_rows, ends,
                           incidence_rowptr, incidence_slot, planned_labels, users.numel(), rowptr, col, weight,
                           num_layers, l2, c10::nullopt, symmetric, false, c10::nullopt);
  return on_all_rows(out, rows, num_nodes);
}

}  // namespace

at::Tensor hvp_composite(PlannedMfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v,
                         const at::Tensor& users, const at::Tensor& items, const at::Tensor& labels,
                         const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                         const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                         const c10::optional<at::Tensor>& keep, bool symmetric) {
  check_hvp_args(emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep);
  return stateless("ifru::hvp", mf_hvp, emb, v, users, items, c10::nullopt, labels, rowptr, col, weight, num_layers,
                   l2, keep, symmetric);
}

at::Tensor bpr_hvp_composite(PlannedMfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v,
                             const at::Tensor& users, const at::Tensor& pos_items, const at::Tensor& neg_items,
                             const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                             const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                             const c10::optional<at::Tensor>& keep, bool symmetric) {
  check_bpr_hvp_args(emb, v, users, pos_items, neg_items, rowptr, col, weight, num_layers, l2, keep);
  return stateless("ifru::bpr_hvp", mf_hvp, emb, v, users, pos_items, neg_items, c10::nullopt, rowptr, col, weight,
                   num_layers, l2, keep, symmetric);
}

at::Tensor hvp_planned_composite(PlannedMfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v,
                                 const at::Tensor& rows, const at::Tensor& inner_rows, const at::Tensor& ends,
                                 const at::Tensor& incidence_rowptr, const at::Tensor& incidence_slot,
                                 const c10::optional<at::Tensor>& labels, int64_t num_interactions,
                                 const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                                 const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                                 const c10::optional<at::Tensor>& propagated, bool symmetric,
                                 bool gauss_newton, const c10::optional<at::Tensor>& gauss_newton_weights) {
  check_hvp_planned_args(emb, v, rows, inner_rows, ends, incidence_rowptr, incidence_slot, labels, num_interactions,
                         rowptr, col, weight, num_layers, l2, propagated, gauss_newton, gauss_newton_weights);
  return planned("ifru::hvp_planned", false, mf_hvp, emb, v, rows, inner_rows, ends, incidence_rowptr,
                 incidence_slot, labels, num_interactions, rowptr, col, weight, num_layers, l2, propagated,
                 symmetric, gauss_newton, gauss_newton_weights);
}

}  // namespace ifru
