#include "hvp.h"

#include "../checks.h"
#include "../dispatch.h"

namespace ifru {
namespace {

// H v = Pᵀ H_MF(P E) (P v) + l2 v (P = identity without layers) with the keep masking, for the
// interactions (users, items, neg_items, labels) of `op`, whose arguments are already checked.
at::Tensor compose(const char* op, MfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v,
                   const at::Tensor& users, const at::Tensor& items, const c10::optional<at::Tensor>& neg_items,
                   const c10::optional<at::Tensor>& labels, const c10::optional<at::Tensor>& rowptr,
                   const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight, int64_t num_layers,
                   double l2, const c10::optional<at::Tensor>& keep, bool symmetric) {
  const auto kept_v = keep.has_value() ? v * keep->unsqueeze(1) : v;  // v_φ, zero elsewhere
  at::Tensor out;
  if (num_layers == 0) {
    out = mf_hvp(emb, v, users, items, neg_items, labels, keep);
  } else {
    // L(E) = L_MF(P E) with P linear, so H_E v = Pᵀ H_MF(P E) (P v) exactly.
    const auto propagated_emb = call_propagate(*rowptr, *col, *weight, emb, num_layers, symmetric);
    const auto propagated_v = call_propagate(*rowptr, *col, *weight, kept_v, num_layers, symmetric);
    const auto inner = mf_hvp(propagated_emb, propagated_v, users, items, neg_items, labels, c10::nullopt);
    if (symmetric) {
      out = call_propagate(*rowptr, *col, *weight, inner, num_layers, true);
    } else {
      const auto [t_rowptr, t_col, t_weight] = call_csr_transpose(*rowptr, *col, *weight);
      out = call_propagate(t_rowptr, t_col, t_weight, inner, num_layers, false);
    }
    if (keep.has_value()) out.mul_(keep->unsqueeze(1));
  }
  if (l2 != 0.0) out.add_(kept_v, l2);
  // Every input is finite (checked by the caller), so a non-finite H v is an overflow.
  check_finite_result(out, op, "emb, v or l2 is too large for this dtype (the logits or their products overflow)");
  return out;
}

}  // namespace

at::Tensor hvp_composite(MfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users,
                         const at::Tensor& items, const at::Tensor& labels, const c10::optional<at::Tensor>& rowptr,
                         const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                         int64_t num_layers, double l2, const c10::optional<at::Tensor>& keep, bool symmetric) {
  check_hvp_args(emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep);
  return compose("ifru::hvp", mf_hvp, emb, v, users, items, c10::nullopt, labels, rowptr, col, weight, num_layers,
                 l2, keep, symmetric);
}

at::Tensor bpr_hvp_composite(MfHvpKernel mf_hvp, const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users,
                             const at::Tensor& pos_items, const at::Tensor& neg_items,
                             const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                             const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                             const c10::optional<at::Tensor>& keep, bool symmetric) {
  check_bpr_hvp_args(emb, v, users, pos_items, neg_items, rowptr, col, weight, num_layers, l2, keep);
  return compose("ifru::bpr_hvp", mf_hvp, emb, v, users, pos_items, neg_items, c10::nullopt, rowptr, col, weight,
                 num_layers, l2, keep, symmetric);
}

}  // namespace ifru
