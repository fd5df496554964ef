// CPU kernel of ifru::importance: the paper's Algorithm 1 (docs/ARCHITECTURE.md §3).
//   s0_v = seed_counts_v / |N_v|, S0 = {v : seed_counts_v > 0}, keep the top a_0 of S0;
//   hop k: s_k = s_{k-1} + (Σ_{v ∈ S_{k-1}, v' ∈ N_v} s_{k-1}[v]) / |N_v'| for every v',
//   S_k = the nodes reached, keep the top a_k of S_k.
// Returns s_K and the union S0 ∪ … ∪ SK. Scatters along rows are done as gathers along
// the rows of Aᵀ (ascending source order), so results are deterministic.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "../checks.h"
#include "../dispatch.h"

namespace ifru {
namespace {

// Keeps round-half-up(ratio·|S|) members of S with the highest score; ties go to the lower index.
template <typename scalar_t>
void keep_top_fraction(std::vector<char>& member, const scalar_t* score, double ratio) {
  std::vector<int64_t> candidates;
  for (int64_t v = 0; v < static_cast<int64_t>(member.size()); ++v)
    if (member[v]) candidates.push_back(v);
  const auto count = static_cast<int64_t>(candidates.size());
  const auto kept = std::min<int64_t>(count, static_cast<int64_t>(std::floor(ratio * count + 0.5)));
  if (kept == count) return;
  auto higher = [&](int64_t a, int64_t b) { return score[a] > score[b] || (score[a] == score[b] && a < b); };
  std::nth_element(candidates.begin(), candidates.begin() + kept, candidates.end(), higher);
  for (int64_t r = kept; r < count; ++r) member[candidates[r]] = 0;
}

std::tuple<at::Tensor, at::Tensor> importance_cpu(const at::Tensor& rowptr,       // [N+1]
                                                  const at::Tensor& col,          // [nnz]
                                                  const at::Tensor& seed_counts,  // [N]
                                                  at::ArrayRef<double> ratios,    // [K+1]
                                                  bool symmetric)
{
  check_importance_args(rowptr, col, seed_counts, ratios);
  const int64_t num_nodes = seed_counts.numel();
  const auto rowptr_c = rowptr.contiguous();
  // Hops gather along the rows of Aᵀ: A's own when it is symmetric, none for K = 0. The
  // transpose's weight is not read: an uninitialised byte vector (bytes are not value-checked,
  // floats must be finite).
  at::Tensor t_rowptr, t_col;
  if (ratios.size() > 1 && symmetric) {
    t_rowptr = rowptr_c;
    t_col = col.contiguous();
  } else if (ratios.size() > 1) {
    std::tie(t_rowptr, t_col, std::ignore) =
        call_csr_transpose(rowptr_c, col, at::empty({col.numel()}, col.options().dtype(at::kByte)));
  }
  auto scores = seed_counts.contiguous().clone();
  auto keep = at::zeros({num_nodes}, seed_counts.options().dtype(at::kBool));
  AT_DISPATCH_FLOATING_TYPES(seed_counts.scalar_type(), "ifru_importance_cpu", [&] {
    const int64_t* rp = rowptr_c.data_ptr<int64_t>();
    const int64_t* in_ptr = t_rowptr.defined() ? t_rowptr.data_ptr<int64_t>() : nullptr;
    const int64_t* in_src = t_col.defined() ? t_col.data_ptr<int64_t>() : nullptr;
    scalar_t* s = scores.data_ptr<scalar_t>();
    bool* keep_ptr = keep.data_ptr<bool>();
    auto degree = [&](int64_t v) { return rp[v + 1] - rp[v]; };

    std::vector<char> member(num_nodes);
    for (int64_t v = 0; v < num_nodes; ++v) {
      member[v] = s[v] > 0;
      if (member[v]) s[v] /= scalar_t(degree(v));
    }
    keep_top_fraction(member, s, ratios[0]);
    for (int64_t v = 0; v < num_nodes; ++v) keep_ptr[v] = member[v];

    std::vector<scalar_t> next(num_nodes);
    std::vector<char> reached(num_nodes);
    std::atomic<int64_t> asymmetric_node{-1};
    for (size_t hop = 1; hop < ratios.size(); ++hop) {
      at::parallel_for(0, num_nodes, 1024, [&](int64_t begin, int64_t end) {
        for (int64_t target = begin; target < end; ++target) {
          scalar_t incoming = 0;
          bool any = false;
          for (int64_t e = in_ptr[target]; e < in_ptr[target + 1]; ++e) {
            const int64_t source = in_src[e];
            if (member[source]) { incoming += s[source]; any = true; }
          }
          reached[target] = any;
          next[target] = s[target];
          if (!any) continue;
          if (degree(target) == 0) { asymmetric_node.store(target); continue; }
          next[target] += incoming / scalar_t(degree(target));
        }
      });
      const int64_t bad = asymmetric_node.load();
      TORCH_CHECK_VALUE(bad < 0, "ifru::importance: node ", bad, " is a neighbour of a selected node but has no "
                        "row entries; the adjacency must list every edge in both directions");
      std::copy(next.begin(), next.end(), s);
      member.swap(reached);
      keep_top_fraction(member, s, ratios[hop]);
      for (int64_t v = 0; v < num_nodes; ++v) keep_ptr[v] = keep_ptr[v] || member[v];
    }
  });
  return {scores, keep};
}

}  // namespace

TORCH_LIBRARY_IMPL(ifru, CPU, m) { m.impl("importance", &importance_cpu); }

}  // namespace ifru
