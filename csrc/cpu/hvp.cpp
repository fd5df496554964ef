// CPU kernel of ifru::hvp and ifru::bpr_hvp: the fused MF Hessian-vector product
// (docs/ARCHITECTURE.md §3). Pass 1 (parallel over interactions) computes x = e_u·e_i,
// a = v_u·e_i + e_u·v_i (BPR: the difference of these over the positive and the negative item)
// and the two per-interaction coefficients; pass 2 (parallel over rows) gathers each row's
// incidences in pair order, so the sums are deterministic and need no atomics.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

#include "../composite/hvp.h"

namespace ifru {
namespace {

// Eight independent partial sums: a single running sum is one long dependent chain that
// the compiler may not reorder (no fast-math), so it could neither vectorise nor pipeline.
template <typename scalar_t>
scalar_t dot(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b, int64_t d) {
  constexpr int64_t kLanes = 8;
  scalar_t partial[kLanes] = {};
  int64_t c = 0;
  for (; c + kLanes <= d; c += kLanes) {
    for (int64_t lane = 0; lane < kLanes; ++lane) partial[lane] += a[c + lane] * b[c + lane];
  }
  scalar_t total = 0;
  for (; c < d; ++c) total += a[c] * b[c];
  for (int64_t lane = 0; lane < kLanes; ++lane) total += partial[lane];
  return total;
}

// The rows an interaction touches are random: ask for them a few interactions ahead so the
// loads overlap instead of stalling one after another (the kernel is bound by that latency).
constexpr int64_t kPrefetchAhead = 8;

template <typename scalar_t>
inline void prefetch_row(const scalar_t* row, int64_t d) {
  const char* bytes = reinterpret_cast<const char*>(row);
  for (int64_t offset = 0; offset < d * static_cast<int64_t>(sizeof(scalar_t)); offset += 64) {
    __builtin_prefetch(bytes + offset);
  }
}

// Interaction j is kPairs pairs: pair p = kPairs·j + k joins users[j] with items[k][j] (k = 0: items,
// k = 1: neg_items) and enters the logit with the sign +1 (k = 0) or −1 (k = 1).
template <int kPairs>
struct Pairs {
  const int64_t* users;
  const int64_t* items[kPairs];
  static constexpr int64_t interaction(int64_t p) { return p / kPairs; }
  static constexpr int slot(int64_t p) { return static_cast<int>(p % kPairs); }
  int64_t item(int64_t p) const { return items[slot(p)][interaction(p)]; }
};

// acc + term for pair slot 0, acc − term for slot 1 (the sign of the pair in the logit).
template <typename scalar_t>
inline scalar_t signed_add(scalar_t acc, scalar_t term, int slot) {
  return slot == 0 ? acc + term : acc - term;
}

// Pairs grouped by endpoint row (a counting sort, stable in pair order): row r's incidences
// are [rowptr[r], rowptr[r+1]) of (pair, other endpoint).
struct Incidence {
  std::vector<int64_t> rowptr, pair, other;
};

template <int kPairs>
Incidence group_by_row(const Pairs<kPairs>& pairs, const std::vector<char>& active, const bool* keep, int64_t n,
                       int64_t num_rows) {
  Incidence g;
  g.rowptr.assign(num_rows + 1, 0);
  auto kept = [&](int64_t r) { return keep == nullptr || keep[r]; };
  const int64_t num_pairs = kPairs * n;
  for (int64_t p = 0; p < num_pairs; ++p) {
    if (!active[pairs.interaction(p)]) continue;
    const int64_t u = pairs.users[pairs.interaction(p)], i = pairs.item(p);
    if (kept(u)) ++g.rowptr[u + 1];
    if (kept(i)) ++g.rowptr[i + 1];
  }
  for (int64_t r = 0; r < num_rows; ++r) g.rowptr[r + 1] += g.rowptr[r];
  g.pair.resize(g.rowptr[num_rows]);
  g.other.resize(g.rowptr[num_rows]);
  std::vector<int64_t> fill(g.rowptr.begin(), g.rowptr.end() - 1);
  for (int64_t p = 0; p < num_pairs; ++p) {
    if (!active[pairs.interaction(p)]) continue;
    const int64_t u = pairs.users[pairs.interaction(p)], i = pairs.item(p);
    if (kept(u)) { g.pair[fill[u]] = p; g.other[fill[u]++] = i; }
    if (kept(i)) { g.pair[fill[i]] = p; g.other[fill[i]++] = u; }
  }
  return g;
}

template <typename scalar_t, int kPairs>
void mf_hvp_kernel(const scalar_t* emb,        // [N, d]
                   const scalar_t* v,          // [N, d]
                   const Pairs<kPairs>& pairs,  // users, items[k] [n]
                   const scalar_t* labels,     // [n], or nullptr for labels 1
                   const bool* keep,           // [N] or nullptr
                   scalar_t* out,              // [N, d], zero-initialised
                   int64_t n, int64_t num_rows, int64_t d) {
  auto kept = [&](int64_t r) { return keep == nullptr || keep[r]; };
  const scalar_t inv_n = scalar_t(1) / scalar_t(n);
  std::vector<scalar_t> curvature(n), slope(n);  // (1/n)·ℓ''·a and (1/n)·ℓ' per interaction
  std::vector<char> active(n);
  at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      if (j + kPrefetchAhead < end) {
        const int64_t next_u = pairs.users[j + kPrefetchAhead];
        prefetch_row(emb + next_u * d, d);
        prefetch_row(v + next_u * d, d);
        for (int k = 0; k < kPairs; ++k) {
          const int64_t next_i = pairs.items[k][j + kPrefetchAhead];
          prefetch_row(emb + next_i * d, d);
          prefetch_row(v + next_i * d, d);
        }
      }
      const int64_t u = pairs.users[j];
      const bool keep_u = kept(u);
      // Every row pruned: every term lands in rows that are zeroed anyway.
      bool any_kept = keep_u;
      for (int k = 0; k < kPairs; ++k) any_kept = any_kept || kept(pairs.items[k][j]);
      active[j] = any_kept;
      if (!any_kept) continue;
      const scalar_t* e_u = emb + u * d;
      scalar_t x = 0, a = 0;
      for (int k = 0; k < kPairs; ++k) {
        const int64_t i = pairs.items[k][j];
        const scalar_t* e_i = emb + i * d;
        x = signed_add(x, dot(e_u, e_i, d), k);
        a = signed_add(a, (keep_u ? dot(v + u * d, e_i, d) : 0) + (kept(i) ? dot(e_u, v + i * d, d) : 0), k);
      }
      const scalar_t sigma = scalar_t(1) / (scalar_t(1) + std::exp(-x));
      curvature[j] = inv_n * sigma * (scalar_t(1) - sigma) * a;
      slope[j] = inv_n * (sigma - (labels == nullptr ? scalar_t(1) : labels[j]));
    }
  });
  const Incidence g = group_by_row(pairs, active, keep, n, num_rows);
  at::parallel_for(0, num_rows, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      scalar_t* __restrict__ out_r = out + r * d;  // out is a fresh buffer: never aliases emb or v
      for (int64_t k = g.rowptr[r]; k < g.rowptr[r + 1]; ++k) {
        if (k + kPrefetchAhead < g.rowptr[num_rows]) {
          const int64_t ahead = g.other[k + kPrefetchAhead];
          prefetch_row(emb + ahead * d, d);
          prefetch_row(v + ahead * d, d);
        }
        const int64_t p = g.pair[k], o = g.other[k];
        const int64_t j = pairs.interaction(p);
        const scalar_t c = signed_add(scalar_t(0), curvature[j], pairs.slot(p));
        const scalar_t* __restrict__ e_o = emb + o * d;
        if (kept(o)) {
          const scalar_t s = signed_add(scalar_t(0), slope[j], pairs.slot(p));
          const scalar_t* __restrict__ v_o = v + o * d;
          for (int64_t t = 0; t < d; ++t) out_r[t] += c * e_o[t] + s * v_o[t];
        } else {
          for (int64_t t = 0; t < d; ++t) out_r[t] += c * e_o[t];
        }
      }
    }
  });
}

