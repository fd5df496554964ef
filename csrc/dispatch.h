// Calls into `ifru` ops through the dispatcher, so composite code runs the kernel of
// whatever device its tensors live on.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ATen.h>

#include <tuple>

namespace ifru {

inline at::Tensor call_propagate(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& weight,
                                 const at::Tensor& x, int64_t num_layers, bool symmetric) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("ifru::propagate", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&, int64_t, bool)>();
  return op.call(rowptr, col, weight, x, num_layers, symmetric);
}

inline at::Tensor call_propagate_rows(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& weight,
                                      const at::Tensor& x, const c10::optional<at::Tensor>& x_rows,
                                      const c10::optional<at::Tensor>& out_rows, int64_t num_layers) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("ifru::propagate_rows", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&, int64_t)>();
  return op.call(rowptr, col, weight, x, x_rows, out_rows, num_layers);
}

inline std::tuple<at::Tensor, at::Tensor, at::Tensor> call_csr_transpose(const at::Tensor& rowptr,
                                                                         const at::Tensor& col,
                                                                         const at::Tensor& weight) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("ifru::csr_transpose", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                             const at::Tensor&)>();
  return op.call(rowptr, col, weight);
}

// ifru::hvp_plan's six tensors, in schema order.
using HvpPlan = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

inline HvpPlan call_hvp_plan(const at::Tensor& users, const at::Tensor& items,
                             const c10::optional<at::Tensor>& neg_items, const c10::optional<at::Tensor>& keep,
                             int64_t num_nodes, const c10::optional<at::Tensor>& rowptr,
                             const c10::optional<at::Tensor>& col, int64_t num_layers) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("ifru::hvp_plan", "")
                       .typed<HvpPlan(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                                      const c10::optional<at::Tensor>&, int64_t, const c10::optional<at::Tensor>&,
                                      const c10::optional<at::Tensor>&, int64_t)>();
  return op.call(users, items, neg_items, keep, num_nodes, rowptr, col, num_layers);
}

}  // namespace ifru
