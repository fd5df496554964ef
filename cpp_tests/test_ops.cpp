// C++ tests of the `ifru` ops, called through the dispatcher exactly as composite code
// calls them (the executable links libifru.so with --no-as-needed so its static
// initialisers register the ops). References are dense ATen / torch autograd, in float64.
// Exit status is non-zero if any check fails; the last line is "N passed, N failed".
#include <torch/torch.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#ifndef IFRU_EXPECT_CUDA
#define IFRU_EXPECT_CUDA 0
#endif

namespace {

using at::Tensor;
using OptTensor = c10::optional<at::Tensor>;

int g_passed = 0;
int g_failed = 0;

void expect(bool ok, const std::string& name, const std::string& detail = "") {
  if (ok) {
    ++g_passed;
    std::printf("PASS %s\n", name.c_str());
  } else {
    ++g_failed;
    std::printf("FAIL %s %s\n", name.c_str(), detail.c_str());
  }
  std::fflush(stdout);
}

void expect_close(const Tensor& got, const Tensor& want, const std::string& name, double rtol = 1e-10,
                  double atol = 1e-12) {
  if (got.sizes() != want.sizes()) {
    expect(false, name, "shape mismatch");
    return;
  }
  const double err = (got - want).abs().max().item<double>();
  const bool ok = at::allclose(got, want, rtol, atol);
  expect(ok, name, "max abs err " + std::to_string(err));
}

// Runs `fn`, expects a c10::Error (ValueError and IndexError derive from it).
void expect_throws(const std::function<void()>& fn, const std::string& name) {
  try {
    fn();
  } catch (const c10::Error&) {
    expect(true, name);
    return;
  } catch (const std::exception& e) {
    expect(false, name, std::string("threw a non-c10 exception: ") + e.what());
    return;
  }
  expect(false, name, "did not throw");
}

// ---- the ops through the dispatcher (signatures of csrc/dispatch.h and csrc/ops.cpp) ----
Tensor propagate(const Tensor& rowptr, const Tensor& col, const Tensor& weight, const Tensor& x, int64_t layers,
                 bool symmetric) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("ifru::propagate", "")
                       .typed<Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t, bool)>();
  return op.call(rowptr, col, weight, x, layers, symmetric);
}

Tensor hvp(const Tensor& emb, const Tensor& v, const Tensor& users, const Tensor& items, const Tensor& labels,
           const OptTensor& rowptr, const OptTensor& col, const OptTensor& weight, int64_t layers, double l2,
           const OptTensor& keep, bool symmetric) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("ifru::hvp", "")
                       .typed<Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                     const OptTensor&, const OptTensor&, const OptTensor&, int64_t, double,
                                     const OptTensor&, bool)>();
  return op.call(emb, v, users, items, labels, rowptr, col, weight, layers, l2, keep, symmetric);
}

std::tuple<Tensor, Tensor> importance(const Tensor& rowptr, const Tensor& col, const Tensor& seed_counts,
                                      at::ArrayRef<double> ratios, bool symmetric = false) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("ifru::importance", "")
                       .typed<std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&,
                                                         at::ArrayRef<double>, bool)>();
  return op.call(rowptr, col, seed_counts, ratios, symmetric);
}

bool with_cuda() {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("ifru::with_cuda", "").typed<bool()>();
  return op.call();
}

// ---- helpers ----------------------------------------------------------------------------
const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
const auto kI64 = torch::TensorOptions().dtype(torch::kInt64);

struct Csr {
  Tensor rowptr, col, weight;
};

// CSR of a dense square matrix (row-major nonzeros, so columns ascend within a row).
Csr dense_to_csr(const Tensor& dense) {
  const int64_t n = dense.size(0);
  const auto nz = dense.nonzero();  // [nnz, 2], row-major order
  const auto rows = nz.select(1, 0).contiguous();
  Csr c;
  c.col = nz.select(1, 1).contiguous();
  c.weight = dense.index({rows, c.col}).contiguous();
  c.rowptr = torch::zeros({n + 1}, kI64);
  c.rowptr.slice(0, 1).copy_(torch::bincount(rows, {}, n).cumsum(0));
  return c;
}

// Dense (1/(K+1)) Σ_k A^k.
Tensor dense_propagation_matrix(const Tensor& a, int64_t layers) {
  auto power = torch::eye(a.size(0), kF64);
  auto sum = power.clone();
  for (int64_t k = 1; k <= layers; ++k) {
    power = at::matmul(a, power);
    sum = sum + power;
  }
  return sum / double(layers + 1);
}

