// CUDA kernels of the fused MF Hessian-vector product behind ifru::hvp and ifru::bpr_hvp
// (docs/ARCHITECTURE.md §3), in the two passes of cpu/hvp.cpp. Pass 1 (per interaction) computes
// x = e_u·e_i, a = v_u·e_i + e_u·v_i (BPR: the difference of these over the positive and the
// negative item) and the two coefficients; pass 2 (per row) gathers the row's incidences in pair
// order from an incidence CSR built by the glue, so the sums are deterministic and need no atomics.
#include "kernel_utils.cuh"
#include "launchers.h"

namespace ifru {
namespace {

using namespace cuda_detail;

__device__ __forceinline__ float exp_of(float x) { return expf(x); }
__device__ __forceinline__ double exp_of(double x) { return exp(x); }

// Interaction j is PAIRS pairs (1 without neg_items, 2 with): pair p = PAIRS·j + k joins users[j]
// with item_of(k, j), items[j] (k = 0) or neg_items[j] (k = 1), and enters the logit with the
// sign +1 (k = 0) or −1 (k = 1).
__device__ __forceinline__ int64_t item_of(const int64_t* __restrict__ items, const int64_t* __restrict__ neg_items,
                                           int k, int64_t j) {
  return k == 0 ? items[j] : neg_items[j];
}

// acc + term for pair slot 0, acc − term for slot 1 (the sign of the pair in the logit).
template <typename scalar_t>
__device__ __forceinline__ scalar_t signed_add(scalar_t acc, scalar_t term, int k) {
  return k == 0 ? acc + term : acc - term;
}

// A group of G lanes per interaction (G = next power of two >= d / VEC, at most 32): each lane
// takes the VEC-wide packs l, l + G, … of the dot products, the group sums them, and lane 0
// writes the coefficients. Interactions whose rows are all outside keep are skipped.
template <typename scalar_t, int VEC, int PAIRS>
__global__ void mf_hvp_interaction_kernel(const scalar_t* __restrict__ emb,     // [N, d]
                                          const scalar_t* __restrict__ v,       // [N, d]
                                          const int64_t* __restrict__ users,    // [n]
                                          const int64_t* __restrict__ items,    // [n]
                                          const int64_t* __restrict__ neg_items,  // [n] (PAIRS = 2) or nullptr
                                          const scalar_t* __restrict__ labels,  // [n] or nullptr (labels 1)
                                          const bool* __restrict__ keep,        // [N] or nullptr
                                          scalar_t* __restrict__ curvature,     // [n]
                                          scalar_t* __restrict__ slope,         // [n]
                                          scalar_t inv_n, int64_t n, int64_t d, int group_size) {
  const Group g = this_group(group_size);
  const int64_t packs = d / VEC;
  for (int64_t j = g.first; j < n; j += g.stride) {
    const int64_t u = users[j];
    const bool keep_u = keep == nullptr || keep[u];
    int64_t item[PAIRS];
    bool keep_item[PAIRS];
    bool any_kept = keep_u;
#pragma unroll
    for (int k = 0; k < PAIRS; ++k) {
      item[k] = item_of(items, neg_items, k, j);
      keep_item[k] = keep == nullptr || keep[item[k]];
      any_kept = any_kept || keep_item[k];
    }
    if (!any_kept) continue;  // every term lands in rows that stay zero
    const scalar_t* e_u = emb + u * d;
    scalar_t x = 0;
    scalar_t a = 0;
    for (int64_t pack = g.lane; pack < packs; pack += g.size) {
      const int64_t column = pack * VEC;
      const Pack<scalar_t, VEC> eu = load_pack<scalar_t, VEC>(e_u + column);
#pragma unroll
      for (int k = 0; k < PAIRS; ++k) {
        const Pack<scalar_t, VEC> ei = load_pack<scalar_t, VEC>(emb + item[k] * d + column);
#pragma unroll
        for (int t = 0; t < VEC; ++t) x = signed_add(x, eu.v[t] * ei.v[t], k);
        if (keep_u) {  // v is read as zero on pruned rows
          const Pack<scalar_t, VEC> vu = load_pack<scalar_t, VEC>(v + u * d + column);
#pragma unroll
          for (int t = 0; t < VEC; ++t) a = signed_add(a, vu.v[t] * ei.v[t], k);
        }
        if (keep_item[k]) {
          const Pack<scalar_t, VEC> vi = load_pack<scalar_t, VEC>(v + item[k] * d + column);
#pragma unroll
          for (int t = 0; t < VEC; ++t) a = signed_add(a, eu.v[t] * vi.v[t], k);
        }
      }
    }
    x = group_sum(x, g);
    a = group_sum(a, g);
    if (g.lane == 0) {
      const scalar_t sigma = scalar_t(1) / (scalar_t(1) + exp_of(-x));
      curvature[j] = inv_n * sigma * (scalar_t(1) - sigma) * a;
      slope[j] = inv_n * (sigma - (labels == nullptr ? scalar_t(1) : labels[j]));
    }
  }
}

// A group of G lanes per row; lane l owns the VEC-wide column packs l, l + G, …. The group
// walks the row's incidences G at a time: each lane resolves one incidence (other row, signed
// coefficients, whether the other row is kept) and the group broadcasts them; every lane then
// adds curvature·e_o (+ slope·v_o) to its columns in incidence order. Writes every row.
template <typename scalar_t, int VEC, int PAIRS>
__global__ void mf_hvp_row_kernel(const scalar_t* __restrict__ emb,          // [N, d]
                                  const scalar_t* __restrict__ v,            // [N, d]
                                  const int64_t* __restrict__ users,         // [n]
                                  const int64_t* __restrict__ items,         // [n]
                                  const int64_t* __restrict__ neg_items,     // [n] (PAIRS = 2) or nullptr
                                  const bool* __restrict__ keep,             // [N] or nullptr
                                  const int64_t* __restrict__ inc_rowptr,    // [N+1]
                                  const int64_t* __restrict__ inc_slot,      // [m]
                                  const scalar_t* __restrict__ curvature,    // [n]
                                  const scalar_t* __restrict__ slope,        // [n]
                                  scalar_t* __restrict__ out,                // [N, d]
                                  int64_t num_rows, int64_t d, int group_size) {
  const Group g = this_group(group_size);
  const int64_t packs = d / VEC;
  for (int64_t row = g.first; row < num_rows; row += g.stride) {
    const int64_t begin = inc_rowptr[row];
    const int64_t end = inc_rowptr[row + 1];
    for (int64_t pack0 = 0; pack0 < packs; pack0 += g.size) {
      const int64_t column = (pack0 + g.lane) * VEC;
      const bool owns = pack0 + g.lane < packs;
      scalar_t sum[VEC];
#pragma unroll
      for (int t = 0; t < VEC; ++t) sum[t] = scalar_t(0);
      for (int64_t base = begin; base < end; base += g.size) {
        int64_t my_other = 0;
        scalar_t my_curvature = 0;
        scalar_t my_slope = 0;
        int my_other_kept = 0;
        if (base + g.lane < end) {
          const int64_t s = inc_slot[base + g.lane];
          const int64_t p = s >> 1;
          const int64_t j = p / PAIRS;
          const int k = static_cast<int>(p % PAIRS);
          my_other = (s & 1) ? users[j] : item_of(items, neg_items, k, j);
          my_curvature = signed_add(scalar_t(0), curvature[j], k);
          my_other_kept = keep == nullptr || keep[my_other];
          if (my_other_kept) my_slope = signed_add(scalar_t(0), slope[j], k);
        }
        const int count = static_cast<int>(end - base < g.size ? end - base : g.size);
        for (int k = 0; k < count; ++k) {
          const int64_t o = group_broadcast(my_other, k, g);
          const scalar_t c = group_broadcast(my_curvature, k, g);
          const scalar_t s = group_broadcast(my_slope, k, g);
          const int other_kept = group_broadcast(my_other_kept, k, g);
          if (owns) {
            const Pack<scalar_t, VEC> eo = load_pack<scalar_t, VEC>(emb + o * d + column);
#pragma unroll
            for (int t = 0; t < VEC; ++t) sum[t] += c * eo.v[t];
            if (other_kept) {  // v is read as zero on pruned rows
              const Pack<scalar_t, VEC> vo = load_pack<scalar_t, VEC>(v + o * d + column);
#pragma unroll
              for (int t = 0; t < VEC; ++t) sum[t] += s * vo.v[t];
            }
          }
        }
      }
      if (owns) {
        Pack<scalar_t, VEC> result;
#pragma unroll
        for (int t = 0; t < VEC; ++t) result.v[t] = sum[t];
        store_pack<scalar_t, VEC>(out + row * d + column, result);
      }
    }
  }
}

// The two passes for PAIRS pairs per interaction: the 16-byte packed kernel when d and the
// pointers allow it, else the scalar one.
template <typename scalar_t, int PAIRS>
void launch_interactions(const scalar_t* emb, const scalar_t* v, const int64_t* users, const int64_t* items,
                         const int64_t* neg_items, const scalar_t* labels, const bool* keep, scalar_t* curvature,
                         scalar_t* slope, int64_t n, int64_t d, cudaStream_t stream) {
  constexpr int kVec = pack_width<scalar_t>();
  const scalar_t inv_n = scalar_t(1) / scalar_t(n);
  if (d % kVec == 0 && aligned_16(emb) && aligned_16(v)) {
    const int group_size = group_size_for(d / kVec);
    mf_hvp_interaction_kernel<scalar_t, kVec, PAIRS><<<grid_size(n, kBlockSize / group_size), kBlockSize, 0,
                                                      stream>>>(emb, v, users, items, neg_items, labels, keep,
                                                                curvature, slope, inv_n, n, d, group_size);
  } else {
    const int group_size = group_size_for(d);
    mf_hvp_interaction_kernel<scalar_t, 1, PAIRS><<<grid_size(n, kBlockSize / group_size), kBlockSize, 0,
                                                   stream>>>(emb, v, users, items, neg_items, labels, keep,
                                                             curvature, slope, inv_n, n, d, group_size);
  }
}

template <typename scalar_t, int PAIRS>
void launch_rows(const scalar_t* emb, const scalar_t* v, const int64_t* users, const int64_t* items,
                 const int64_t* neg_items, const bool* keep, const int64_t* incidence_rowptr,
                 const int64_t* incidence_slot, const scalar_t* curvature, const scalar_t* slope, scalar_t* out,
                 int64_t num_rows, int64_t d, cudaStream_t stream) {
  constexpr int kVec = pack_width<scalar_t>();
  if (d % kVec == 0 && aligned_16(emb) && aligned_16(v) && aligned_16(out)) {
    const int group_size = group_size_for(d / kVec);
    mf_hvp_row_kernel<scalar_t, kVec, PAIRS><<<grid_size(num_rows, kBlockSize / group_size), kBlockSize, 0,
                                              stream>>>(emb, v, users, items, neg_items, keep, incidence_rowptr,
                                                        incidence_slot, curvature, slope, out, num_rows, d,
                                                        group_size);
  } else {
    const int group_size = group_size_for(d);
    mf_hvp_row_kernel<scalar_t, 1, PAIRS><<<grid_size(num_rows, kBlockSize / group_size), kBlockSize, 0,
                                           stream>>>(emb, v, users, items, neg_items, keep, incidence_rowptr,
                                                     incidence_slot, curvature, slope, out, num_rows, d,
                                                     group_size);
  }
}

}  // namespace

template <typename scalar_t>
cudaError_t launch_mf_hvp_interactions(const scalar_t* emb, const scalar_t* v, const int64_t* users,
                                       const int64_t* items, const int64_t* neg_items, const scalar_t* labels,
                                       const bool* keep, scalar_t* curvature, scalar_t* slope, int64_t n, int64_t d,
                                       cudaStream_t stream) {
  if (n == 0 || d == 0) return cudaGetLastError();
  if (neg_items == nullptr) {
    launch_interactions<scalar_t, 1>(emb, v, users, items, neg_items, labels, keep, curvature, slope, n, d, stream);
  } else {
    launch_interactions<scalar_t, 2>(emb, v, users, items, neg_items, labels, keep, curvature, slope, n, d, stream);
  }
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_mf_hvp_rows(const scalar_t* emb, const scalar_t* v, const int64_t* users, const int64_t* items,
                               const int64_t* neg_items, const bool* keep, const int64_t* incidence_rowptr,
                               const int64_t* incidence_slot, const scalar_t* curvature, const scalar_t* slope,
                               scalar_t* out, int64_t num_rows, int64_t d, cudaStream_t stream) {
  if (num_rows == 0 || d == 0) return cudaGetLastError();
  if (neg_items == nullptr) {
    launch_rows<scalar_t, 1>(emb, v, users, items, neg_items, keep, incidence_rowptr, incidence_slot, curvature,
                             slope, out, num_rows, d, stream);
  } else {
    launch_rows<scalar_t, 2>(emb, v, users, items, neg_items, keep, incidence_rowptr, incidence_slot, curvature,
                             slope, out, num_rows, d, stream);
  }
  return cudaGetLastError();
}

template cudaError_t launch_mf_hvp_interactions<float>(const float*, const float*, const int64_t*, const int64_t*,
                                                       const int64_t*, const float*, const bool*, float*, float*,
                                                       int64_t, int64_t, cudaStream_t);
template cudaError_t launch_mf_hvp_interactions<double>(const double*, const double*, const int64_t*,
                                                        const int64_t*, const int64_t*, const double*, const bool*,
                                                        double*, double*, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_mf_hvp_rows<float>(const float*, const float*, const int64_t*, const int64_t*,
                                               const int64_t*, const bool*, const int64_t*, const int64_t*,
                                               const float*, const float*, float*, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_mf_hvp_rows<double>(const double*, const double*, const int64_t*, const int64_t*,
                                                const int64_t*, const bool*, const int64_t*, const int64_t*,
                                                const double*, const double*, double*, int64_t, int64_t,
                                                cudaStream_t);

}  // namespace ifru
