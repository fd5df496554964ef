// Argument validation shared by every op and device (ATen ops only, so it runs on
// CPU and CUDA tensors alike). Each check names the op and the argument and shows
// what it received, so a bad call fails with a Python exception, never a crash.
#pragma once

#include <ATen/ATen.h>

#include <initializer_list>

namespace ifru {

// The largest num_layers propagate, hvp and bpr_hvp accept (README "Errors", docs/ARCHITECTURE.md §3).
// Each layer is one full SpMM, so the bound caps a call's work at kMaxLayers SpMMs; LightGCN
// uses K <= 4 and the layer mean of a normalised graph has converged long before K = 64.
constexpr int64_t kMaxLayers = 64;

// 1-D int64 tensor on `device` (RuntimeError otherwise).
void check_index_tensor(const at::Tensor& t, const char* op, const char* name, const at::Device& device);

// Every value of the int64 tensor `t` lies in [0, upper) (ValueError otherwise).
void check_index_range(const at::Tensor& t, int64_t upper, const char* op, const char* name);

// A CSR matrix with `num_rows` rows and `num_cols` columns (-1: square): rowptr int64 [num_rows + 1] starting at 0,
// non-decreasing, ending at nnz; col int64 [nnz] in [0, num_rows).
void check_csr(const at::Tensor& rowptr, const at::Tensor& col, int64_t num_rows, const char* op,
               const at::Device& device, int64_t num_cols = -1);

// A float32/float64 tensor of exactly `shape`, on `device`, of `dtype`.
void check_float_tensor(const at::Tensor& t, at::IntArrayRef shape, at::ScalarType dtype, const char* op,
                        const char* name, const at::Device& device);

// No NaN or infinity in `t` (ValueError otherwise).
void check_finite(const at::Tensor& t, const char* op, const char* name);

// 0 <= num_layers <= kMaxLayers (ValueError otherwise).
void check_num_layers(int64_t num_layers, const char* op);

// labels float in [0, 1], no NaN (ValueError otherwise).
void check_labels(const at::Tensor& labels, const char* op);

// Whether `result` has no NaN or infinity (one aminmax pass).
bool result_is_finite(const at::Tensor& result);

// An op's result computed from finite inputs has no NaN or infinity: ValueError saying the
// computation overflowed, with `hint` (what makes it overflow) appended.
void check_finite_result(const at::Tensor& result, const char* op, const char* hint);

// What makes propagate's result overflow (shared by its kernels on every device).
inline constexpr const char* kPropagateOverflowHint =
    "the powers A^k grow without bound (spectral radius of A above 1?): "
    "normalise the graph (e.g. D^-1/2 A D^-1/2) or use fewer layers";

}  // namespace ifru

