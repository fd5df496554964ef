// The CPU layer loop of ifru::propagate and ifru::propagate_rows: P X = (1/(K+1)) Σ_{k=0..K} A^k X
// by row-parallel CSR SpMM, the rows split among threads by their entries (balance.h), the layer
// mean summed in the last layer. Each output row is summed by one thread in CSR order: no
// atomics, deterministic. X may be given on some of its rows only (the rest zero) and P X asked
// on some rows only: propagate_rows reads and writes no other row of the first and last layers,
// where a full-table call would zero-fill X, compute every row and gather the wanted ones.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "balance.h"
#include "rows.h"
#include "widths.h"

namespace ifru {
namespace propagate_detail {

// Rows of the input are gathered in CSR order, at random: ask for them a few entries ahead so the
// loads overlap instead of stalling one after another (nearer than rows.h's kPrefetchAhead).
constexpr int64_t kLayerPrefetchAhead = 8;

// A table read by global row id v: rows + v·d, or, when `row_of` is set, row_of[v] (a listed
// row of the input, or a shared zero row: a branch-free lookup, where a branch on "listed?" was
// mispredicted on about every other entry and made the mapped layer slower than a zero-filled one).
template <typename scalar_t>
struct RowSource {
  const scalar_t* rows;
  const scalar_t* const* row_of;  // [N] or nullptr

