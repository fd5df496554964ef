#include "checks.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace ifru {

void check_index_tensor(const at::Tensor& t, const char* op, const char* name, const at::Device& device) {
  TORCH_CHECK(t.dim() == 1, op, ": ", name, " must be 1-D, got shape ", t.sizes());
  TORCH_CHECK(t.scalar_type() == at::kLong, op, ": ", name, " must be int64, got ", t.scalar_type());
  TORCH_CHECK(t.device() == device, op, ": ", name, " is on ", t.device(), " but the op runs on ", device);
}

void check_index_range(const at::Tensor& t, int64_t upper, const char* op, const char* name) {
  if (t.numel() == 0) return;
  const auto [low, high] = at::aminmax(t);  // one pass; the offender is only searched on failure
  if (low.item<int64_t>() < 0 || high.item<int64_t>() >= upper) {
    const auto bad = at::logical_or(t < 0, t >= upper);
    const int64_t at_index = bad.to(at::kByte).argmax().item<int64_t>();
    TORCH_CHECK_VALUE(false, op, ": ", name, "[", at_index, "] = ", t[at_index].item<int64_t>(),
                      " is out of range [0, ", upper, ")");
  }
}

void check_csr(const at::Tensor& rowptr, const at::Tensor& col, int64_t num_rows, const char* op,
               const at::Device& device, int64_t num_cols) {
  check_index_tensor(rowptr, op, "rowptr", device);
  check_index_tensor(col, op, "col", device);
  TORCH_CHECK(rowptr.numel() == num_rows + 1, op, ": rowptr must have num_rows + 1 = ", num_rows + 1,
              " entries, got ", rowptr.numel());
  const int64_t first = rowptr[0].item<int64_t>();
  const int64_t last = rowptr[num_rows].item<int64_t>();
  TORCH_CHECK_VALUE(first == 0, op, ": rowptr[0] must be 0, got ", first);
  TORCH_CHECK_VALUE(last == col.numel(), op, ": rowptr[-1] must equal nnz = col.numel() = ", col.numel(),
                    ", got ", last);
  if (num_rows > 0) {
    const auto steps = rowptr.slice(0, 1) - rowptr.slice(0, 0, num_rows);
    if (steps.min().item<int64_t>() < 0) {
      const auto decreasing = steps < 0;
      const int64_t r = decreasing.to(at::kByte).argmax().item<int64_t>();
      TORCH_CHECK_VALUE(false, op, ": rowptr must be non-decreasing (a sorted CSR), but rowptr[", r, "] = ",
                        rowptr[r].item<int64_t>(), " > rowptr[", r + 1, "] = ", rowptr[r + 1].item<int64_t>());
    }
  }
  check_index_range(col, num_cols < 0 ? num_rows : num_cols, op, "col");
}

void check_float_tensor(const at::Tensor& t, at::IntArrayRef shape, at::ScalarType dtype, const char* op,
                        const char* name, const at::Device& device) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", name,
              " must be float32 or float64, got ", t.scalar_type());
  TORCH_CHECK(t.scalar_type() == dtype, op, ": ", name, " must have dtype ", dtype, " like the embeddings, got ",
              t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.device() == device, op, ": ", name, " is on ", t.device(), " but the op runs on ", device);
}

void check_finite(const at::Tensor& t, const char* op, const char* name) {
  if (t.numel() == 0) return;
  // min and max propagate NaN and are infinite iff some entry is: one pass, no mask tensor.
  const auto [low, high] = at::aminmax(t);
  const bool finite = std::isfinite(low.item<double>()) && std::isfinite(high.item<double>());
  TORCH_CHECK_VALUE(finite, op, ": ", name, " contains NaN or infinity");
}

void check_num_layers(int64_t num_layers, const char* op) {
  TORCH_CHECK_VALUE(num_layers >= 0 && num_layers <= kMaxLayers, op, ": num_layers must lie in [0, ", kMaxLayers,
                    "], got ", num_layers);
}

