// The one schema block of the `ifru` library. Kernels live in cpu/<op>.cpp and
// cuda/<op>_glue.cpp (per device) or in composite/<op>.cpp (device-generic); bpr_hvp shares
// hvp's files (one fused kernel serves both).
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
  // H v of L(E) = mean_j BCEWithLogits(f_{users[j]}·f_{items[j]}, labels[j]) + l2/2‖E‖², F = P E
  // with P the propagation above (F = E without a graph or num_layers = 0). emb, v [N, d];
  // users, items, labels [n]; keep bool [N] restricts to H_φφ v_φ. -> [N, d].
  m.def("hvp(Tensor emb, Tensor v, Tensor users, Tensor items, Tensor labels, Tensor? rowptr, Tensor? col, "
        "Tensor? weight, int num_layers, float l2, Tensor? keep, bool symmetric=False) -> Tensor");
  // H v of the mean BPR loss L(E) = mean_j softplus(−f_{users[j]}·(f_{pos_items[j]} − f_{neg_items[j]}))
  // + l2/2‖E‖², otherwise as hvp (F = P E, keep). emb, v [N, d]; users, pos_items, neg_items [n]. -> [N, d].
  m.def("bpr_hvp(Tensor emb, Tensor v, Tensor users, Tensor pos_items, Tensor neg_items, Tensor? rowptr, "
        "Tensor? col, Tensor? weight, int num_layers, float l2, Tensor? keep, bool symmetric=False) -> Tensor");
  // Algorithm 1 of the paper over the CSR adjacency (rowptr [N+1], col [nnz]); seed_counts [N]
  // counts removed interactions per node; ratios [K+1]. -> (scores [N], keep bool [N]).
  m.def("importance(Tensor rowptr, Tensor col, Tensor seed_counts, float[] ratios) -> (Tensor, Tensor)");
  // Aᵀ of a square CSR matrix as (rowptr [N+1], col [nnz], weight [nnz]); stable, so entries
  // of a transposed row keep ascending source-row order.
  m.def("csr_transpose(Tensor rowptr, Tensor col, Tensor weight) -> (Tensor, Tensor, Tensor)");
  // Build info: whether CUDA kernels were compiled, and the CUDA version used (-1 if none).
  m.def("with_cuda() -> bool", &with_cuda);
  m.def("cuda_version() -> int", &cuda_version);
}

}  // namespace ifru
