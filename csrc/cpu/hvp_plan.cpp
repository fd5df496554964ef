// CPU kernel of ifru::hvp_plan (docs/ARCHITECTURE.md §3): which rows and interactions an HVP
// restricted to keep reads, the interactions grouped by user and their pairs by row with counting
// sorts run in parallel chunks (StableBuckets), O(n + N) (+ K·nnz for the reach). The
// device-generic composite (composite/hvp_plan.cpp) builds the same tensors with stable sorts:
// both order the interactions by user, then index, and list a row's pair slots in ascending
// order, so the plans are identical.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../dispatch.h"

namespace ifru {
namespace {

// The rows within num_layers hops of `inner` (bool [N], updated in place) along the CSR structure:
// row s joins when one of its columns is in the set (weights are not read).
void grow_by_hops(std::vector<char>& inner, const int64_t* rowptr, const int64_t* col, int64_t num_nodes,
                  int64_t num_layers) {
  for (int64_t hop = 0; hop < num_layers; ++hop) {
    std::vector<char> next(inner);
    at::parallel_for(0, num_nodes, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; ++s) {
        if (inner[s]) continue;
        for (int64_t e = rowptr[s]; e < rowptr[s + 1]; ++e) {
          if (inner[col[e]]) {
            next[s] = 1;
            break;
          }
        }
      }
    });
    inner.swap(next);
  }
}

// A stable counting sort over contiguous chunks of items, parallel: each chunk counts its entries
// per bucket, every bucket's slots are handed to the chunks in chunk order, and each chunk places
// its own. A bucket lists its entries in item order (then in the order an item emits them), as
// one serial counting sort would: the same output whatever the number of chunks or threads.
// emit(i, put) calls put(bucket, value) for each entry of item i.
class StableBuckets {
 public:
  StableBuckets(int64_t num_items, int64_t num_buckets)
      : num_items_(num_items),
        num_buckets_(num_buckets),
        chunks_(std::max<int64_t>(1, std::min<int64_t>({at::get_num_threads(), kMaxChunks, num_items / kMinChunk}))),
        next_(chunks_ * num_buckets, 0) {}

  // Counts the entries; writes the buckets' CSR offsets to rowptr [num_buckets + 1] (unless null);
  // returns the total.
  template <typename Emit>
  int64_t count(const Emit& emit, int64_t* rowptr) {
    each_chunk([&](int64_t chunk, int64_t begin, int64_t end) {
      int64_t* counts = next_.data() + chunk * num_buckets_;
      for (int64_t i = begin; i < end; ++i) emit(i, [&](int64_t bucket, int64_t) { ++counts[bucket]; });
    });
    int64_t total = 0;
    if (rowptr != nullptr) rowptr[0] = 0;
    for (int64_t bucket = 0; bucket < num_buckets_; ++bucket) {  // chunk c's entries follow chunks < c's
      for (int64_t chunk = 0; chunk < chunks_; ++chunk) {
        int64_t& slot = next_[chunk * num_buckets_ + bucket];
        const int64_t entries = slot;
        slot = total;
        total += entries;
      }
      if (rowptr != nullptr) rowptr[bucket + 1] = total;
    }
    return total;
  }

  // Places the entries counted by count() (the same emit) into out [total].
  template <typename Emit>
  void fill(const Emit& emit, int64_t* out) {
    each_chunk([&](int64_t chunk, int64_t begin, int64_t end) {
      int64_t* next = next_.data() + chunk * num_buckets_;
      for (int64_t i = begin; i < end; ++i) {
        emit(i, [&](int64_t bucket, int64_t value) { out[next[bucket]++] = value; });
      }
    });
  }

 private:
  // Chunks hold one count per bucket each, so their number stays small; below kMinChunk items per
  // chunk the split costs more than it saves.
  static constexpr int64_t kMaxChunks = 8;
  static constexpr int64_t kMinChunk = 65536;

  template <typename Body>
  void each_chunk(const Body& body) const {
    at::parallel_for(0, chunks_, 1, [&](int64_t first, int64_t last) {
      for (int64_t chunk = first; chunk < last; ++chunk) {
        body(chunk, num_items_ * chunk / chunks_, num_items_ * (chunk + 1) / chunks_);
      }
    });
  }

  int64_t num_items_, num_buckets_, chunks_;
  std::vector<int64_t> next_;  // per chunk and bucket: its count, then its next slot
};

// Positions of the set rows of `mask` [N] in ascending order, as int64 [count].
at::Tensor set_rows(const std::vector<char>& mask, const at::TensorOptions& options) {
  int64_t count = 0;
  for (char m : mask) count += m;
  auto rows = at::empty({count}, options);
  int64_t* out = rows.data_ptr<int64_t>();
  for (int64_t r = 0, k = 0; r < static_cast<int64_t>(mask.size()); ++r) {
    if (mask[r]) out[k++] = r;
  }
  return rows;
}

