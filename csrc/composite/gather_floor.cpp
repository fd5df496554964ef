// ifru::_gather_floor from ATen ops alone (one gather and one column sum): the floor probe on every
// device without its own kernel (CPU has a tight loop in cpu/gather_floor.cpp).
#include <torch/library.h>

#include "../checks.h"

namespace ifru {
namespace {

at::Tensor gather_floor(const at::Tensor& table, const at::Tensor& index) {
  check_gather_floor_args(table, index);
  return table.index_select(0, index).sum(0);
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CompositeExplicitAutograd, m) { m.impl("_gather_floor", &gather_floor); }

}  // namespace ifru
