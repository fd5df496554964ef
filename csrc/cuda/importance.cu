// CUDA kernels of ifru::importance (the paper's Algorithm 1, docs/ARCHITECTURE.md §3): the seed
// step and one hop as a gather along the rows of Aᵀ. Every node's incoming contributions are
// summed by one thread in ascending source order and then divided by its degree, the evaluation
// order of cpu/importance.cpp; with round-to-nearest division and addition (the explicit
// intrinsics below, immune to fast-math flags) the scores equal the CPU's bit for bit. The
// top-fraction selection between hops is done by the glue.
#include "kernel_utils.cuh"
#include "launchers.h"

namespace ifru {
namespace {

using namespace cuda_detail;

__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }

// One thread per node (grid-stride): seeded nodes become members, scored seed / degree.
template <typename scalar_t>
__global__ void importance_seed_kernel(const int64_t* __restrict__ rowptr,  // [N+1]
                                       scalar_t* __restrict__ scores,       // [N]
                                       bool* __restrict__ member,           // [N]
                                       int64_t num_nodes) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t node = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; node < num_nodes;
       node += stride) {
    const bool seeded = scores[node] > scalar_t(0);
    member[node] = seeded;
    if (seeded) scores[node] = div_rn(scores[node], static_cast<scalar_t>(rowptr[node + 1] - rowptr[node]));
  }
}

// One thread per target node (grid-stride) walks its row of Aᵀ in order: a sequential sum, so
// the result does not depend on the launch shape.
template <typename scalar_t>
__global__ void importance_hop_kernel(const int64_t* __restrict__ rowptr,     // [N+1]
                                      const int64_t* __restrict__ in_rowptr,  // [N+1]
                                      const int64_t* __restrict__ in_src,     // [nnz]
                                      const scalar_t* __restrict__ scores,    // [N]
                                      const bool* __restrict__ member,        // [N]
                                      scalar_t* __restrict__ next,            // [N]
                                      bool* __restrict__ reached,             // [N]
                                      unsigned long long* __restrict__ bad_node,
                                      int64_t num_nodes) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t target = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; target < num_nodes;
       target += stride) {
    scalar_t incoming = 0;
    bool any = false;
    const int64_t end = in_rowptr[target + 1];
    for (int64_t e = in_rowptr[target]; e < end; ++e) {
      const int64_t source = in_src[e];
      if (member[source]) {
        incoming = add_rn(incoming, scores[source]);
        any = true;
      }
    }
    reached[target] = any;
    scalar_t score = scores[target];
    if (any) {
      const int64_t degree = rowptr[target + 1] - rowptr[target];
      if (degree == 0) {
        atomicMin(bad_node, static_cast<unsigned long long>(target));  // reported by the glue
      } else {
        score = add_rn(score, div_rn(incoming, static_cast<scalar_t>(degree)));
      }
    }
    next[target] = score;
  }
}

}  // namespace

template <typename scalar_t>
cudaError_t launch_importance_seed(const int64_t* rowptr, scalar_t* scores, bool* member, int64_t num_nodes,
                                   cudaStream_t stream) {
  if (num_nodes == 0) return cudaGetLastError();
  importance_seed_kernel<scalar_t><<<grid_size(num_nodes, kBlockSize), kBlockSize, 0, stream>>>(rowptr, scores,
                                                                                                member, num_nodes);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_importance_hop(const int64_t* rowptr, const int64_t* in_rowptr, const int64_t* in_src,
                                  const scalar_t* scores, const bool* member, scalar_t* next, bool* reached,
                                  int64_t* bad_node, int64_t num_nodes, cudaStream_t stream) {
  static_assert(sizeof(int64_t) == sizeof(unsigned long long), "bad_node is updated as unsigned long long");
  if (num_nodes == 0) return cudaGetLastError();
  importance_hop_kernel<scalar_t><<<grid_size(num_nodes, kBlockSize), kBlockSize, 0, stream>>>(
      rowptr, in_rowptr, in_src, scores, member, next, reached, reinterpret_cast<unsigned long long*>(bad_node),
      num_nodes);
  return cudaGetLastError();
}

template cudaError_t launch_importance_seed<float>(const int64_t*, float*, bool*, int64_t, cudaStream_t);
template cudaError_t launch_importance_seed<double>(const int64_t*, double*, bool*, int64_t, cudaStream_t);
template cudaError_t launch_importance_hop<float>(const int64_t*, const int64_t*, const int64_t*, const float*,
                                                  const bool*, float*, bool*, int64_t*, int64_t, cudaStream_t);
template cudaError_t launch_importance_hop<double>(const int64_t*, const int64_t*, const int64_t*, const double*,
                                                   const bool*, double*, bool*, int64_t*, int64_t, cudaStream_t);

}  // namespace ifru