void check_labels(const at::Tensor& labels, const char* op) {
  if (labels.numel() == 0) return;
  const auto [low, high] = at::aminmax(labels);  // NaN propagates and fails both comparisons
  TORCH_CHECK_VALUE(low.item<double>() >= 0 && high.item<double>() <= 1, op,
                    ": labels must lie in [0, 1] (no NaN), got range [", low.item<double>(), ", ",
                    high.item<double>(), "]");
}

bool result_is_finite(const at::Tensor& result) {
  if (result.numel() == 0) return true;
  const auto [low, high] = at::aminmax(result);  // NaN propagates; infinite iff some entry is
  return std::isfinite(low.item<double>()) && std::isfinite(high.item<double>());
}

void check_finite_result(const at::Tensor& result, const char* op, const char* hint) {
  TORCH_CHECK_VALUE(result_is_finite(result), op, ": the result overflowed to NaN or infinity in ",
                    result.scalar_type(), " although every input is finite; ", hint);
}

}  // namespace ifru

namespace ifru {

void check_propagate_structure(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& weight,
                               const at::Tensor& x, int64_t num_layers) {
  const char* op = "ifru::propagate";
  TORCH_CHECK(x.dim() == 2, op, ": x must be 2-D [N, d], got shape ", x.sizes());
  check_num_layers(num_layers, op);
  check_csr(rowptr, col, x.size(0), op, x.device());
  check_float_tensor(x, x.sizes(), x.scalar_type(), op, "x", x.device());
  check_float_tensor(weight, {col.numel()}, x.scalar_type(), op, "weight", x.device());
}

void check_propagate_values(const at::Tensor& weight, const at::Tensor& x) {
  check_finite(weight, "ifru::propagate", "weight");
  check_finite(x, "ifru::propagate", "x");
}

void check_propagate_args(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& weight,
                          const at::Tensor& x, int64_t num_layers) {
  check_propagate_structure(rowptr, col, weight, x, num_layers);
  check_propagate_values(weight, x);
}

void check_propagate_rows_structure(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& weight,
                                    const at::Tensor& x, const c10::optional<at::Tensor>& x_rows,
                                    const c10::optional<at::Tensor>& out_rows, int64_t num_layers) {
  const char* op = "ifru::propagate_rows";
  TORCH_CHECK(x.dim() == 2, op, ": x must be 2-D [R, d], got shape ", x.sizes());
  const auto device = x.device();
  check_num_layers(num_layers, op);
  check_index_tensor(rowptr, op, "rowptr", device);
  TORCH_CHECK(rowptr.numel() >= 1, op, ": rowptr must hold N + 1 >= 1 entries, got none");
  const int64_t num_nodes = rowptr.numel() - 1;
  check_csr(rowptr, col, num_nodes, op, device);
  check_float_tensor(x, x.sizes(), x.scalar_type(), op, "x", device);
  check_float_tensor(weight, {col.numel()}, x.scalar_type(), op, "weight", device);
  if (x_rows.has_value()) {
    check_index_tensor(*x_rows, op, "x_rows", device);
    TORCH_CHECK(x_rows->numel() == x.size(0), op, ": x_rows must have one entry per row of x (", x.size(0),
                "), got ", x_rows->numel());
    check_index_range(*x_rows, num_nodes, op, "x_rows");
    if (x_rows->numel() > 1) {
      const auto steps = x_rows->slice(0, 1) - x_rows->slice(0, 0, x_rows->numel() - 1);
      if (steps.min().item<int64_t>() <= 0) {
        const int64_t i = (steps <= 0).to(at::kByte).argmax().item<int64_t>();
        TORCH_CHECK_VALUE(false, op, ": x_rows must be strictly ascending (distinct rows), but x_rows[", i, "] = ",
                          (*x_rows)[i].item<int64_t>(), " >= x_rows[", i + 1, "] = ", (*x_rows)[i + 1].item<int64_t>());
      }
    }
  } else {
    TORCH_CHECK(x.size(0) == num_nodes, op, ": x must have N = rowptr.numel() - 1 = ", num_nodes,
                " rows without x_rows, got ", x.size(0));
  }
  if (out_rows.has_value()) {
    check_index_tensor(*out_rows, op, "out_rows", device);
    check_index_range(*out_rows, num_nodes, op, "out_rows");
  }
}

void check_propagate_rows_values(const at::Tensor& weight, const at::Tensor& x) {
  check_finite(weight, "ifru::propagate_rows", "weight");
  check_finite(x, "ifru::propagate_rows", "x");
}

void check_keep(const at::Tensor& keep, int64_t num_nodes, const char* op, const at::Device& device) {
  TORCH_CHECK(keep.scalar_type() == at::kBool, op, ": keep must be bool, got ", keep.scalar_type());
  TORCH_CHECK(keep.dim() == 1 && keep.size(0) == num_nodes, op, ": keep must have shape [N] = [", num_nodes,
              "], got ", keep.sizes());
  TORCH_CHECK(keep.device() == device, op, ": keep is on ", keep.device(), " but the op runs on ", device);
}

void check_hessian_args(const char* op, const at::Tensor& emb, const at::Tensor& v,
                        const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                        const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                        const c10::optional<at::Tensor>& keep) {
  TORCH_CHECK(emb.dim() == 2, op, ": emb must be 2-D [N, d], got shape ", emb.sizes());
  const auto device = emb.device();
  const int64_t num_nodes = emb.size(0);
  check_float_tensor(emb, emb.sizes(), emb.scalar_type(), op, "emb", device);
  check_float_tensor(v, emb.sizes(), emb.scalar_type(), op, "v", device);
  check_num_layers(num_layers, op);
  TORCH_CHECK_VALUE(std::isfinite(l2), op, ": l2 must be finite, got ", l2);
  const int graph_parts = rowptr.has_value() + col.has_value() + weight.has_value();
  TORCH_CHECK(graph_parts == 0 || graph_parts == 3, op, ": rowptr, col and weight must be given together");
  TORCH_CHECK(num_layers == 0 || graph_parts == 3, op, ": num_layers = ", num_layers, " needs a graph (rowptr, col, weight)");
  if (graph_parts == 3) {
    check_csr(*rowptr, *col, num_nodes, op, device);
    check_float_tensor(*weight, {col->numel()}, emb.scalar_type(), op, "weight", device);
    check_finite(*weight, op, "weight");
  }
  if (keep.has_value()) check_keep(*keep, num_nodes, op, device);
  check_finite(emb, op, "emb");
  check_finite(v, op, "v");
}

void check_interaction_rows(std::initializer_list<NamedTensor> rows, int64_t num_nodes, const char* op,
                            const at::Device& device) {
  for (const auto& row : rows) check_index_tensor(row.tensor, op, row.name, device);
  const NamedTensor& first = *rows.begin();
  for (const auto& row : rows) {
    TORCH_CHECK(row.tensor.numel() == first.tensor.numel(), op, ": ", first.name, " and ", row.name,
                " must have equal length, got ", first.tensor.numel(), " and ", row.tensor.numel());
  }
  for (const auto& row : rows) check_index_range(row.tensor, num_nodes, op, row.name);
}

void check_hvp_args(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users, const at::Tensor& items,
                    const at::Tensor& labels, const c10::optional<at::Tensor>& rowptr,
                    const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                    int64_t num_layers, double l2, const c10::optional<at::Tensor>& keep) {
  const char* op = "ifru::hvp";
  check_hessian_args(op, emb, v, rowptr, col, weight, num_layers, l2, keep);
  check_interaction_rows({{"users", users}, {"items", items}}, emb.size(0), op, emb.device());
  check_float_tensor(labels, {users.numel()}, emb.scalar_type(), op, "labels", emb.device());
  check_labels(labels, op);
}

void check_bpr_hvp_args(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users,
                        const at::Tensor& pos_items, const at::Tensor& neg_items,
                        const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                        const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                        const c10::optional<at::Tensor>& keep) {
  const char* op = "ifru::bpr_hvp";
  check_hessian_args(op, emb, v, rowptr, col, weight, num_layers, l2, keep);
  check_interaction_rows({{"users", users}, {"pos_items", pos_items}, {"neg_items", neg_items}}, emb.size(0), op,
                         emb.device());
}

void check_hvp_plan_args(const at::Tensor& users, const at::Tensor& items, const c10::optional<at::Tensor>& neg_items,
                         const c10::optional<at::Tensor>& keep, int64_t num_nodes,
                         const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                         int64_t num_layers) {
  const char* op = "ifru::hvp_plan";
  const auto device = users.device();
  TORCH_CHECK_VALUE(num_nodes >= 0, op, ": num_nodes must be >= 0, got ", num_nodes);
  check_num_layers(num_layers, op);
  TORCH_CHECK(rowptr.has_value() == col.has_value(), op, ": rowptr and col must be given together");
  TORCH_CHECK(num_layers == 0 || rowptr.has_value(), op, ": num_layers = ", num_layers, " needs a graph (rowptr, col)");
  if (neg_items.has_value()) {
    check_interaction_rows({{"users", users}, {"items", items}, {"neg_items", *neg_items}}, num_nodes, op, device);
  } else {
    check_interaction_rows({{"users", users}, {"items", items}}, num_nodes, op, device);
  }
  if (keep.has_value()) check_keep(*keep, num_nodes, op, device);
  if (rowptr.has_value()) check_csr(*rowptr, *col, num_nodes, op, device);
}

namespace {

// ends [2, E, a] int64 on `device`, E = 2 or 3: a plan's endpoints (ifru::hvp_plan).
void check_plan_ends(const at::Tensor& ends, const char* op, const at::Device& device) {
  TORCH_CHECK(ends.dim() == 3 && ends.size(0) == 2 && (ends.size(1) == 2 || ends.size(1) == 3), op,
              ": ends must have shape [2, E, a] with E = 2 or 3 (a plan of ifru::hvp_plan), got ", ends.sizes());
  TORCH_CHECK(ends.scalar_type() == at::kLong, op, ": ends must be int64, got ", ends.scalar_type());
  TORCH_CHECK(ends.device() == device, op, ": ends is on ", ends.device(), " but the op runs on ", device);
}

}  // namespace

void check_hvp_planned_args(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& rows,
                            const at::Tensor& inner_rows, const at::Tensor& ends, const at::Tensor& incidence_rowptr,
                            const at::Tensor& incidence_slot, const c10::optional<at::Tensor>& labels,
                            int64_t num_interactions, const c10::optional<at::Tensor>& rowptr,
                            const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                            int64_t num_layers, double l2, const c10::optional<at::Tensor>& propagated,
                            bool gauss_newton, const c10::optional<at::Tensor>& gauss_newton_weights) {
  const char* op = "ifru::hvp_planned";
  TORCH_CHECK(emb.dim() == 2, op, ": emb must be 2-D [N, d], got shape ", emb.sizes());
  const auto device = emb.device();
  const int64_t num_nodes = emb.size(0), d = emb.size(1);
  check_float_tensor(emb, emb.sizes(), emb.scalar_type(), op, "emb", device);
  // The plan: shapes against each other and against emb, O(1); its contents are hvp_plan's, checked there.
  check_index_tensor(rows, op, "rows", device);
  check_index_tensor(inner_rows, op, "inner_rows", device);
  check_index_tensor(incidence_rowptr, op, "incidence_rowptr", device);
  check_index_tensor(incidence_slot, op, "incidence_slot", device);
  check_plan_ends(ends, op, device);
  TORCH_CHECK(incidence_rowptr.numel() == num_nodes + 1, op, ": the plan was built for a table of ",
              incidence_rowptr.numel() - 1, " rows (incidence_rowptr has ", incidence_rowptr.numel(),
              " entries), but emb has N = ", num_nodes, " rows: build the plan for this table");
  TORCH_CHECK(rows.numel() <= num_nodes && inner_rows.numel() <= num_nodes, op, ": the plan's rows (",
              rows.numel(), ") and inner_rows (", inner_rows.numel(), ") cannot exceed N = ", num_nodes);
  const int64_t planned_interactions = ends.size(2);
  TORCH_CHECK(v.dim() == 2 && v.size(0) == rows.numel() && v.size(1) == d, op, ": v must have shape [R, d] = [",
              rows.numel(), ", ", d, "] (v on the plan's rows), got ", v.sizes());
  check_float_tensor(v, v.sizes(), emb.scalar_type(), op, "v", device);
  if (labels.has_value()) {
    TORCH_CHECK(labels->dim() == 1 && labels->size(0) == planned_interactions, op,
                ": labels must have shape [a] = [", planned_interactions,
                "] (labels[interactions] of the plan), got ", labels->sizes());
    check_float_tensor(*labels, labels->sizes(), emb.scalar_type(), op, "labels", device);
  }
  TORCH_CHECK_VALUE(num_interactions >= planned_interactions, op, ": num_interactions = ", num_interactions,
                    " is smaller than the plan's ", planned_interactions,
                    " interactions: pass the length n of the interaction list the plan was built from");
  check_num_layers(num_layers, op);
  TORCH_CHECK_VALUE(std::isfinite(l2), op, ": l2 must be finite, got ", l2);
  const int graph_parts = rowptr.has_value() + col.has_value() + weight.has_value();
  TORCH_CHECK(graph_parts == 0 || graph_parts == 3, op, ": rowptr, col and weight must be given together");
  TORCH_CHECK(num_layers == 0 || graph_parts == 3, op, ": num_layers = ", num_layers, " needs a graph (rowptr, col, weight)");
  if (num_layers > 0) {  // shapes only: the structure was checked by hvp_plan
    check_index_tensor(*rowptr, op, "rowptr", device);
    check_index_tensor(*col, op, "col", device);
    TORCH_CHECK(rowptr->numel() == num_nodes + 1, op, ": rowptr must have N + 1 = ", num_nodes + 1,
                " entries, got ", rowptr->numel());
    check_float_tensor(*weight, {col->numel()}, emb.scalar_type(), op, "weight", device);
  } else {
    TORCH_CHECK(inner_rows.numel() == rows.numel(), op, ": the plan's inner_rows (", inner_rows.numel(),
                ") differ from its rows (", rows.numel(), "): it was built with a graph for num_layers >= 1; "
                "for num_layers = 0 build it without one");
  }
  if (propagated.has_value()) {
    TORCH_CHECK(num_layers > 0, op, ": propagated (F = P emb) is only read with num_layers >= 1; pass None");
    check_float_tensor(*propagated, emb.sizes(), emb.scalar_type(), op, "propagated", device);
  }
  if (gauss_newton_weights.has_value()) {
    TORCH_CHECK(gauss_newton, op, ": gauss_newton_weights weigh the Gauss–Newton part only: pass gauss_newton=True, "
                "or no weights");
    TORCH_CHECK(gauss_newton_weights->dim() == 1 && gauss_newton_weights->size(0) == planned_interactions, op,
                ": gauss_newton_weights must have shape [a] = [", planned_interactions,
                "] (ifru::gauss_newton_weights of the plan's ends), got ", gauss_newton_weights->sizes());
    check_float_tensor(*gauss_newton_weights, gauss_newton_weights->sizes(), emb.scalar_type(), op,
                       "gauss_newton_weights", device);
  }
  // One element read: the incidence list is the one incidence_rowptr indexes.
  const int64_t incidences = incidence_rowptr[num_nodes].item<int64_t>();
  TORCH_CHECK(incidences == incidence_slot.numel(), op, ": incidence_rowptr[N] = ", incidences,
              " but incidence_slot has ", incidence_slot.numel(), " entries: pass one plan's tensors together");
}

void check_gauss_newton_weights_args(const at::Tensor& table, const at::Tensor& ends, int64_t num_interactions) {
  const char* op = "ifru::gauss_newton_weights";
  TORCH_CHECK(table.dim() == 2, op, ": table must be 2-D [N, d], got shape ", table.sizes());
  check_float_tensor(table, table.sizes(), table.scalar_type(), op, "table", table.device());
  check_plan_ends(ends, op, table.device());
  TORCH_CHECK_VALUE(num_interactions >= std::max<int64_t>(ends.size(2), 1), op, ": num_interactions = ",
                    num_interactions, " must be positive and at least the plan's ", ends.size(2),
                    " interactions: pass the length n of the interaction list the plan was built from");
  check_index_range(ends[0].reshape(-1), table.size(0), op, "ends[0].flatten() (the plan's rows)");
}

void check_gauss_newton_weights_result(const at::Tensor& weights) {
  TORCH_CHECK_VALUE(result_is_finite(weights), "ifru::gauss_newton_weights: the weights hold NaN: table holds NaN or "
                    "infinity in a row the plan reads");
}

void check_gather_floor_args(const at::Tensor& table, const at::Tensor& index) {
  const char* op = "ifru::_gather_floor";
  TORCH_CHECK(table.dim() == 2, op, ": table must be 2-D [N, d], got shape ", table.sizes());
  check_float_tensor(table, table.sizes(), table.scalar_type(), op, "table", table.device());
  check_index_tensor(index, op, "index", table.device());
  check_index_range(index, table.size(0), op, "index");
}

void check_csr_transpose_args(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& weight) {
  const char* op = "ifru::csr_transpose";
  TORCH_CHECK(rowptr.dim() == 1 && rowptr.numel() >= 1, op, ": rowptr must be 1-D with at least one entry, got shape ",
              rowptr.sizes());
  check_csr(rowptr, col, rowptr.numel() - 1, op, rowptr.device());
  TORCH_CHECK(weight.dim() == 1 && weight.numel() == col.numel(), op, ": weight must have shape [nnz] = [",
              col.numel(), "], got ", weight.sizes());
  TORCH_CHECK(weight.device() == rowptr.device(), op, ": weight is on ", weight.device(), ", rowptr on ",
              rowptr.device());
  // Any dtype is transposed; floating weights must be finite, as in propagate and hvp.
  if (at::isFloatingType(weight.scalar_type())) check_finite(weight, op, "weight");
}

void check_importance_args(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& seed_counts,
                           at::ArrayRef<double> ratios) {
  const char* op = "ifru::importance";
  TORCH_CHECK(seed_counts.dim() == 1, op, ": seed_counts must be 1-D [N], got shape ", seed_counts.sizes());
  check_float_tensor(seed_counts, seed_counts.sizes(), seed_counts.scalar_type(), op, "seed_counts",
                     seed_counts.device());
  check_csr(rowptr, col, seed_counts.size(0), op, seed_counts.device());
  TORCH_CHECK_VALUE(!ratios.empty(), op, ": ratios must hold K + 1 >= 1 values (a_0, ..., a_K)");
  for (size_t k = 0; k < ratios.size(); ++k) {
    TORCH_CHECK_VALUE(ratios[k] >= 0.0 && ratios[k] <= 1.0, op, ": ratios[", k, "] = ", ratios[k],
                      " must lie in [0, 1]");
  }
  check_finite(seed_counts, op, "seed_counts");
  if (seed_counts.numel() == 0) return;
  TORCH_CHECK_VALUE((seed_counts >= 0).all().item<bool>(), op, ": seed_counts must be >= 0");
  const auto degree = rowptr.slice(0, 1) - rowptr.slice(0, 0, seed_counts.size(0));
  const auto seeded_isolated = at::logical_and(seed_counts > 0, degree == 0);
  if (seeded_isolated.any().item<bool>()) {
    const int64_t v = seeded_isolated.to(at::kByte).argmax().item<int64_t>();
    TORCH_CHECK_VALUE(false, op, ": node ", v, " has seed_counts > 0 but no neighbours in the adjacency; "
                      "build the adjacency from all training interactions, removed ones included");
  }
}

void check_pair_sums_structure(const at::Tensor& rows_table, const at::Tensor& table, const at::Tensor& rowptr,
                               const at::Tensor& col, const at::Tensor& labels,
                               const c10::optional<at::Tensor>& weight) {
  const char* op = "ifru::pair_sums";
  TORCH_CHECK(table.dim() == 2, op, ": table must be 2-D [L, d], got shape ", table.sizes());
  TORCH_CHECK(rows_table.dim() == 2, op, ": rows_table must be 2-D [a, d], got shape ", rows_table.sizes());
  const auto device = table.device();
  const auto dtype = table.scalar_type();
  check_float_tensor(table, table.sizes(), dtype, op, "table", device);
  check_float_tensor(rows_table, {rows_table.size(0), table.size(1)}, dtype, op, "rows_table", device);
  check_csr(rowptr, col, rows_table.size(0), op, device, table.size(0));
  check_float_tensor(labels, {col.numel()}, dtype, op, "labels", device);
  check_labels(labels, op);
  if (weight.has_value()) check_float_tensor(*weight, {col.numel()}, dtype, op, "weight", device);
}

void check_pair_sums_result(bool result_finite, const at::Tensor& rows_table, const at::Tensor& table,
                            const c10::optional<at::Tensor>& weight) {
  if (result_finite) return;
  const char* op = "ifru::pair_sums";
  check_finite(rows_table, op, "rows_table");
  check_finite(table, op, "table");
  if (weight.has_value()) check_finite(*weight, op, "weight");
  TORCH_CHECK_VALUE(false, op, ": the result overflowed to NaN or infinity in ", table.scalar_type(),
                    " although every input is finite; table, rows_table or weight is too large for this dtype (the "
                    "squared rows overflow)");
}

void check_triple_sums_structure(const at::Tensor& table, const at::Tensor& users, const at::Tensor& items,
                                 const at::Tensor& negatives, const at::Tensor& labels,
                                 const c10::optional<at::Tensor>& weight, const at::Tensor& rowptr,
                                 const at::Tensor& col) {
  const char* op = "ifru::triple_sums";
  TORCH_CHECK(table.dim() == 2, op, ": table must be 2-D [L, d], got shape ", table.sizes());
  const auto device = table.device();
  const auto dtype = table.scalar_type();
  check_float_tensor(table, table.sizes(), dtype, op, "table", device);
  check_interaction_rows({{"users", users}, {"items", items}, {"negatives", negatives}}, table.size(0), op, device);
  const int64_t terms = users.numel();
  check_float_tensor(labels, {terms}, dtype, op, "labels", device);
  check_labels(labels, op);
  if (weight.has_value()) check_float_tensor(*weight, {terms}, dtype, op, "weight", device);
  check_index_tensor(rowptr, op, "rowptr", device);
  TORCH_CHECK(rowptr.numel() >= 1, op, ": rowptr must have num_rows + 1 >= 1 entries, got none");
  check_csr(rowptr, col, rowptr.numel() - 1, op, device, 3 * terms);
}

void check_triple_sums_result(bool result_finite, const at::Tensor& table, const c10::optional<at::Tensor>& weight) {
  if (result_finite) return;
  const char* op = "ifru::triple_sums";
  check_finite(table, op, "table");
  if (weight.has_value()) check_finite(*weight, op, "weight");
  TORCH_CHECK_VALUE(false, op, ": the result overflowed to NaN or infinity in ", table.scalar_type(),
                    " although every input is finite; table or weight is too large for this dtype (the squared "
                    "rows overflow)");
}

}  // namespace ifru