namespace ifru {

// Whole-argument checks of each op, shared by its kernels on every device.
// propagate's in two parts: structure (shapes, dtypes, devices, the CSR; before any read) and
// values (weight, then x, finite), which the CPU kernel runs only when its result is not finite.
void check_propagate_structure(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& weight,
                               const at::Tensor& x, int64_t num_layers);
void check_propagate_values(const at::Tensor& weight, const at::Tensor& x);
void check_propagate_args(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& weight,
                          const at::Tensor& x, int64_t num_layers);

// propagate_rows's in the same two parts. Structure: the CSR over N = rowptr.numel() − 1 rows,
// x [R, d] (R = N without x_rows), x_rows int64 [R] strictly ascending in [0, N), out_rows int64
// [M] in [0, N). Values: weight, then x, finite. The CPU kernel checks the values when its result
// is not finite (a value that reaches no listed row cannot spoil it); the composite before it runs.
void check_propagate_rows_structure(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& weight,
                                    const at::Tensor& x, const c10::optional<at::Tensor>& x_rows,
                                    const c10::optional<at::Tensor>& out_rows, int64_t num_layers);
void check_propagate_rows_values(const at::Tensor& weight, const at::Tensor& x);

// keep bool [num_nodes] on `device`.
void check_keep(const at::Tensor& keep, int64_t num_nodes, const char* op, const at::Device& device);

// What hvp and bpr_hvp share: emb, v [N, d] float32/float64 and finite, 0 <= num_layers <= kMaxLayers
// (> 0 only with a graph), the graph (rowptr, col, weight) all or none, finite l2, keep bool [N].
void check_hessian_args(const char* op, const at::Tensor& emb, const at::Tensor& v,
                        const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                        const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                        const c10::optional<at::Tensor>& keep);

// An argument and its name, for checks over several arguments.
struct NamedTensor {
  const char* name;
  const at::Tensor& tensor;
};

// The row indices of one interaction list (users, items, ...): each 1-D int64 on `device`, all of
// the first one's length, every value in [0, num_nodes).
void check_interaction_rows(std::initializer_list<NamedTensor> rows, int64_t num_nodes, const char* op,
                            const at::Device& device);

void check_hvp_args(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users, const at::Tensor& items,
                    const at::Tensor& labels, const c10::optional<at::Tensor>& rowptr,
                    const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                    int64_t num_layers, double l2, const c10::optional<at::Tensor>& keep);

void check_bpr_hvp_args(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users,
                        const at::Tensor& pos_items, const at::Tensor& neg_items,
                        const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                        const c10::optional<at::Tensor>& weight, int64_t num_layers, double l2,
                        const c10::optional<at::Tensor>& keep);

// users, items (and neg_items) rows in [0, num_nodes), keep bool [num_nodes], the graph (rowptr, col) both
// or none and a valid CSR of num_nodes rows, 0 <= num_layers <= kMaxLayers (> 0 only with a graph).
void check_hvp_plan_args(const at::Tensor& users, const at::Tensor& items, const c10::optional<at::Tensor>& neg_items,
                         const c10::optional<at::Tensor>& keep, int64_t num_nodes,
                         const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                         int64_t num_layers);

// O(1) checks of a planned call (one element read): shapes, dtypes and devices of emb, v [R, d], labels [a],
// the graph and propagated, and of the plan's tensors against each other and against emb (a plan built for
// another table is refused). Values are not read: the plan's were checked by hvp_plan, and non-finite
// emb, v or labels show as a non-finite result.
void check_hvp_planned_args(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& rows,
                            const at::Tensor& inner_rows, const at::Tensor& ends, const at::Tensor& incidence_rowptr,
                            const at::Tensor& incidence_slot, const c10::optional<at::Tensor>& labels,
                            int64_t num_interactions, const c10::optional<at::Tensor>& rowptr,
                            const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight,
                            int64_t num_layers, double l2, const c10::optional<at::Tensor>& propagated,
                            bool gauss_newton, const c10::optional<at::Tensor>& gauss_newton_weights);

// ifru::gauss_newton_weights: table [N, d] float; ends [2, E, a] int64 (a plan of hvp_plan), its rows
// in [0, N) (an O(a) pass: they index the table); num_interactions >= a.
void check_gauss_newton_weights_args(const at::Tensor& table, const at::Tensor& ends, int64_t num_interactions);
// The weights are finite (ValueError naming the table otherwise: NaN or infinity in a row the plan reads).
void check_gauss_newton_weights_result(const at::Tensor& weights);

// table float [N, d], index int64 [m] in [0, N).
void check_gather_floor_args(const at::Tensor& table, const at::Tensor& index);

void check_csr_transpose_args(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& weight);

void check_importance_args(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& seed_counts,
                           at::ArrayRef<double> ratios);

// pair_sums before its kernel: rows_table [a, d] and table [L, d] of one dtype and device, the CSR
// (rowptr [a+1], col [e] in [0, L)), labels [e] in [0, 1], weight [e]. After it: when not every sum
// is finite (`result_finite`, found by the kernel), names the non-finite input or says the sums overflowed.
void check_pair_sums_structure(const at::Tensor& rows_table, const at::Tensor& table, const at::Tensor& rowptr,
                               const at::Tensor& col, const at::Tensor& labels,
                               const c10::optional<at::Tensor>& weight);
void check_pair_sums_result(bool result_finite, const at::Tensor& rows_table, const at::Tensor& table,
                            const c10::optional<at::Tensor>& weight);


// triple_sums before its kernel: table [L, d] float; users, items, negatives int64 [s] in [0, L); labels [s] in
// [0, 1] and weight [s] of table's dtype; the CSR (rowptr [a+1], col [e] in [0, 3s)). After it: as pair_sums.
void check_triple_sums_structure(const at::Tensor& table, const at::Tensor& users, const at::Tensor& items,
                                 const at::Tensor& negatives, const at::Tensor& labels,
                                 const c10::optional<at::Tensor>& weight, const at::Tensor& rowptr,
                                 const at::Tensor& col);
void check_triple_sums_result(bool result_finite, const at::Tensor& table, const c10::optional<at::Tensor>& weight);

}  // namespace ifru
