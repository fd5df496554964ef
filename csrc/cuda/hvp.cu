// CUDA kernels of the fused MF Hessian-vector product behind ifru::hvp, ifru::bpr_hvp and
// ifru::hvp_planned (docs/ARCHITECTURE.md §3), on a plan of ifru::hvp_plan, in the two passes of
// cpu/hvp.cpp. Pass 1 (per plan interaction) computes x = e_u·e_i, a = v_u·e_i + e_u·v_i (BPR: the
// difference of these over the positive and the negative item) and the two coefficients; pass 2
// (per inner row) gathers the row's incidences in pair order from the plan's incidence CSR, so the
// sums are deterministic and need no atomics.
#include "kernel_utils.cuh"
#include "launchers.h"

namespace ifru {
namespace {

using namespace cuda_detail;

__device__ __forceinline__ float exp_of(float x) { return expf(x); }
__device__ __forceinline__ double exp_of(double x) { return exp(x); }

// A plan's interaction j (composite/hvp.h) has PAIRS + 1 endpoints: row rows[e·a + j] of the table at
// position locals[e·a + j] of inner_rows (−1 outside), e = 0 the user, e = 1 + q item q. Pair
// p = PAIRS·j + q enters the logit with the sign +1 (q = 0) or −1 (q = 1).

// The endpoint across incidence slot s: pair s / 2 seen from its user (s even: its item q) or from
// its item (s odd: the user).
template <int PAIRS>
__device__ __forceinline__ int other_end(int64_t s) {
  return (s & 1) ? 0 : 1 + static_cast<int>((s >> 1) % PAIRS);
}

// acc + term for pair slot 0, acc − term for slot 1 (the sign of the pair in the logit).
template <typename scalar_t>
__device__ __forceinline__ scalar_t signed_add(scalar_t acc, scalar_t term, int k) {
  return k == 0 ? acc + term : acc - term;
}

// A group of G lanes per interaction (G = next power of two >= d / VEC, at most 32): each lane
// takes the VEC-wide packs l, l + G, … of the dot products, the group sums them, and lane 0
// writes the coefficients.
template <typename scalar_t, int VEC, int PAIRS>
__global__ void mf_hvp_interaction_kernel(const scalar_t* __restrict__ emb,     // [N, d]
                                          const scalar_t* __restrict__ v,       // [R', d], on inner_rows
                                          const int64_t* __restrict__ rows,     // [PAIRS + 1, a]
                                          const int64_t* __restrict__ locals,   // [PAIRS + 1, a]
                                          const scalar_t* __restrict__ labels,  // [a] or nullptr (labels 1)
                                          const scalar_t* __restrict__ weights,  // [a] (1/n)·ℓ'', or nullptr
                                          scalar_t* __restrict__ curvature,     // [a]
                                          scalar_t* __restrict__ slope,         // [a]
                                          scalar_t inv_n, int64_t a, int64_t d, int group_size) {
  const Group g = this_group(group_size);
  const int64_t packs = d / VEC;
  for (int64_t j = g.first; j < a; j += g.stride) {
    const int64_t u = rows[j];
    const int64_t local_u = locals[j];
    int64_t item[PAIRS];
    int64_t local_item[PAIRS];
#pragma unroll
    for (int k = 0; k < PAIRS; ++k) {
      item[k] = rows[(1 + k) * a + j];
      local_item[k] = locals[(1 + k) * a + j];
    }
    const scalar_t* e_u = emb + u * d;
    scalar_t x = 0;
    scalar_t acc = 0;
    for (int64_t pack = g.lane; pack < packs; pack += g.size) {
      const int64_t column = pack * VEC;
      const Pack<scalar_t, VEC> eu = load_pack<scalar_t, VEC>(e_u + column);
#pragma unroll
      for (int k = 0; k < PAIRS; ++k) {
        const Pack<scalar_t, VEC> ei = load_pack<scalar_t, VEC>(emb + item[k] * d + column);
#pragma unroll
        for (int t = 0; t < VEC; ++t) x = signed_add(x, eu.v[t] * ei.v[t], k);
        if (local_u >= 0) {  // v is read as zero outside the inner rows
          const Pack<scalar_t, VEC> vu = load_pack<scalar_t, VEC>(v + local_u * d + column);
#pragma unroll
          for (int t = 0; t < VEC; ++t) acc = signed_add(acc, vu.v[t] * ei.v[t], k);
        }
        if (local_item[k] >= 0) {
          const Pack<scalar_t, VEC> vi = load_pack<scalar_t, VEC>(v + local_item[k] * d + column);
#pragma unroll
          for (int t = 0; t < VEC; ++t) acc = signed_add(acc, eu.v[t] * vi.v[t], k);
        }
      }
    }
    x = group_sum(x, g);
    acc = group_sum(acc, g);
    if (g.lane == 0) {
      if (weights != nullptr) {  // the Gauss–Newton weights, given (the slope is not read then)
        curvature[j] = weights[j] * acc;
      } else {
        const scalar_t sigma = scalar_t(1) / (scalar_t(1) + exp_of(-x));
        curvature[j] = inv_n * sigma * (scalar_t(1) - sigma) * acc;
        slope[j] = inv_n * (sigma - (labels == nullptr ? scalar_t(1) : labels[j]));
      }
    }
  }
}

// A group of G lanes per inner row; lane l owns the VEC-wide column packs l, l + G, …. The group
// walks the row's incidences G at a time: each lane resolves one incidence (other row, signed
// coefficients, the other row's position in inner_rows) and the group broadcasts them; every lane
// then adds curvature·e_o (+ slope·v_o) to its columns in incidence order. Writes every row of out.
template <typename scalar_t, int VEC, int PAIRS>
__global__ void mf_hvp_row_kernel(const scalar_t* __restrict__ emb,          // [N, d]
                                  const scalar_t* __restrict__ v,            // [R', d], on inner_rows
                                  const int64_t* __restrict__ rows,          // [PAIRS + 1, a]
                                  const int64_t* __restrict__ locals,        // [PAIRS + 1, a]
                                  const int64_t* __restrict__ inner_rows,    // [R']
                                  const int64_t* __restrict__ inc_rowptr,    // [N+1]
                                  const int64_t* __restrict__ inc_slot,      // [m]
                                  const scalar_t* __restrict__ curvature,    // [a]
                                  const scalar_t* __restrict__ slope,        // [a]
                                  scalar_t* __restrict__ out,                // [R', d]
                                  int64_t a, int64_t num_inner, int64_t d, int group_size) {
  const Group g = this_group(group_size);
  const int64_t packs = d / VEC;
  for (int64_t t_row = g.first; t_row < num_inner; t_row += g.stride) {
    const int64_t row = inner_rows[t_row];
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
        int64_t my_local = -1;
        scalar_t my_curvature = 0;
        scalar_t my_slope = 0;
        if (base + g.lane < end) {
          const int64_t s = inc_slot[base + g.lane];
          const int64_t j = (s >> 1) / PAIRS;
          const int k = static_cast<int>((s >> 1) % PAIRS);
          const int e = other_end<PAIRS>(s);
          my_other = rows[e * a + j];
          my_local = locals[e * a + j];
          my_curvature = signed_add(scalar_t(0), curvature[j], k);
          if (my_local >= 0) my_slope = signed_add(scalar_t(0), slope[j], k);
        }
        const int count = static_cast<int>(end - base < g.size ? end - base : g.size);
        for (int k = 0; k < count; ++k) {
          const int64_t o = group_broadcast(my_other, k, g);
          const int64_t local_o = group_broadcast(my_local, k, g);
          const scalar_t c = group_broadcast(my_curvature, k, g);
          const scalar_t s = group_broadcast(my_slope, k, g);
          if (owns) {
            const Pack<scalar_t, VEC> eo = load_pack<scalar_t, VEC>(emb + o * d + column);
#pragma unroll
            for (int t = 0; t < VEC; ++t) sum[t] += c * eo.v[t];
            if (local_o >= 0) {  // v is read as zero outside the inner rows
              const Pack<scalar_t, VEC> vo = load_pack<scalar_t, VEC>(v + local_o * d + column);
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
        store_pack<scalar_t, VEC>(out + t_row * d + column, result);
      }
    }
  }
}

// The two passes for PAIRS pairs per interaction: the 16-byte packed kernel when d and the
// pointers allow it, else the scalar one.
template <typename scalar_t, int PAIRS>
void launch_interactions(const scalar_t* emb, const scalar_t* v, const int64_t* rows, const int64_t* locals,
                         const scalar_t* labels, const scalar_t* weights, scalar_t* curvature, scalar_t* slope,
                         int64_t num_interactions, int64_t a, int64_t d, cudaStream_t stream) {
  constexpr int kVec = pack_width<scalar_t>();
  const scalar_t inv_n = scalar_t(1) / scalar_t(num_interactions);
  if (d % kVec == 0 && aligned_16(emb) && aligned_16(v)) {
    const int group_size = group_size_for(d / kVec);
    mf_hvp_interaction_kernel<scalar_t, kVec, PAIRS><<<grid_size(a, kBlockSize / group_size), kBlockSize, 0,
                                                      stream>>>(emb, v, rows, locals, labels, weights, curvature,
                                                                slope, inv_n, a, d, group_size);
  } else {
    const int group_size = group_size_for(d);
    mf_hvp_interaction_kernel<scalar_t, 1, PAIRS><<<grid_size(a, kBlockSize / group_size), kBlockSize, 0,
                                                   stream>>>(emb, v, rows, locals, labels, weights, curvature,
                                                             slope, inv_n, a, d, group_size);
  }
}

template <typename scalar_t, int PAIRS>
void launch_rows(const scalar_t* emb, const scalar_t* v, const int64_t* rows, const int64_t* locals,
                 const int64_t* inner_rows, const int64_t* incidence_rowptr, const int64_t* incidence_slot,
                 const scalar_t* curvature, const scalar_t* slope, scalar_t* out, int64_t a, int64_t num_inner,
                 int64_t d, cudaStream_t stream) {
  constexpr int kVec = pack_width<scalar_t>();
  if (d % kVec == 0 && aligned_16(emb) && aligned_16(v) && aligned_16(out)) {
    const int group_size = group_size_for(d / kVec);
    mf_hvp_row_kernel<scalar_t, kVec, PAIRS><<<grid_size(num_inner, kBlockSize / group_size), kBlockSize, 0,
                                              stream>>>(emb, v, rows, locals, inner_rows, incidence_rowptr,
                                                        incidence_slot, curvature, slope, out, a, num_inner, d,
                                                        group_size);
  } else {
    const int group_size = group_size_for(d);
    mf_hvp_row_kernel<scalar_t, 1, PAIRS><<<grid_size(num_inner, kBlockSize / group_size), kBlockSize, 0,
                                           stream>>>(emb, v, rows, locals, inner_rows, incidence_rowptr,
                                                     incidence_slot, curvature, slope, out, a, num_inner, d,
                                                     group_size);
  }
}

}  // namespace

template <typename scalar_t>
cudaError_t launch_mf_hvp_interactions(const scalar_t* emb, const scalar_t* v, const int64_t* ends, int num_ends,
                                       const scalar_t* labels, const scalar_t* weights, scalar_t* curvature,
                                       scalar_t* slope, int64_t num_interactions, int64_t a, int64_t d,
                                       cudaStream_t stream) {
  if (a == 0 || d == 0) return cudaGetLastError();
  const int64_t* locals = ends + num_ends * a;
  if (num_ends == 2) {
    launch_interactions<scalar_t, 1>(emb, v, ends, locals, labels, weights, curvature, slope, num_interactions, a, d,
                                     stream);
  } else {
    launch_interactions<scalar_t, 2>(emb, v, ends, locals, labels, weights, curvature, slope, num_interactions, a, d,
                                     stream);
  }
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_mf_hvp_rows(const scalar_t* emb, const scalar_t* v, const int64_t* ends, int num_ends,
                               const int64_t* inner_rows, const int64_t* incidence_rowptr,
                               const int64_t* incidence_slot, const scalar_t* curvature, const scalar_t* slope,
                               scalar_t* out, int64_t a, int64_t num_inner, int64_t d, cudaStream_t stream) {
  if (num_inner == 0 || d == 0) return cudaGetLastError();
  const int64_t* locals = ends + num_ends * a;
  if (num_ends == 2) {
    launch_rows<scalar_t, 1>(emb, v, ends, locals, inner_rows, incidence_rowptr, incidence_slot, curvature, slope,
                             out, a, num_inner, d, stream);
  } else {
    launch_rows<scalar_t, 2>(emb, v, ends, locals, inner_rows, incidence_rowptr, incidence_slot, curvature, slope,
                             out, a, num_inner, d, stream);
  }
  return cudaGetLastError();
}

template cudaError_t launch_mf_hvp_interactions<float>(const float*, const float*, const int64_t*, int,
                                                       const float*, const float*, float*, float*, int64_t, int64_t,
                                                       int64_t, cudaStream_t);
template cudaError_t launch_mf_hvp_interactions<double>(const double*, const double*, const int64_t*, int,
                                                        const double*, const double*, double*, double*, int64_t,
                                                        int64_t, int64_t, cudaStream_t);
template cudaError_t launch_mf_hvp_rows<float>(const float*, const float*, const int64_t*, int, const int64_t*,
                                               const int64_t*, const int64_t*, const float*, const float*, float*,
                                               int64_t, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_mf_hvp_rows<double>(const double*, const double*, const int64_t*, int, const int64_t*,
                                                const int64_t*, const int64_t*, const double*, const double*,
                                                double*, int64_t, int64_t, int64_t, cudaStream_t);

}  // namespace ifru