// ---- propagate --------------------------------------------------------------------------
void test_propagate() {
  const int64_t n = 40, d = 5;
  const auto mask = torch::rand({n, n}, kF64) < 0.15;
  const auto a = torch::where(mask, torch::rand({n, n}, kF64) - 0.3, torch::zeros({n, n}, kF64));
  const Csr c = dense_to_csr(a);
  const auto x = torch::randn({n, d}, kF64);
  for (int64_t layers : {0, 1, 2, 3}) {
    auto want = x.clone();
    auto cur = x;
    for (int64_t k = 1; k <= layers; ++k) {
      cur = at::matmul(a, cur);
      want = want + cur;
    }
    want = want / double(layers + 1);
    expect_close(propagate(c.rowptr, c.col, c.weight, x, layers, false), want,
                 "propagate vs dense matmul, K=" + std::to_string(layers));
  }
  // Non-contiguous x (a transposed view) must give the same answer.
  const auto xt = torch::randn({d, n}, kF64).t();
  expect_close(propagate(c.rowptr, c.col, c.weight, xt, 2, false),
               at::matmul(dense_propagation_matrix(a, 2), xt), "propagate non-contiguous x");
  // Empty rows: a graph with no edges at all returns x / (K+1) summed = x.
  const auto empty_rowptr = torch::zeros({n + 1}, kI64);
  const auto none = torch::zeros({0}, kI64);
  expect_close(propagate(empty_rowptr, none, torch::zeros({0}, kF64), x, 2, false), x / 3.0,
               "propagate with no edges");
}

// ---- hvp --------------------------------------------------------------------------------
// Reference H v of L(E) = mean BCEWithLogits((F[u]*F[i]).sum(1), labels) + l2/2 ‖E‖², F = P E
// (P dense, or identity when undefined) by autograd double backward; keep restricts both
// v and the output to the kept rows.
Tensor reference_hvp(const Tensor& emb, const Tensor& v, const Tensor& users, const Tensor& items,
                     const Tensor& labels, const Tensor& p, double l2, const OptTensor& keep) {
  auto e = emb.detach().clone().requires_grad_(true);
  const auto f = p.defined() ? at::matmul(p, e) : e;
  const auto logits = (f.index_select(0, users) * f.index_select(0, items)).sum(1);
  const auto loss = at::binary_cross_entropy_with_logits(logits, labels) + 0.5 * l2 * e.pow(2).sum();
  const auto g = torch::autograd::grad({loss}, {e}, /*grad_outputs=*/{}, /*retain_graph=*/true,
                                       /*create_graph=*/true)[0];
  const auto mask = keep.has_value() ? keep->to(torch::kFloat64).unsqueeze(1) : torch::ones({1, 1}, kF64);
  const auto hv = torch::autograd::grad({(g * (v * mask)).sum()}, {e})[0];
  return (hv * mask).detach();
}

void test_hvp() {
  const int64_t num_users = 7, num_items = 6, n_nodes = num_users + num_items, d = 4, n = 25;
  const auto users = torch::randint(0, num_users, {n}, kI64);
  const auto items = torch::randint(num_users, n_nodes, {n}, kI64);
  auto labels = torch::randint(0, 2, {n}, kF64);
  labels.slice(0, 0, 3).fill_(0.3);  // soft labels are allowed too
  const auto emb = torch::randn({n_nodes, d}, kF64);
  const auto v = torch::randn({n_nodes, d}, kF64);
  const auto keep = torch::rand({n_nodes}, kF64) < 0.6;
  const OptTensor none;

  // MF (no graph).
  for (double l2 : {0.0, 1e-2}) {
    expect_close(hvp(emb, v, users, items, labels, none, none, none, 0, l2, none, false),
                 reference_hvp(emb, v, users, items, labels, Tensor(), l2, none),
                 "hvp MF vs autograd, l2=" + std::to_string(l2));
  }
  expect_close(hvp(emb, v, users, items, labels, none, none, none, 0, 1e-2, keep, false),
               reference_hvp(emb, v, users, items, labels, Tensor(), 1e-2, keep), "hvp MF with keep vs autograd");

  // LightGCN: symmetric normalised bipartite adjacency of the interactions (symmetric=true),
  // and a random non-symmetric matrix (symmetric=false, exercises csr_transpose).
  auto adj = torch::zeros({n_nodes, n_nodes}, kF64);
  adj.index_put_({users, items}, 1.0);
  adj.index_put_({items, users}, 1.0);
  const auto deg = adj.sum(1).clamp_min(1.0);
  const auto norm = adj / (deg.sqrt().unsqueeze(1) * deg.sqrt().unsqueeze(0));
  const Csr sym = dense_to_csr(norm);
  const int64_t layers = 2;
  expect_close(hvp(emb, v, users, items, labels, sym.rowptr, sym.col, sym.weight, layers, 1e-3, none, true),
               reference_hvp(emb, v, users, items, labels, dense_propagation_matrix(norm, layers), 1e-3, none),
               "hvp LightGCN symmetric vs autograd");
  expect_close(hvp(emb, v, users, items, labels, sym.rowptr, sym.col, sym.weight, layers, 1e-3, keep, true),
               reference_hvp(emb, v, users, items, labels, dense_propagation_matrix(norm, layers), 1e-3, keep),
               "hvp LightGCN symmetric with keep vs autograd");
  const auto asym = torch::where(torch::rand({n_nodes, n_nodes}, kF64) < 0.25,
                                 torch::rand({n_nodes, n_nodes}, kF64) * 0.5, torch::zeros({n_nodes, n_nodes}, kF64));
  const Csr a = dense_to_csr(asym);
  expect_close(hvp(emb, v, users, items, labels, a.rowptr, a.col, a.weight, 3, 0.0, none, false),
               reference_hvp(emb, v, users, items, labels, dense_propagation_matrix(asym, 3), 0.0, none),
               "hvp propagated, non-symmetric graph vs autograd");
}

