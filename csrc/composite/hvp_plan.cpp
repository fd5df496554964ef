// ifru::hvp_plan from ATen ops alone: the fallback for every device without its own kernel (CPU
// has counting sorts in cpu/hvp_plan.cpp). Stable sorts group the interactions by user and list
// each row's pair slots in ascending order, as the counting sorts do, so both give the same plan.
#include <torch/library.h>

#include "../checks.h"
#include "../dispatch.h"

namespace ifru {
namespace {

HvpPlan hvp_plan(const at::Tensor& users, const at::Tensor& items, const c10::optional<at::Tensor>& neg_items,
                 const c10::optional<at::Tensor>& keep, int64_t num_nodes, const c10::optional<at::Tensor>& rowptr,
                 const c10::optional<at::Tensor>& col, int64_t num_layers) {
  check_hvp_plan_args(users, items, neg_items, keep, num_nodes, rowptr, col, num_layers);
  const auto options = users.options();
  const auto outer = keep.has_value() ? keep->contiguous() : at::ones({num_nodes}, options.dtype(at::kBool));
  auto inner = outer.clone();
  if (keep.has_value() && num_layers > 0) {  // the K-hop reach: row s joins when a column of it is in the set
    const auto degree = rowptr->slice(0, 1) - rowptr->slice(0, 0, num_nodes);
    const auto entry_row = at::repeat_interleave(at::arange(num_nodes, options), degree, 0, col->numel());
    for (int64_t hop = 0; hop < num_layers; ++hop) {
      inner = inner.index_fill(0, entry_row.masked_select(inner.index_select(0, *col)), true);
    }
  }
  const auto rows = outer.nonzero().squeeze(1);
  const auto inner_rows = inner.nonzero().squeeze(1);
  const auto position = at::where(inner, at::cumsum(inner, 0) - 1, -1);  // row -> index in inner_rows, or -1

  const auto endpoints = neg_items.has_value() ? at::stack({users, items, *neg_items}) : at::stack({users, items});
  const int64_t num_ends = endpoints.size(0);
  // grouped by user as the CPU's counting sort does: ascending user, then ascending index
  const auto active = inner.index_select(0, endpoints.reshape({-1})).view(endpoints.sizes()).any(0)
                          .nonzero().squeeze(1);
  const auto by_user = std::get<1>(at::sort(users.index_select(0, active), /*stable=*/true, /*dim=*/0,
                                            /*descending=*/false));
  const auto interactions = active.index_select(0, by_user);
  const auto global = endpoints.index_select(1, interactions);  // [E, a]
  const auto local = position.index_select(0, global.reshape({-1})).view(global.sizes());
  const auto ends = at::stack({global, local});

  // Slot 2p (pair p = (E−1)·j + q from its user) and 2p + 1 (from its item q), in slot order.
  const int64_t a = interactions.numel();
  const auto user = global[0].unsqueeze(1).expand({a, num_ends - 1});
  const auto item = global.slice(0, 1).t();
  const auto slot_row = at::stack({user, item}, 2).reshape({-1});  // [2 (E−1) a]
  const auto slot_local = at::stack({local[0].unsqueeze(1).expand({a, num_ends - 1}), local.slice(0, 1).t()}, 2)
                              .reshape({-1});
  const auto slot = (slot_local >= 0).nonzero().squeeze(1);
  const auto row_of_slot = slot_row.index_select(0, slot);
  const auto order = std::get<1>(at::sort(row_of_slot, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  auto incidence_rowptr = at::zeros({num_nodes + 1}, options);
  incidence_rowptr.slice(0, 1).copy_(at::cumsum(at::bincount(row_of_slot, {}, num_nodes), 0));
  return {rows, inner_rows, interactions, ends.contiguous(), incidence_rowptr, slot.index_select(0, order)};
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CompositeExplicitAutograd, m) { m.impl("hvp_plan", &hvp_plan); }

}  // namespace ifru
