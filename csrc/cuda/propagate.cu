// CUDA kernel of ifru::propagate: one layer of the CSR SpMM with the layer mean fused in,
// acc = (acc + A cur) * acc_scale, a running sum (cpu/propagate.cpp keeps the layer outputs and
// sums them in the last layer instead: less traffic, the same additions in the same order). Row-parallel: each output row is
// summed by one lane group in CSR order, so there are no atomics and results are deterministic.
#include "kernel_utils.cuh"
#include "launchers.h"

namespace ifru {
namespace {

using namespace cuda_detail;

// A group of G lanes per row (G = next power of two >= d / VEC, at most 32); lane l owns the
// VEC-wide column packs l, l + G, …. The group walks the row G entries at a time: each lane
// loads one (col, weight) and the group broadcasts them, so index loads are not repeated per lane.
template <typename scalar_t, int VEC>
__global__ void propagate_layer_kernel(const int64_t* __restrict__ rowptr,   // [N+1]
                                       const int64_t* __restrict__ col,      // [nnz]
                                       const scalar_t* __restrict__ weight,  // [nnz]
                                       const scalar_t* __restrict__ cur,     // [N, d]
                                       scalar_t* __restrict__ next,          // [N, d] or nullptr
                                       scalar_t* __restrict__ acc,           // [N, d]
                                       scalar_t acc_scale, int64_t num_rows, int64_t d, int group_size) {
  const Group g = this_group(group_size);
  const int64_t packs = d / VEC;
  for (int64_t row = g.first; row < num_rows; row += g.stride) {
    const int64_t begin = rowptr[row];
    const int64_t end = rowptr[row + 1];
    for (int64_t pack0 = 0; pack0 < packs; pack0 += g.size) {
      const int64_t column = (pack0 + g.lane) * VEC;
      const bool owns = pack0 + g.lane < packs;
      scalar_t sum[VEC];
#pragma unroll
      for (int t = 0; t < VEC; ++t) sum[t] = scalar_t(0);
      for (int64_t base = begin; base < end; base += g.size) {
        int64_t my_col = 0;
        scalar_t my_weight = 0;
        if (base + g.lane < end) {
          my_col = col[base + g.lane];
          my_weight = weight[base + g.lane];
        }
        const int count = static_cast<int>(end - base < g.size ? end - base : g.size);
#pragma unroll 4
        for (int k = 0; k < count; ++k) {
          const int64_t source = group_broadcast(my_col, k, g);
          const scalar_t w = group_broadcast(my_weight, k, g);
          if (owns) {
            const Pack<scalar_t, VEC> x = load_pack<scalar_t, VEC>(cur + source * d + column);
#pragma unroll
            for (int t = 0; t < VEC; ++t) sum[t] += w * x.v[t];
          }
        }
      }
      if (owns) {
        const int64_t offset = row * d + column;
        Pack<scalar_t, VEC> total = load_pack<scalar_t, VEC>(acc + offset);
#pragma unroll
        for (int t = 0; t < VEC; ++t) total.v[t] = (total.v[t] + sum[t]) * acc_scale;
        store_pack<scalar_t, VEC>(acc + offset, total);
        if (next != nullptr) {
          Pack<scalar_t, VEC> layer;
#pragma unroll
          for (int t = 0; t < VEC; ++t) layer.v[t] = sum[t];
          store_pack<scalar_t, VEC>(next + offset, layer);
        }
      }
    }
  }
}

template <typename scalar_t, int VEC>
void launch_layer(const int64_t* rowptr, const int64_t* col, const scalar_t* weight, const scalar_t* cur,
                  scalar_t* next, scalar_t* acc, scalar_t acc_scale, int64_t num_rows, int64_t d,
                  cudaStream_t stream) {
  const int group_size = group_size_for(d / VEC);
  const unsigned int blocks = grid_size(num_rows, kBlockSize / group_size);
  propagate_layer_kernel<scalar_t, VEC><<<blocks, kBlockSize, 0, stream>>>(rowptr, col, weight, cur, next, acc,
                                                                           acc_scale, num_rows, d, group_size);
}

}  // namespace

template <typename scalar_t>
cudaError_t launch_propagate_layer(const int64_t* rowptr, const int64_t* col, const scalar_t* weight,
                                   const scalar_t* cur, scalar_t* next, scalar_t* acc, scalar_t acc_scale,
                                   int64_t num_rows, int64_t d, cudaStream_t stream) {
  if (num_rows == 0 || d == 0) return cudaGetLastError();
  constexpr int kVec = pack_width<scalar_t>();
  // 16-byte packs need every row start aligned: d a multiple of the pack and aligned bases.
  const bool vectorised = d % kVec == 0 && aligned_16(cur) && aligned_16(next) && aligned_16(acc);
  if (vectorised) {
    launch_layer<scalar_t, kVec>(rowptr, col, weight, cur, next, acc, acc_scale, num_rows, d, stream);
  } else {
    launch_layer<scalar_t, 1>(rowptr, col, weight, cur, next, acc, acc_scale, num_rows, d, stream);
  }
  return cudaGetLastError();
}

template cudaError_t launch_propagate_layer<float>(const int64_t*, const int64_t*, const float*, const float*,
                                                   float*, float*, float, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_propagate_layer<double>(const int64_t*, const int64_t*, const double*, const double*,
                                                    double*, double*, double, int64_t, int64_t, cudaStream_t);

}  // namespace ifru