// ---- importance -------------------------------------------------------------------------
// 4 users (nodes 0-3), 3 items (nodes 4-6); interactions u0-i4, u0-i5, u1-i4, u2-i5, u2-i6, u3-i6.
// Degrees: u0 2, u1 1, u2 2, u3 1, i4 2, i5 2, i6 2.
Csr example_graph() {
  const std::vector<std::pair<int64_t, int64_t>> edges = {{0, 4}, {0, 5}, {1, 4}, {2, 5}, {2, 6}, {3, 6}};
  auto a = torch::zeros({7, 7}, kF64);
  for (auto [u, i] : edges) {
    a[u][i] = 1.0;
    a[i][u] = 1.0;
  }
  return dense_to_csr(a);
}

void test_importance() {
  const Csr g = example_graph();
  {
    // Removed u1-i4 and u0-i5: seed_counts u0 1, u1 1, i4 1, i5 1.
    // s0 = seed/deg: u0 .5, u1 1, i4 .5, i5 .5; S0 = {0,1,4,5}; a0 = 1 keeps all of them.
    // Hop 1 (s1 = s0 + Σ_{member neighbours} s0 / deg(target)):
    //   u0: .5 + (.5 + .5)/2 = 1.0    u1: 1 + .5/1 = 1.5    u2: 0 + .5/2 = .25
    //   i4: .5 + (.5 + 1)/2 = 1.25    i5: .5 + .5/2 = .75    u3, i6: not reached, stay 0.
    // S1 = {0,1,2,4,5}; a1 = .5 keeps round(2.5) = 3: u1 1.5, i4 1.25, u0 1.0.
    // keep = S0 ∪ {0,1,4} = {0,1,4,5}.
    const auto seeds = torch::tensor({1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0}, kF64);
    const std::vector<double> ratios = {1.0, 0.5};
    const auto [scores, keep] = importance(g.rowptr, g.col, seeds, ratios);
    expect_close(scores, torch::tensor({1.0, 1.5, 0.25, 0.0, 1.25, 0.75, 0.0}, kF64), "importance scores, hand");
    const auto want_keep = torch::tensor({1, 1, 0, 0, 1, 1, 0}, kI64).to(torch::kBool);
    expect(keep.scalar_type() == torch::kBool && keep.equal(want_keep), "importance keep, hand");
    // The graph is symmetric with sorted rows: gathering along its own rows is the transpose's walk.
    const auto [symmetric_scores, symmetric_keep] = importance(g.rowptr, g.col, seeds, ratios, /*symmetric=*/true);
    expect(symmetric_scores.equal(scores) && symmetric_keep.equal(keep), "importance on a symmetric graph, hand");
  }
  {
    // Removed u2-i6: s0 u2 = 1/2, i6 = 1/2 (a tie); a0 = .5 keeps round(1.5) = 1, the lower
    // index: S0 = {2}. Hop 1 from u2 only: i5 = 0 + .5/2 = .25, i6 = .5 + .5/2 = .75; u2 is not
    // reached (its neighbours are not selected) and keeps .5. S1 = {5, 6}, a1 = .5 keeps
    // round(1.5) = 1: i6. keep = {2, 6}. (i6's .5 survives its removal from S0.)
    const auto seeds = torch::tensor({0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0}, kF64);
    const std::vector<double> ratios = {0.5, 0.5};
    const auto [scores, keep] = importance(g.rowptr, g.col, seeds, ratios);
    expect_close(scores, torch::tensor({0.0, 0.0, 0.5, 0.0, 0.0, 0.25, 0.75}, kF64),
                 "importance scores with tie, hand");
    const auto want_keep = torch::tensor({0, 0, 1, 0, 0, 0, 1}, kI64).to(torch::kBool);
    expect(keep.equal(want_keep), "importance keep with tie, hand");
  }
}