HvpPlan hvp_plan_cpu(const at::Tensor& users, const at::Tensor& items, const c10::optional<at::Tensor>& neg_items,
                     const c10::optional<at::Tensor>& keep, int64_t num_nodes,
                     const c10::optional<at::Tensor>& rowptr, const c10::optional<at::Tensor>& col,
                     int64_t num_layers) {
  check_hvp_plan_args(users, items, neg_items, keep, num_nodes, rowptr, col, num_layers);
  const auto options = users.options();
  const int64_t n = users.numel();
  const int num_ends = neg_items.has_value() ? 3 : 2;
  const int num_pairs = num_ends - 1;
  const at::Tensor ends_in[3] = {users.contiguous(), items.contiguous(),
                                 neg_items.has_value() ? neg_items->contiguous() : at::Tensor()};
  const int64_t* endpoint[3] = {};
  for (int e = 0; e < num_ends; ++e) endpoint[e] = ends_in[e].data_ptr<int64_t>();

  // Rows: keep's (all without keep); inner rows: their reach, where the inner MF HVP reads and writes.
  std::vector<char> outer(num_nodes, 1);
  if (keep.has_value()) {
    const auto keep_c = keep->contiguous();
    const bool* k = keep_c.data_ptr<bool>();
    for (int64_t r = 0; r < num_nodes; ++r) outer[r] = k[r];
  }
  std::vector<char> inner(outer);
  if (keep.has_value() && num_layers > 0) {
    const auto rowptr_c = rowptr->contiguous(), col_c = col->contiguous();
    grow_by_hops(inner, rowptr_c.data_ptr<int64_t>(), col_c.data_ptr<int64_t>(), num_nodes, num_layers);
  }
  const at::Tensor rows = set_rows(outer, options);
  const at::Tensor inner_rows = set_rows(inner, options);
  std::vector<int64_t> position(num_nodes, -1);  // row -> its index in inner_rows, or -1
  for (int64_t r = 0, k = 0; r < num_nodes; ++r) {
    if (inner[r]) position[r] = k++;
  }

  // Interactions with an endpoint among the inner rows (the others only write rows read as zero),
  // grouped by user (a counting sort: ascending user, then ascending index). The kernel then reads
  // a user's rows for consecutive interactions, and each item row's incidences visit their users
  // in address order (BookCrossing MF, 2 threads: the Gauss–Newton product 36–47 → 24–29 ms).
  std::vector<char> active(n);
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      char any = 0;
      for (int e = 0; e < num_ends; ++e) any |= inner[endpoint[e][j]];
      active[j] = any;
    }
  });
  StableBuckets by_user(n, num_nodes);
  const auto user_of = [&](int64_t j, const auto& put) {
    if (active[j]) put(endpoint[0][j], j);
  };
  const int64_t a = by_user.count(user_of, nullptr);
  const at::Tensor interactions = at::empty({a}, options);
  by_user.fill(user_of, interactions.data_ptr<int64_t>());
  auto ends = at::empty({2, num_ends, a}, options);
  const int64_t* picked = interactions.data_ptr<int64_t>();
  int64_t* global = ends.data_ptr<int64_t>();
  int64_t* local = global + num_ends * a;
  at::parallel_for(0, a, 4096, [&](int64_t begin, int64_t end) {
    for (int e = 0; e < num_ends; ++e) {
      for (int64_t jj = begin; jj < end; ++jj) {
        const int64_t r = endpoint[e][picked[jj]];
        global[e * a + jj] = r;
        local[e * a + jj] = position[r];
      }
    }
  });

  // Pair p = num_pairs·j + q seen from its user (slot 2p) and from its item q (slot 2p + 1), each
  // listed under its row when that row is inner: a counting sort in slot order.
  const auto incidences_of = [&](int64_t jj, const auto& put) {
    for (int q = 0; q < num_pairs; ++q) {
      const int64_t p = num_pairs * jj + q;
      if (local[jj] >= 0) put(global[jj], 2 * p);
      if (local[(1 + q) * a + jj] >= 0) put(global[(1 + q) * a + jj], 2 * p + 1);
    }
  };
  StableBuckets by_row(a, num_nodes);
  auto incidence_rowptr = at::empty({num_nodes + 1}, options);
  auto incidence_slot = at::empty({by_row.count(incidences_of, incidence_rowptr.data_ptr<int64_t>())}, options);
  by_row.fill(incidences_of, incidence_slot.data_ptr<int64_t>());
  return {rows, inner_rows, interactions, ends, incidence_rowptr, incidence_slot};
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) { m.impl("hvp_plan", &hvp_plan_cpu); }

}  // namespace ifru
