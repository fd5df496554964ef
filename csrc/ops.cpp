// The one schema block of the `ifru` library. Kernels live in cpu/<op>.cpp and
// cuda/<op>_glue.cpp (per device) or in composite/<op>.cpp (device-generic); bpr_hvp and
// hvp_planned share hvp's files (one fused kernel serves all three).
// Shapes: N nodes (users then items, one stacked table), d embedding width,
// n interactions, nnz stored CSR entries.
#include <torch/library.h>

#ifndef IFRU_WITH_CUDA
#define IFRU_WITH_CUDA 0
#endif
#ifndef IFRU_CUDA_VERSION
#define IFRU_CUDA_VERSION -1
#endif

namespace ifru {
namespace {
bool with_cuda() { return IFRU_WITH_CUDA != 0; }
int64_t cuda_version() { return IFRU_CUDA_VERSION; }
}  // namespace

TORCH_LIBRARY(ifru, m) {
  // (1/(K+1)) Σ_{k=0..K} A^k x for the square CSR A (rowptr [N+1], col [nnz], weight [nnz]) and
  // x [N, d] -> [N, d]. `symmetric` declares A == Aᵀ so the backward reuses A.
  m.def("propagate(Tensor rowptr, Tensor col, Tensor weight, Tensor x, int num_layers, bool symmetric=False) -> Tensor");
  // The same P on some rows: (P X)[out_rows] -> [M, d] for X [N, d] given by x [R, d] on x_rows [R]
  // (strictly ascending; zero on every other row; None: x is X, R = N) and out_rows [M] (None: all
  // N rows in order). Not differentiable.
  m.def("propagate_rows(Tensor rowptr, Tensor col, Tensor weight, Tensor x, Tensor? x_rows, Tensor? out_rows, "
        "int num_layers) -> Tensor");
  // H v of L(E) = mean_j BCEWithLogits(f_{users[j]}·f_{items[j]}, labels[j]) + l2/2‖E‖², F = P E
  // with P the propagation above (F = E without a graph or num_layers = 0). emb, v [N, d];
  // users, items, labels [n]; keep bool [N] restricts to H_φφ v_φ. -> [N, d].
  m.def("hvp(Tensor emb, Tensor v, Tensor users, Tensor items, Tensor labels, Tensor? rowptr, Tensor? col, "
        "Tensor? weight, int num_layers, float l2, Tensor? keep, bool symmetric=False) -> Tensor");
  // H v of the mean BPR loss L(E) = mean_j softplus(−f_{users[j]}·(f_{pos_items[j]} − f_{neg_items[j]}))
  // + l2/2‖E‖², otherwise as hvp (F = P E, keep). emb, v [N, d]; users, pos_items, neg_items [n]. -> [N, d].
  m.def("bpr_hvp(Tensor emb, Tensor v, Tensor users, Tensor pos_items, Tensor neg_items, Tensor? rowptr, "
        "Tensor? col, Tensor? weight, int num_layers, float l2, Tensor? keep, bool symmetric=False) -> Tensor");
  // The interaction structure an HVP restricted to keep reads, built once per request (hvp_planned).
  // users, items [n] (neg_items [n]: BPR triples) rows of a table of num_nodes rows; keep bool [N]
  // (none: every row); with the graph (rowptr [N+1], col [nnz]) and num_layers K >= 1 the inner MF
  // HVP is restricted to the K-hop reach of keep. -> rows [R] (keep's rows, ascending),
  // inner_rows [R'] (rows the inner MF HVP reads v at and writes), interactions [a] (those with an
  // endpoint in inner_rows, ascending), ends [2, E, a] (E = 2, or 3 with neg_items: ends[0] their
  // rows, ends[1] those rows' positions in inner_rows or -1), incidence_rowptr [N+1] and
  // incidence_slot [m] (the pairs grouped by inner endpoint row, docs/ARCHITECTURE.md §3).
  m.def("hvp_plan(Tensor users, Tensor items, Tensor? neg_items, Tensor? keep, int num_nodes, Tensor? rowptr=None, "
        "Tensor? col=None, int num_layers=0) -> (Tensor rows, Tensor inner_rows, Tensor interactions, Tensor ends, "
        "Tensor incidence_rowptr, Tensor incidence_slot)");
  // hvp (E = 2) or bpr_hvp (E = 3) on a plan of hvp_plan, on the plan's rows: v [R, d] holds v on
  // rows (zero elsewhere), -> (H v)[rows] [R, d]. labels [a] = labels[interactions] (none: 1);
  // num_interactions n, the mean's divisor; propagated [N, d] = P emb (computed when none).
  // gauss_newton: the Gauss–Newton part only, Pᵀ (1/n) Σ_j ℓ''_j J_jᵀ J_j P v + l2 v (the ℓ' term
  // dropped: positive semi-definite; labels are then not read); gauss_newton_weights [a]: its
  // (1/n)·ℓ''_j at F (gauss_newton_weights of the plan's ends), read instead of evaluated.
  m.def("hvp_planned(Tensor emb, Tensor v, Tensor rows, Tensor inner_rows, Tensor ends, Tensor incidence_rowptr, "
        "Tensor incidence_slot, Tensor? labels, int num_interactions, Tensor? rowptr, Tensor? col, Tensor? weight, "
        "int num_layers, float l2, Tensor? propagated=None, bool symmetric=False, bool gauss_newton=False, "
        "Tensor? gauss_newton_weights=None) -> Tensor");
  // The Gauss–Newton weights of a plan's interactions at a table, w_j = σ(x_j)(1 − σ(x_j))/n: x_j the
  // logit of interaction j on table [N, d] (ends [2, E, a] of hvp_plan; E = 3: x_j = f_u·f_i − f_u·f_k),
  // n = num_interactions. -> [a]. They depend on the table alone, which is fixed during a solve:
  // hvp_planned(gauss_newton=True, gauss_newton_weights=w) reads them instead of evaluating x_j per call.
  m.def("gauss_newton_weights(Tensor table, Tensor ends, int num_interactions) -> Tensor");
  // The per-row sums of dot-product pair terms (BCE on MF, or LightGCN's propagated table) that a
  // segment of the training response reads, in one pass. rows_table [a, d] the a rows, table [L, d]
  // the rows they pair with; the CSR (rowptr [a+1], col [e] in [0, L)) lists row r's entries, each a
  // term x = rows_table[r]·table[col[k]] with label labels[k] and multiplicity weight[k] (none: 1).
  // With p = σ(x): -> (Σ w (p − y) t, Σ w (p − y)² t⊙t, Σ w p(1 − p) t⊙t) [a, d] each, t = table[col[k]].
  m.def("pair_sums(Tensor rows_table, Tensor table, Tensor rowptr, Tensor col, Tensor labels, Tensor? weight=None) "
        "-> (Tensor, Tensor, Tensor)");
  // The same sums over BPR's triple terms: term j (users, items, negatives [s] in [0, L), labels and
  // weight [s]) has x = f_u·f_i − f_u·f_k on table [L, d]; the CSR (rowptr [a+1], col [e] in [0, 3s))
  // lists row r's entries, col[k] = 3 j + c for term j seen from its column c (0 user, 1 item,
  // 2 negative), J = f_i − f_k, f_u or −f_u there. -> (Σ w (p − y) J, Σ w (p − y)² J⊙J, Σ w p(1 − p) J⊙J) [a, d].
  m.def("triple_sums(Tensor table, Tensor users, Tensor items, Tensor negatives, Tensor labels, Tensor? weight, "
        "Tensor rowptr, Tensor col) -> (Tensor, Tensor, Tensor)");
  // Benchmark floor (bench/test_bench_ops.py): Σ_k table[index[k]] for table [N, d], index [m] -> [d].
  m.def("_gather_floor(Tensor table, Tensor index) -> Tensor");
  // Algorithm 1 of the paper over the CSR adjacency (rowptr [N+1], col [nnz]); seed_counts [N]
  // counts removed interactions per node; ratios [K+1]. -> (scores [N], keep bool [N]).
  // symmetric: A = Aᵀ with columns sorted in each row (CSRGraph.symmetric), so the hops gather
  // along A's own rows instead of building Aᵀ (the transpose is most of a hop's cost).
  m.def("importance(Tensor rowptr, Tensor col, Tensor seed_counts, float[] ratios, bool symmetric=False) -> "
        "(Tensor, Tensor)");
  // Aᵀ of a square CSR matrix as (rowptr [N+1], col [nnz], weight [nnz]); stable, so entries
  // of a transposed row keep ascending source-row order.
  m.def("csr_transpose(Tensor rowptr, Tensor col, Tensor weight) -> (Tensor, Tensor, Tensor)");
  // Build info: whether CUDA kernels were compiled, and the CUDA version used (-1 if none).
  m.def("with_cuda() -> bool", &with_cuda);
  m.def("cuda_version() -> int", &cuda_version);
}

}  // namespace ifru