// ---- bad inputs -------------------------------------------------------------------------
void test_bad_inputs() {
  const auto x = torch::randn({3, 2}, kF64);
  const auto bad_rowptr = torch::tensor({0, 2, 1, 3}, kI64);  // rowptr[1] > rowptr[2]
  const auto col = torch::tensor({0, 1, 2}, kI64);
  const auto w = torch::ones({3}, kF64);
  expect_throws([&] { propagate(bad_rowptr, col, w, x, 1, false); }, "propagate rejects decreasing rowptr");
  expect_throws([&] { importance(bad_rowptr, col, torch::ones({3}, kF64), std::vector<double>{1.0}); },
                "importance rejects decreasing rowptr");
  const auto good_rowptr = torch::tensor({0, 1, 2, 3}, kI64);
  expect_throws([&] { propagate(good_rowptr, torch::tensor({0, 1, 3}, kI64), w, x, 1, false); },
                "propagate rejects out-of-range col");
  expect_throws([&] { propagate(good_rowptr, col, w.to(torch::kFloat32), x, 1, false); },
                "propagate rejects weight dtype mismatch");
  expect_throws(
      [&] {
        hvp(x, x, torch::tensor({0}, kI64), torch::tensor({1}, kI64), torch::tensor({2.0}, kF64), c10::nullopt,
            c10::nullopt, c10::nullopt, 0, 0.0, c10::nullopt, false);
      },
      "hvp rejects label outside [0, 1]");
}

// ---- timing (printed, not asserted) ---------------------------------------------------------
void time_propagate() {
  const int64_t n = 50000, nnz = 1000000, d = 64, layers = 3;
  const auto rows = std::get<0>(torch::randint(0, n, {nnz}, kI64).sort());
  Csr c;
  c.col = torch::randint(0, n, {nnz}, kI64);
  c.weight = torch::rand({nnz}, torch::kFloat32) * 0.1;
  c.rowptr = torch::zeros({n + 1}, kI64);
  c.rowptr.slice(0, 1).copy_(torch::bincount(rows, {}, n).cumsum(0));
  const auto x = torch::randn({n, d}, torch::kFloat32);
  propagate(c.rowptr, c.col, c.weight, x, layers, false);  // warm-up
  const int reps = 5;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) propagate(c.rowptr, c.col, c.weight, x, layers, false);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
  const double gflops = 2.0 * nnz * d * layers / (ms * 1e6);
  std::printf("TIMING propagate N=%lld nnz=%lld d=%lld K=%lld float32 threads=%d: %.2f ms/call (%.2f GFLOP/s)\n",
              (long long)n, (long long)nnz, (long long)d, (long long)layers, at::get_num_threads(), ms, gflops);
  // For scale only: the same K products with torch's sparse CSR matmul.
  try {
    const auto a =
        at::sparse_csr_tensor(c.rowptr, c.col, c.weight, {n, n}, c.weight.options().layout(at::kSparseCsr));
    auto run = [&] {
      auto cur = x, acc = x.clone();
      for (int64_t k = 0; k < layers; ++k) {
        cur = at::mm(a, cur);
        acc.add_(cur);
      }
      return acc;
    };
    run();
    const auto t1 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) run();
    const double ref_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count() / reps;
    std::printf("TIMING torch sparse_csr mm, same K products (reference): %.2f ms/call\n", ref_ms);
  } catch (const c10::Error& e) {
    std::printf("TIMING torch sparse_csr mm reference unavailable: %s\n", e.what_without_backtrace());
  }
}

}  // namespace

int main() {
  torch::manual_seed(0);
  const std::vector<std::pair<const char*, void (*)()>> tests = {
      {"propagate", test_propagate}, {"hvp", test_hvp}, {"importance", test_importance},
      {"bad_inputs", test_bad_inputs}};
  try {
    expect(with_cuda() == bool(IFRU_EXPECT_CUDA), "ifru::with_cuda() matches the build (IFRU_WITH_CUDA)");
  } catch (const std::exception& e) {
    expect(false, "ifru ops are registered", e.what());
  }
  for (const auto& [name, fn] : tests) {
    try {
      fn();
    } catch (const std::exception& e) {
      expect(false, std::string(name) + " (unexpected exception)", e.what());
    }
  }
  try {
    time_propagate();
  } catch (const std::exception& e) {
    expect(false, "propagate timing (unexpected exception)", e.what());
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
