// Row-parallel loops over uneven rows, split by work instead of by row count: the CPU kernels
// that sum each row's entries (propagate, the HVP's pass 2) hand every thread about the same
// number of entries. A split by rows would not: in the stacked table the user rows come first,
// and on BookCrossing the first half of the rows holds ~79% of the graph's entries.
// Each row is still summed by one thread in its own order, so results do not depend on the split.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace ifru {

// Runs body(begin, end) over [0, num_rows) in chunks of about equal work, where rows [0, r) cost
// work_before(r) (non-decreasing, work_before(0) = 0). About four chunks per thread, none
// smaller than min_work unless there is less work than that in all.
template <typename WorkBefore, typename Body>
void parallel_rows_by_work(int64_t num_rows, const WorkBefore& work_before, int64_t min_work, const Body& body) {
  if (num_rows <= 0) return;
  const int64_t total = work_before(num_rows);
  const int64_t threads = at::get_num_threads();
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(4 * threads, total / std::max<int64_t>(1, min_work)));
  if (chunks == 1) {
    body(0, num_rows);
    return;
  }
  std::vector<int64_t> bound(chunks + 1, num_rows);
  bound[0] = 0;
  for (int64_t c = 1; c < chunks; ++c) {  // the first row whose preceding work reaches c/chunks of the total
    const int64_t target = total / chunks * c + total % chunks * c / chunks;
    int64_t low = bound[c - 1], high = num_rows;
    while (low < high) {
      const int64_t mid = low + (high - low) / 2;
      if (work_before(mid) < target) low = mid + 1; else high = mid;
    }
    bound[c] = low;
  }
  at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      if (bound[c] < bound[c + 1]) body(bound[c], bound[c + 1]);
    }
  });
}

}  // namespace ifru