at::Tensor mf_hvp_cpu(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users, const at::Tensor& items,
                      const c10::optional<at::Tensor>& neg_items, const c10::optional<at::Tensor>& labels,
                      const c10::optional<at::Tensor>& keep) {
  auto out = at::zeros_like(emb, at::MemoryFormat::Contiguous);
  const int64_t n = users.numel();
  if (n == 0 || emb.numel() == 0) return out;
  const auto emb_c = emb.contiguous(), v_c = v.contiguous(), users_c = users.contiguous(),
             items_c = items.contiguous();
  const auto neg_c = neg_items.has_value() ? neg_items->contiguous() : at::Tensor();
  const auto labels_c = labels.has_value() ? labels->contiguous() : at::Tensor();
  const auto keep_c = keep.has_value() ? keep->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "ifru_mf_hvp_cpu", [&] {
    const scalar_t* labels_ptr = labels_c.defined() ? labels_c.data_ptr<scalar_t>() : nullptr;
    const bool* keep_ptr = keep_c.defined() ? keep_c.data_ptr<bool>() : nullptr;
    const int64_t* users_ptr = users_c.data_ptr<int64_t>();
    const int64_t* items_ptr = items_c.data_ptr<int64_t>();
    if (neg_c.defined()) {
      const Pairs<2> pairs{users_ptr, {items_ptr, neg_c.data_ptr<int64_t>()}};
      mf_hvp_kernel<scalar_t, 2>(emb_c.data_ptr<scalar_t>(), v_c.data_ptr<scalar_t>(), pairs, labels_ptr, keep_ptr,
                                 out.data_ptr<scalar_t>(), n, emb.size(0), emb.size(1));
    } else {
      const Pairs<1> pairs{users_ptr, {items_ptr}};
      mf_hvp_kernel<scalar_t, 1>(emb_c.data_ptr<scalar_t>(), v_c.data_ptr<scalar_t>(), pairs, labels_ptr, keep_ptr,
                                 out.data_ptr<scalar_t>(), n, emb.size(0), emb.size(1));
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) {
  m.impl("hvp", &hvp_with<&mf_hvp_cpu>);
  m.impl("bpr_hvp", &bpr_hvp_with<&mf_hvp_cpu>);
}

}  // namespace ifru
