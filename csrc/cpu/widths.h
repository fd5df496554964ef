// The embedding widths the CPU kernels compile as constants. A kernel templated on `int D`
// (D > 0: d == D fixed at compile time, so its loops over d unroll and row sums can live in
// registers; D = 0: any d) is picked for a runtime d by with_width, one place for every kernel.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ifru {

// body(std::integral_constant<int, D>{}) for D = d when d is a compiled width, else D = 0.
template <typename Body>
decltype(auto) with_width(int64_t d, const Body& body) {
  switch (d) {
    case 16: return body(std::integral_constant<int, 16>{});
    case 32: return body(std::integral_constant<int, 32>{});
    case 48: return body(std::integral_constant<int, 48>{});
    case 64: return body(std::integral_constant<int, 64>{});
    default: return body(std::integral_constant<int, 0>{});
  }
}

}  // namespace ifru
