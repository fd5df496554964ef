// CUDA registration of ifru::propagate: the argument checks and layer loop of cpu/propagate.cpp
// around the one-layer launcher of propagate.cu. Compiled only in CUDA builds.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../checks.h"
#include "launchers.h"

namespace ifru {
namespace {

at::Tensor propagate_cuda(const at::Tensor& rowptr,  // [N+1] int64
                          const at::Tensor& col,     // [nnz] int64
                          const at::Tensor& weight,  // [nnz]
                          const at::Tensor& x,       // [N, d]
                          int64_t num_layers, bool /*symmetric: only the backward uses it*/) {
  check_propagate_args(rowptr, col, weight, x, num_layers);
  const c10::cuda::CUDAGuard device_guard(x.device());
  const auto rowptr_c = rowptr.contiguous();
  const auto col_c = col.contiguous();
  const auto weight_c = weight.contiguous();
  auto acc = x.contiguous().clone();
  if (num_layers == 0 || x.numel() == 0) return acc;

  const int64_t num_rows = x.size(0);
  const int64_t d = x.size(1);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ifru_propagate_cuda", [&] {
    at::Tensor cur = x.contiguous();
    at::Tensor next = at::empty_like(acc);
    for (int64_t layer = 1; layer <= num_layers; ++layer) {
      const bool last = layer == num_layers;
      const scalar_t acc_scale = last ? scalar_t(1) / scalar_t(num_layers + 1) : scalar_t(1);
      scalar_t* next_ptr = last ? nullptr : next.data_ptr<scalar_t>();
      const cudaError_t err = launch_propagate_layer<scalar_t>(
          rowptr_c.data_ptr<int64_t>(), col_c.data_ptr<int64_t>(), weight_c.data_ptr<scalar_t>(),
          cur.data_ptr<scalar_t>(), next_ptr, acc.data_ptr<scalar_t>(), acc_scale, num_rows, d, stream);
      TORCH_CHECK(err == cudaSuccess, "ifru::propagate: CUDA kernel launch failed: ", cudaGetErrorString(err));
      if (!last) {
        // The previous input becomes the next layer's output buffer (never x itself).
        at::Tensor spent = layer == 1 ? at::empty_like(acc) : cur;
        cur = next;
        next = spent;
      }
    }
  });
  // x and weight are finite (checked above), so a non-finite result is an overflow of A^k x.
  check_finite_result(acc, "ifru::propagate", kPropagateOverflowHint);
  return acc;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CUDA, m) { m.impl("propagate", &propagate_cuda); }

}  // namespace ifru
