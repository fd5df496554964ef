// Host launchers of the CUDA kernels, on raw device pointers, sizes and a stream. Plain CUDA
// (no torch headers), so the .cu files compile with nvcc alone; the *_glue.cpp files do the
// tensor checks, dtype dispatch and stream lookup and call these. Each launcher is
// instantiated for float and double, enqueues its kernels on `stream` (nothing when there is
// no work) and returns cudaGetLastError() after the launches.
// Shapes: N rows (nodes), d columns, n interactions, nnz CSR entries, m incidences.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ifru {

// One propagate layer over the CSR A (rowptr [N+1], col [nnz], weight [nnz]):
// acc = (acc + A cur) * acc_scale, and next = A cur unless next is null.
// cur, next, acc [N, d], pairwise distinct.
template <typename scalar_t>
cudaError_t launch_propagate_layer(const int64_t* rowptr, const int64_t* col, const scalar_t* weight,
                                   const scalar_t* cur, scalar_t* next, scalar_t* acc, scalar_t acc_scale,
                                   int64_t num_rows, int64_t d, cudaStream_t stream);

// MF-HVP pass 1 on a plan (composite/hvp.h), per plan interaction j < a: ends [2, E, a] (E = num_ends,
// 2 or 3) holds the endpoints' rows ends[0][e][j] of emb [N, d] and their positions ends[1][e][j] in
// the inner rows (−1 outside: v read as zero); v [R', d] on the inner rows. With E = 2:
// x = e_u·e_i, a = [u inner] v_u·e_i + [i inner] e_u·v_i (u = ends[0][0][j], i = ends[0][1][j]); with
// E = 3, x and a are the differences of these over the pairs (u, i) and (u, k), k = ends[0][2][j].
// σ = σ(x), y = labels[j] (labels [a]) or 1 when labels is null, n = num_interactions;
// curvature[j] = σ(1−σ)·a/n and slope[j] = (σ − y)/n. With weights [a] (the Gauss–Newton weights
// (1/n)·σ(1−σ) of ifru::gauss_newton_weights) curvature[j] = weights[j]·a and slope is not written.
template <typename scalar_t>
cudaError_t launch_mf_hvp_interactions(const scalar_t* emb, const scalar_t* v, const int64_t* ends, int num_ends,
                                       const scalar_t* labels, const scalar_t* weights, scalar_t* curvature,
                                       scalar_t* slope, int64_t num_interactions, int64_t a, int64_t d,
                                       cudaStream_t stream);

// MF-HVP pass 2 on a plan, per inner row t with r = inner_rows[t] ([R']): out_t = Σ_k ±(curvature[j]·e_o +
// [o inner] slope[j]·v_o) over the row's incidences k in [incidence_rowptr[r], incidence_rowptr[r+1])
// (incidence_rowptr [N+1]). Pair p = (E−1)·j + q joins the user with item q (sign + for q = 0, − for
// q = 1); the incidence slot s = incidence_slot[k] ([m]) is pair p = s / 2 seen from its user (s even,
// o = item q) or from its item (s odd, o = the user). Writes every row of out [R', d].
template <typename scalar_t>
cudaError_t launch_mf_hvp_rows(const scalar_t* emb, const scalar_t* v, const int64_t* ends, int num_ends,
                               const int64_t* inner_rows, const int64_t* incidence_rowptr,
                               const int64_t* incidence_slot, const scalar_t* curvature, const scalar_t* slope,
                               scalar_t* out, int64_t a, int64_t num_inner, int64_t d, cudaStream_t stream);

// Importance hop 0 over the CSR adjacency (rowptr [N+1]): member[v] = scores[v] > 0, and then
// scores[v] /= degree(v) for the members (scores [N] holds the seed counts on entry).
template <typename scalar_t>
cudaError_t launch_importance_seed(const int64_t* rowptr, scalar_t* scores, bool* member, int64_t num_nodes,
                                   cudaStream_t stream);

// Importance hop k ≥ 1 over the adjacency (rowptr [N+1]) and its transpose (in_rowptr [N+1],
// in_src [nnz], sources ascending within a row): for every node t,
// incoming = Σ scores[s] over member in-neighbours s, summed in ascending source order;
// reached[t] = any such s; next[t] = scores[t] + incoming / degree(t) if reached, else scores[t].
// A reached node of degree 0 lowers *bad_node (int64, set to N beforehand) to its index.
template <typename scalar_t>
cudaError_t launch_importance_hop(const int64_t* rowptr, const int64_t* in_rowptr, const int64_t* in_src,
                                  const scalar_t* scores, const bool* member, scalar_t* next, bool* reached,
                                  int64_t* bad_node, int64_t num_nodes, cudaStream_t stream);

}  // namespace ifru
