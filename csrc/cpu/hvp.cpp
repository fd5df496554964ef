// CPU kernel of ifru::hvp: the fused MF Hessian-vector product (docs/ARCHITECTURE.md §3).
// Pass 1 (parallel over interactions) computes x = e_u·e_i, a = v_u·e_i + e_u·v_i and the
// two per-interaction coefficients; pass 2 (parallel over rows) gathers each row's
// incidences in interaction order, so the sums are deterministic and need no atomics.
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

// Interactions grouped by endpoint row (a counting sort, stable in interaction order):
// row r's incidences are [rowptr[r], rowptr[r+1]) of (interaction, other endpoint).
struct Incidence {
  std::vector<int64_t> rowptr, interaction, other;
};

Incidence group_by_row(const int64_t* users, const int64_t* items, const std::vector<char>& active,
                       const bool* keep, int64_t n, int64_t num_rows) {
  Incidence g;
  g.rowptr.assign(num_rows + 1, 0);
  auto kept = [&](int64_t r) { return keep == nullptr || keep[r]; };
  for (int64_t j = 0; j < n; ++j) {
    if (!active[j]) continue;
    if (kept(users[j])) ++g.rowptr[users[j] + 1];
    if (kept(items[j])) ++g.rowptr[items[j] + 1];
  }
  for (int64_t r = 0; r < num_rows; ++r) g.rowptr[r + 1] += g.rowptr[r];
  g.interaction.resize(g.rowptr[num_rows]);
  g.other.resize(g.rowptr[num_rows]);
  std::vector<int64_t> fill(g.rowptr.begin(), g.rowptr.end() - 1);
  for (int64_t j = 0; j < n; ++j) {
    if (!active[j]) continue;
    const int64_t u = users[j], i = items[j];
    if (kept(u)) { g.interaction[fill[u]] = j; g.other[fill[u]++] = i; }
    if (kept(i)) { g.interaction[fill[i]] = j; g.other[fill[i]++] = u; }
  }
  return g;
}

template <typename scalar_t>
void mf_hvp_kernel(const scalar_t* emb,     // [N, d]
                   const scalar_t* v,       // [N, d]
                   const int64_t* users,    // [n]
                   const int64_t* items,    // [n]
                   const scalar_t* labels,  // [n]
                   const bool* keep,        // [N] or nullptr
                   scalar_t* out,           // [N, d], zero-initialised
                   int64_t n, int64_t num_rows, int64_t d) {
  auto kept = [&](int64_t r) { return keep == nullptr || keep[r]; };
  const scalar_t inv_n = scalar_t(1) / scalar_t(n);
  std::vector<scalar_t> curvature(n), slope(n);  // (1/n)·ℓ''·a and (1/n)·ℓ' per interaction
  std::vector<char> active(n);
  at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      if (j + kPrefetchAhead < end) {
        const int64_t next_u = users[j + kPrefetchAhead], next_i = items[j + kPrefetchAhead];
        prefetch_row(emb + next_u * d, d);
        prefetch_row(emb + next_i * d, d);
        prefetch_row(v + next_u * d, d);
        prefetch_row(v + next_i * d, d);
      }
      const int64_t u = users[j], i = items[j];
      const bool keep_u = kept(u), keep_i = kept(i);
      // Both rows pruned: every term lands in rows that are zeroed anyway.
      active[j] = keep_u || keep_i;
      if (!active[j]) continue;
      const scalar_t* e_u = emb + u * d;
      const scalar_t* e_i = emb + i * d;
      const scalar_t x = dot(e_u, e_i, d);
      const scalar_t a = (keep_u ? dot(v + u * d, e_i, d) : 0) + (keep_i ? dot(e_u, v + i * d, d) : 0);
      const scalar_t sigma = scalar_t(1) / (scalar_t(1) + std::exp(-x));
      curvature[j] = inv_n * sigma * (scalar_t(1) - sigma) * a;
      slope[j] = inv_n * (sigma - labels[j]);
    }
  });
  const Incidence g = group_by_row(users, items, active, keep, n, num_rows);
  at::parallel_for(0, num_rows, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      scalar_t* __restrict__ out_r = out + r * d;  // out is a fresh buffer: never aliases emb or v
      for (int64_t k = g.rowptr[r]; k < g.rowptr[r + 1]; ++k) {
        if (k + kPrefetchAhead < g.rowptr[num_rows]) {
          const int64_t ahead = g.other[k + kPrefetchAhead];
          prefetch_row(emb + ahead * d, d);
          prefetch_row(v + ahead * d, d);
        }
        const int64_t j = g.interaction[k], o = g.other[k];
        const scalar_t c = curvature[j];
        const scalar_t* __restrict__ e_o = emb + o * d;
        if (kept(o)) {
          const scalar_t s = slope[j];
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
                      const at::Tensor& labels, const c10::optional<at::Tensor>& keep) {
  auto out = at::zeros_like(emb, at::MemoryFormat::Contiguous);
  const int64_t n = users.numel();
  if (n == 0 || emb.numel() == 0) return out;
  const auto emb_c = emb.contiguous(), v_c = v.contiguous(), users_c = users.contiguous(),
             items_c = items.contiguous(), labels_c = labels.contiguous();
  const auto keep_c = keep.has_value() ? keep->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(emb.scalar_type(), "ifru_mf_hvp_cpu", [&] {
    mf_hvp_kernel<scalar_t>(emb_c.data_ptr<scalar_t>(), v_c.data_ptr<scalar_t>(), users_c.data_ptr<int64_t>(),
                            items_c.data_ptr<int64_t>(), labels_c.data_ptr<scalar_t>(),
                            keep_c.defined() ? keep_c.data_ptr<bool>() : nullptr, out.data_ptr<scalar_t>(), n,
                            emb.size(0), emb.size(1));
  });
  return out;
}

at::Tensor hvp_cpu(const at::Tensor& emb, const at::Tensor& v, const at::Tensor& users, const at::Tensor& items,
                   const at::Tensor& labels, const c10::optional<at::Tensor>& rowptr,
                   const c10::optional<at::Tensor>& col, const c10::optional<at::Tensor>& weight, int64_t num_layers,
                   double l2, const c10::optional<at::Tensor>& keep, bool symmetric) {
  return hvp_composite(&mf_hvp_cpu, emb, v, users, items, labels, rowptr, col, weight, num_layers, l2, keep,
                       symmetric);
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) { m.impl("hvp", &hvp_cpu); }

}  // namespace ifru
