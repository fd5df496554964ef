// Device helpers shared by the .cu files: lane groups (a power-of-two slice of a warp that
// works on one row), 16-byte packed loads, and launch shapes with grid-stride loops.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ifru {
namespace cuda_detail {

constexpr int kBlockSize = 256;        // threads per block (8 warps)
constexpr int kWarpSize = 32;
constexpr int64_t kMaxBlocks = 65535;  // grid cap; kernels loop with a grid stride

// VEC consecutive scalars loaded or stored as one 16-byte (or scalar, VEC = 1) access.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

template <typename T, int VEC>
__device__ __forceinline__ Pack<T, VEC> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, VEC>*>(p);
}

template <typename T, int VEC>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, VEC>& value) {
  *reinterpret_cast<Pack<T, VEC>*>(p) = value;
}

// Scalars per 16-byte pack: 4 floats or 2 doubles.
template <typename T>
constexpr int pack_width() {
  return static_cast<int>(16 / sizeof(T));
}

inline bool aligned_16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Lanes per group: the next power of two >= the packs per row, at most a warp.
inline int group_size_for(int64_t packs) {
  int size = 1;
  while (size < packs && size < kWarpSize) size <<= 1;
  return size;
}

// Blocks for `work` items handled by `items_per_block` each, capped at kMaxBlocks (>= 1).
inline unsigned int grid_size(int64_t work, int64_t items_per_block) {
  const int64_t blocks = (work + items_per_block - 1) / items_per_block;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

// This thread's place in a group of `size` lanes (size a power of two <= 32 that divides the
// block size, so a group never straddles warps). Groups take work items first, first + stride, …
struct Group {
  int size;
  int lane;       // 0 .. size-1
  unsigned mask;  // the group's lanes within the warp, for *_sync intrinsics
  int64_t first;
  int64_t stride;
};

__device__ __forceinline__ Group this_group(int size) {
  Group g;
  const int warp_lane = static_cast<int>(threadIdx.x) & (kWarpSize - 1);
  g.size = size;
  g.lane = warp_lane & (size - 1);
  g.mask = size == kWarpSize ? 0xffffffffu : ((1u << size) - 1u) << (warp_lane & ~(size - 1));
  const int groups_per_block = static_cast<int>(blockDim.x) / size;
  g.first = static_cast<int64_t>(blockIdx.x) * groups_per_block + static_cast<int>(threadIdx.x) / size;
  g.stride = static_cast<int64_t>(gridDim.x) * groups_per_block;
  return g;
}

// Sum over the group's lanes (xor butterfly; lane 0's result is the same on every run).
template <typename T>
__device__ __forceinline__ T group_sum(T value, const Group& g) {
  for (int offset = g.size / 2; offset > 0; offset >>= 1) value += __shfl_xor_sync(g.mask, value, offset, g.size);
  return value;
}

// Lane `src` of the group's value.
template <typename T>
__device__ __forceinline__ T group_broadcast(T value, int src, const Group& g) {
  return __shfl_sync(g.mask, value, src, g.size);
}

}  // namespace cuda_detail
}  // namespace ifru