  const scalar_t* row(int64_t v, int64_t d) const { return row_of == nullptr ? rows + v * d : row_of[v]; }
};

// One layer for output rows [begin, end): out[i] = (Σ_b earlier_b[r] + A cur[r]) * scale with
// r = out_rows[i] (r = i without out_rows). An intermediate layer has no earlier tables and scale 1
// (out is the layer's output A^k x); the last one sums x and every kept layer output with its own
// product and scales by 1/(K+1), so the mean is formed once, in the last pass, instead of a running
// sum read and written by every layer. A mapped `cur` reads the shared zero row for a row it does
// not list: the same products a zero-filled table gives, so the same bits. With `probe`,
// *probe = Σ 0·out over the rows written: 0 if they are all finite, else NaN (the overflow check
// without another pass).
// D > 0 fixes the width at compile time (d == D), so the row sum lives in registers; D = 0 takes
// any d. kMapped: `cur` has a row map (`row_of`; an extra lookup per entry only where there is one).
template <typename scalar_t, int D, bool kMapped>
void layer_rows(const int64_t* rowptr,                  // [N+1]
                const int64_t* col,                     // [nnz]
                const scalar_t* weight,                 // [nnz]
                RowSource<scalar_t> cur,                // the layer's input
                RowSource<scalar_t> first,              // earlier table 0 (x), read by the last layer
                const scalar_t* const* earlier,         // num_earlier × [N, d]; [0] unused (first)
                int64_t num_earlier,
                const int64_t* out_rows,                // [num_out] or nullptr
                scalar_t* out,                          // [num_out, d]
                scalar_t* probe,                        // one scalar or nullptr
                scalar_t scale, int64_t runtime_d, int64_t begin, int64_t end) {
  const int64_t d = D > 0 ? D : runtime_d;
  std::vector<scalar_t> buffer(D > 0 ? 0 : d);
  scalar_t fixed_sum[D > 0 ? D : 1];
  scalar_t* __restrict__ row_sum = D > 0 ? fixed_sum : buffer.data();  // aliases no input: vectorises
  // Entries are prefetched kLayerPrefetchAhead ahead across the chunk's rows: the next entries while
  // every row is written (they are consecutive), the listed rows' next entries otherwise (a cursor
  // that runs ahead of the loop; a few entries per row would leave nothing to prefetch within one).
  const int64_t chunk_last_entry = out_rows == nullptr ? rowptr[end] : 0;
  int64_t ahead_row = begin, ahead_entry = 0;
  const auto advance = [&] {  // the cursor one entry on, past exhausted listed rows
    ++ahead_entry;
    while (ahead_row < end && ahead_entry >= rowptr[out_rows[ahead_row] + 1]) {
      if (++ahead_row < end) ahead_entry = rowptr[out_rows[ahead_row]];
    }
  };
  if (out_rows != nullptr && begin < end) {
    ahead_entry = rowptr[out_rows[begin]] - 1;
    for (int64_t step = 0; step <= kLayerPrefetchAhead; ++step) advance();
  }
  const auto prefetch = [&](int64_t e) {
    int64_t target;
    if (out_rows == nullptr) {
      if (e + kLayerPrefetchAhead >= chunk_last_entry) return;
      target = col[e + kLayerPrefetchAhead];
    } else {
      if (ahead_row >= end) return;
      target = col[ahead_entry];
      advance();
    }
    prefetch_row(kMapped ? cur.row_of[target] : cur.rows + target * d, d);
  };
  scalar_t finite = 0;
  for (int64_t i = begin; i < end; ++i) {
    const int64_t r = out_rows == nullptr ? i : out_rows[i];
    std::fill(row_sum, row_sum + d, scalar_t(0));
    for (int64_t e = rowptr[r]; e < rowptr[r + 1]; ++e) {
      prefetch(e);
      const scalar_t w = weight[e];
      const scalar_t* __restrict__ src = kMapped ? cur.row_of[col[e]] : cur.rows + col[e] * d;
      for (int64_t c = 0; c < d; ++c) row_sum[c] += w * src[c];
    }
    scalar_t* out_row = out + i * d;
    if (num_earlier == 0) {
      for (int64_t c = 0; c < d; ++c) out_row[c] = row_sum[c] * scale;
    } else {
      // x + A x + … + A^K x in layer order, as a running sum over the layers would add them
      const scalar_t* first_row = first.row(r, d);
      for (int64_t c = 0; c < d; ++c) out_row[c] = first_row[c];
      for (int64_t b = 1; b < num_earlier; ++b) {
        const scalar_t* layer_row = earlier[b] + r * d;
        for (int64_t c = 0; c < d; ++c) out_row[c] += layer_row[c];
      }
      for (int64_t c = 0; c < d; ++c) out_row[c] = (out_row[c] + row_sum[c]) * scale;
    }
    if (probe != nullptr) {
      for (int64_t c = 0; c < d; ++c) finite += out_row[c] * scalar_t(0);
    }
  }
  if (probe != nullptr) *probe = finite;
}

}  // namespace propagate_detail

// out [num_out, d] = (P X)[out_rows] for num_layers ≥ 1, X [num_nodes, d] given as `x`: its rows
// (x_row_of [num_nodes]: row v of X is at x_row_of[v], a row of x or a zero row) or the whole
// table (x_row_of nullptr). out_rows nullptr: every row (num_out = num_nodes). The intermediate
// layers A^k X (0 < k < K) are whole tables. Arguments are checked by the caller. Returns whether every
// written value is finite.
template <typename scalar_t>
bool propagate_layers(const int64_t* rowptr, const int64_t* col, const scalar_t* weight, const scalar_t* x,
                      const scalar_t* const* x_row_of, int64_t num_nodes, const int64_t* out_rows, int64_t num_out,
                      int64_t d, int64_t num_layers, scalar_t* out, const at::TensorOptions& options) {
  using propagate_detail::layer_rows;
  using propagate_detail::RowSource;
  // Work of output rows [0, i): their entries plus one unit per row (its output row), in chunks of
  // at least ~32k multiply-adds.
  std::vector<int64_t> prefix;
  if (out_rows != nullptr) {
    prefix.resize(num_out + 1, 0);
    for (int64_t i = 0; i < num_out; ++i) {
      prefix[i + 1] = prefix[i] + rowptr[out_rows[i] + 1] - rowptr[out_rows[i]] + 1;
    }
  }
  const auto whole_work = [rowptr](int64_t r) { return rowptr[r] + r; };
  const auto listed_work = [&prefix](int64_t i) { return prefix[i]; };
  const int64_t min_work = std::max<int64_t>(1, 32768 / std::max<int64_t>(d, 1));
  const RowSource<scalar_t> first{x, x_row_of};
  // The outputs A x, …, A^{K−1} x of the intermediate layers (whole tables), kept for the last
  // layer's sum (K − 1 tables beside x: as many as a running sum's two ping-pong buffers for K = 3).
  std::vector<at::Tensor> kept;
  std::vector<const scalar_t*> earlier{nullptr};  // [0] is x, read through `first`
  RowSource<scalar_t> cur = first;
  std::vector<scalar_t> probes(num_out + 1, scalar_t(0));  // per chunk of the last layer, by its first row
  for (int64_t layer = 1; layer <= num_layers; ++layer) {
    const bool last = layer == num_layers;
    const bool mapped = cur.row_of != nullptr;
    const auto rows_of_layer = with_width(d, [mapped](auto width) {
      constexpr int D = decltype(width)::value;
      return mapped ? &layer_rows<scalar_t, D, true> : &layer_rows<scalar_t, D, false>;
    });
    at::Tensor table = last ? at::Tensor() : at::empty({num_nodes, d}, options);
    scalar_t* target = last ? out : table.data_ptr<scalar_t>();
    const int64_t* targets = last ? out_rows : nullptr;
    const scalar_t* const* sum_of = last ? earlier.data() : nullptr;
    const int64_t num_earlier = last ? static_cast<int64_t>(earlier.size()) : 0;
    const scalar_t scale = last ? scalar_t(1) / scalar_t(num_layers + 1) : scalar_t(1);
    const auto body = [&](int64_t begin, int64_t end) {
      rows_of_layer(rowptr, col, weight, cur, first, sum_of, num_earlier, targets, target,
                    last ? &probes[begin] : nullptr, scale, d, begin, end);
    };
    if (targets != nullptr) {
      parallel_rows_by_work(num_out, listed_work, min_work, body);
    } else {
      parallel_rows_by_work(last ? num_out : num_nodes, whole_work, min_work, body);
    }
    if (!last) {
      kept.push_back(table);
      earlier.push_back(table.data_ptr<scalar_t>());
      cur = RowSource<scalar_t>{table.data_ptr<scalar_t>(), nullptr};
    }
  }
  bool finite = true;
  for (const scalar_t probe : probes) finite = finite && probe == scalar_t(0);
  return finite;
}

}  // namespace ifru
