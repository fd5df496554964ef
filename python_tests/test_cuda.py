"""The CUDA kernels against the CPU kernels (and the float64 references), plus gradcheck, opcheck,
bad inputs and mixed devices on CUDA tensors. Skipped unless this build has CUDA kernels and a GPU
is visible."""
from __future__ import annotations

import math

import pytest
import torch

import ifru_ext
from ifru_ext import CSRGraph, interaction_graph
from references import (
    hvp_reference,
    importance_reference,
    propagate_reference,
    random_csr,
    random_interactions,
    random_negatives,
    random_symmetric_csr,
)
from test_ops import problem, rel_err

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and ifru_ext.with_cuda()), reason="needs a CUDA build of ifru_ext and a visible GPU"
)

CUDA = torch.device("cuda")
WIDTHS = [1, 3, 17, 32, 48, 64, 100, 200]  # odd widths take the scalar path; 200 needs several column chunks
DTYPES = [torch.float32, torch.float64]
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}  # relative error (Frobenius) vs the CPU kernel


def on_cuda(graph: CSRGraph) -> CSRGraph:
    return graph.to(CUDA)


def huge_row_csr(num_nodes: int, huge: int, gen: torch.Generator, dtype=torch.float64) -> CSRGraph:
    """Row 1 holds `huge` entries (duplicates included), a few rows hold 0–3, the rest are empty."""
    counts = torch.randint(0, 4, (num_nodes,), generator=gen)
    counts[::3] = 0
    counts[1] = huge
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(counts, 0)
    nnz = int(rowptr[-1])
    col = torch.randint(0, num_nodes, (nnz,), generator=gen)
    weight = (torch.rand(nnz, generator=gen, dtype=torch.float64) * 2 - 1).to(dtype)
    return CSRGraph(rowptr, col, weight, num_nodes, symmetric=False)


def graph_of_kind(kind: str, gen: torch.Generator, dtype) -> CSRGraph:
    if kind == "empty_rows":
        return random_csr(300, 2000, gen, dtype=dtype)
    if kind == "huge_row":
        return huge_row_csr(500, 10_000, gen, dtype=dtype)
    if kind == "symmetric":
        return random_symmetric_csr(200, 900, gen, dtype=dtype)
    assert kind == "no_entries"
    return CSRGraph(torch.zeros(41, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                    torch.zeros(0, dtype=dtype), 40, symmetric=True)


def assert_close_to_cpu(out: torch.Tensor, expected: torch.Tensor) -> None:
    assert out.device.type == "cuda" and out.dtype == expected.dtype and out.shape == expected.shape
    assert out.is_contiguous()
    assert rel_err(out.cpu().double(), expected.double()) < TOLERANCE[expected.dtype]


# ---------------------------------------------------------------- propagate
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("kind", ["empty_rows", "huge_row", "symmetric", "no_entries"])
def test_propagate_matches_cpu(kind, d, dtype):
    gen = torch.Generator().manual_seed(d)
    graph = graph_of_kind(kind, gen, dtype)
    x = torch.randn(graph.num_nodes, d, generator=gen, dtype=torch.float64).to(dtype)
    for num_layers in (1, 3):
        expected = ifru_ext.propagate(x, graph, num_layers)
        out = ifru_ext.propagate(x.to(CUDA), on_cuda(graph), num_layers)
        assert_close_to_cpu(out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["empty_rows", "huge_row", "symmetric"])
def test_propagate_rows_matches_cpu(kind, dtype):
    # CUDA runs the composite (zero-fill, propagate, gather); CPU its own kernel.
    gen = torch.Generator().manual_seed(3)
    graph = graph_of_kind(kind, gen, dtype)
    x_rows = torch.randperm(graph.num_nodes, generator=gen)[: graph.num_nodes // 2].sort().values
    out_rows = torch.randint(0, graph.num_nodes, (graph.num_nodes // 3,), generator=gen)
    x = torch.randn(x_rows.numel(), 32, generator=gen, dtype=torch.float64).to(dtype)
    for num_layers in (0, 1, 3):
        expected = ifru_ext.propagate_rows(x, graph, num_layers, x_rows=x_rows, out_rows=out_rows)
        out = ifru_ext.propagate_rows(x.to(CUDA), on_cuda(graph), num_layers, x_rows=x_rows.to(CUDA),
                                      out_rows=out_rows.to(CUDA))
        assert_close_to_cpu(out, expected)
    with pytest.raises(RuntimeError, match="ifru::propagate_rows: out_rows is on cpu but the op runs on cuda"):
        ifru_ext.propagate_rows(x.to(CUDA), on_cuda(graph), 1, x_rows=x_rows.to(CUDA), out_rows=out_rows)


@pytest.mark.parametrize("dtype", DTYPES)
def test_propagate_matches_sparse_mm_reference(dtype):
    gen = torch.Generator().manual_seed(1)
    graph = random_csr(120, 700, gen)
    x = torch.randn(120, 24, generator=gen, dtype=torch.float64)
    ref = propagate_reference(graph, x, 2)
    out = ifru_ext.propagate(x.to(CUDA, dtype), on_cuda(graph.to(dtype=dtype)), 2)
    assert rel_err(out.cpu().double(), ref) < (1e-12 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_propagate_misaligned_and_non_contiguous_inputs(dtype):
    # A storage offset of one element leaves the rows unaligned for 16-byte loads (the scalar
    # path); a transposed view is made contiguous at the boundary.
    gen = torch.Generator().manual_seed(2)
    graph = random_csr(64, 400, gen, dtype=dtype)
    flat = torch.randn(64 * 8 + 1, generator=gen, dtype=torch.float64).to(dtype)
    shifted = flat.to(CUDA)[1:].view(64, 8)
    assert shifted.data_ptr() % 16 != 0
    expected = ifru_ext.propagate(flat[1:].view(64, 8), graph, 2)
    assert_close_to_cpu(ifru_ext.propagate(shifted, on_cuda(graph), 2), expected)
    transposed = torch.randn(8, 64, generator=gen, dtype=torch.float64).to(dtype).t()
    assert not transposed.to(CUDA).is_contiguous()
    expected = ifru_ext.propagate(transposed, graph, 2)
    assert_close_to_cpu(ifru_ext.propagate(transposed.to(CUDA), on_cuda(graph), 2), expected)


def test_propagate_degenerate_shapes():
    gen = torch.Generator().manual_seed(3)
    graph = on_cuda(random_csr(10, 30, gen))
    zero_width = ifru_ext.propagate(torch.zeros(10, 0, dtype=torch.float64, device=CUDA), graph, 2)
    assert zero_width.shape == (10, 0) and zero_width.device.type == "cuda"
    x = torch.randn(10, 4, dtype=torch.float64, device=CUDA)
    assert torch.equal(ifru_ext.propagate(x, graph, 0), x)
    no_nodes = CSRGraph(torch.zeros(1, dtype=torch.long, device=CUDA), torch.zeros(0, dtype=torch.long, device=CUDA),
                        torch.zeros(0, dtype=torch.float64, device=CUDA), 0)
    assert ifru_ext.propagate(torch.zeros(0, 5, dtype=torch.float64, device=CUDA), no_nodes, 2).shape == (0, 5)


def test_propagate_is_deterministic_and_uses_the_current_stream():
    gen = torch.Generator().manual_seed(4)
    graph = on_cuda(huge_row_csr(3000, 10_000, gen, dtype=torch.float32))
    x = torch.randn(3000, 64, generator=gen).to(CUDA)
    first = ifru_ext.propagate(x, graph, 3)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        second = ifru_ext.propagate(x, graph, 3)
    torch.cuda.current_stream().wait_stream(stream)
    assert torch.equal(first, second)


@pytest.mark.parametrize("symmetric", [False, True])
def test_propagate_gradcheck_on_cuda(symmetric):
    gen = torch.Generator().manual_seed(5)
    graph = random_symmetric_csr(9, 14, gen) if symmetric else random_csr(9, 25, gen)
    graph = on_cuda(graph)
    x = torch.randn(9, 3, dtype=torch.float64, generator=gen).to(CUDA).requires_grad_()
    fn = lambda t: ifru_ext.propagate(t, graph, 2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


# ---------------------------------------------------------------- hvp
def cuda_args(emb, v, users, items, labels, graph, keep):
    return (emb.to(CUDA), v.to(CUDA), users.to(CUDA), items.to(CUDA), labels.to(CUDA),
            None if graph is None else on_cuda(graph), None if keep is None else keep.to(CUDA))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("num_layers", [0, 2])
@pytest.mark.parametrize("use_keep", [False, True])
@pytest.mark.parametrize("op", ["hvp", "bpr_hvp"])
def test_hvp_matches_cpu(op, use_keep, num_layers, d, dtype):
    emb, v, users, items, labels, graph, keep = problem(60, 80, 3000, seed=d + num_layers, d=d, dtype=dtype)
    if op == "bpr_hvp":  # the same call with negative items in the place of the labels
        labels = random_negatives(60, 80, 3000, torch.Generator().manual_seed(d))
    keep = keep if use_keep else None
    graph = graph if num_layers > 0 else None
    expected = getattr(ifru_ext, op)(emb, v, users, items, labels, graph, num_layers, 0.1, keep)
    e, vv, u, i, y, g, k = cuda_args(emb, v, users, items, labels, graph, keep)
    out = getattr(ifru_ext, op)(e, vv, u, i, y, g, num_layers, 0.1, k)
    assert_close_to_cpu(out, expected)
    if keep is not None:
        assert bool((out[~k] == 0).all())


@pytest.mark.parametrize("use_keep", [False, True])
def test_hvp_matches_autograd_reference(use_keep):
    emb, v, users, items, labels, graph, keep = problem(20, 15, 200, seed=7)
    keep = keep if use_keep else None
    ref = hvp_reference(emb, v, users, items, labels, graph, 1, 0.3, keep)
    e, vv, u, i, y, g, k = cuda_args(emb, v, users, items, labels, graph, keep)
    assert rel_err(ifru_ext.hvp(e, vv, u, i, y, g, 1, 0.3, k).cpu(), ref) < 1e-10


@pytest.mark.parametrize("dtype", DTYPES)
def test_hvp_self_interactions_shared_rows_and_asymmetric_graph(dtype):
    # Rows that are both a user and an item, self-pairs, a hub row, an asymmetric graph.
    gen = torch.Generator().manual_seed(8)
    graph = random_csr(50, 300, gen, dtype=dtype)
    emb = (torch.randn(50, 17, dtype=torch.float64, generator=gen) * 0.5).to(dtype)
    v = torch.randn(50, 17, dtype=torch.float64, generator=gen).to(dtype)
    users = torch.cat([torch.randint(0, 50, (400,), generator=gen), torch.tensor([3, 3, 7]), torch.zeros(2000).long()])
    items = torch.cat([torch.randint(0, 50, (400,), generator=gen), torch.tensor([3, 9, 7]),
                       torch.randint(0, 50, (2000,), generator=gen)])
    labels = torch.rand(users.numel(), generator=gen, dtype=torch.float64).to(dtype)
    keep = torch.rand(50, generator=gen) < 0.6
    for g, layers, k in [(None, 0, None), (None, 0, keep), (graph, 2, None), (graph, 1, keep)]:
        expected = ifru_ext.hvp(emb, v, users, items, labels, g, layers, 0.0, k)
        out = ifru_ext.hvp(*cuda_args(emb, v, users, items, labels, g, k)[:6], layers, 0.0,
                           None if k is None else k.to(CUDA))
        assert_close_to_cpu(out, expected)


def test_hvp_degenerate_inputs():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=14)
    e, vv, u, i, y, g, k = cuda_args(emb, v, users, items, labels, graph, keep)
    # No interactions: only the l2 term is left.
    out = ifru_ext.hvp(e, vv, u[:0], i[:0], y[:0], g, 1, 0.25, k)
    torch.testing.assert_close(out, 0.25 * vv * k[:, None])
    # Every row pruned: zero.
    none_kept = torch.zeros_like(k)
    assert bool((ifru_ext.hvp(e, vv, u, i, y, None, 0, 0.0, none_kept) == 0).all())
    # Zero width.
    empty = torch.zeros(15, 0, dtype=torch.float64, device=CUDA)
    assert ifru_ext.hvp(empty, empty, u, i, y).shape == (15, 0)


def test_hvp_is_deterministic():
    emb, v, users, items, labels, graph, keep = problem(400, 600, 50_000, seed=15, d=48, dtype=torch.float32)
    args = cuda_args(emb, v, users, items, labels, graph, keep)
    first = ifru_ext.hvp(*args[:6], 1, 0.0, args[6])
    second = ifru_ext.hvp(*args[:6], 1, 0.0, args[6])
    assert torch.equal(first, second)


# ---------------------------------------------------------------- hvp_plan, hvp_planned, _gather_floor
@pytest.mark.parametrize("num_layers", [0, 1, 2])
@pytest.mark.parametrize("use_keep", [False, True])
@pytest.mark.parametrize("bpr", [False, True])
def test_hvp_plan_matches_cpu_exactly(bpr, use_keep, num_layers):
    # The CUDA plan is the composite stable sort, the CPU plan a counting sort: the same tensors.
    emb, v, users, items, labels, graph, keep = problem(60, 80, 600, seed=40 + num_layers)
    keep = (torch.rand(140, generator=torch.Generator().manual_seed(1)) < 0.1) if use_keep else None
    neg = random_negatives(60, 80, 600, torch.Generator().manual_seed(2)) if bpr else None
    g = (graph.rowptr, graph.col) if num_layers else (None, None)
    expected = torch.ops.ifru.hvp_plan(users, items, neg, keep, 140, *g, num_layers)
    cuda = lambda t: None if t is None else t.to(CUDA)  # noqa: E731
    out = torch.ops.ifru.hvp_plan(cuda(users), cuda(items), cuda(neg), cuda(keep), 140, cuda(g[0]), cuda(g[1]),
                                  num_layers)
    for ours, theirs in zip(out, expected):
        assert ours.device.type == "cuda" and torch.equal(ours.cpu(), theirs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("num_layers", [0, 1])
@pytest.mark.parametrize("use_keep", [False, True])
@pytest.mark.parametrize("op", ["hvp", "bpr_hvp"])
def test_hvp_planned_matches_cpu(op, use_keep, num_layers, d, dtype):
    emb, v, users, items, labels, graph, keep = problem(60, 80, 3000, seed=d + num_layers, d=d, dtype=dtype)
    if op == "bpr_hvp":  # the same call with negative items in the place of the labels
        labels = random_negatives(60, 80, 3000, torch.Generator().manual_seed(d))
    keep = keep if use_keep else None
    graph = graph if num_layers > 0 else None
    plan = getattr(ifru_ext, f"plan_{op}")
    expected = plan(emb, users, items, labels, graph, num_layers, 0.1, keep)(v)
    e, vv, u, i, y, g, k = cuda_args(emb, v, users, items, labels, graph, keep)
    cuda_plan = plan(e, u, i, y, g, num_layers, 0.1, k)
    assert_close_to_cpu(cuda_plan(vv), expected)
    assert torch.equal(cuda_plan(vv), getattr(ifru_ext, op)(e, vv, u, i, y, g, num_layers, 0.1, k))
    assert_close_to_cpu(cuda_plan.local(vv[cuda_plan.rows]), expected[cuda_plan.rows.cpu()])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_layers", [0, 1])
def test_gauss_newton_plan_matches_cpu(num_layers, dtype):
    emb, v, users, items, labels, graph, keep = problem(60, 80, 3000, seed=5 + num_layers, d=32, dtype=dtype)
    graph = graph if num_layers > 0 else None
    cpu_plan = ifru_ext.plan_gauss_newton(emb, users, items, 7000, graph, num_layers, 0.1, keep)
    expected = cpu_plan(v)
    e, vv, u, i, _, g, k = cuda_args(emb, v, users, items, labels, graph, keep)
    plan = ifru_ext.plan_gauss_newton(e, u, i, 7000, g, num_layers, 0.1, k)
    assert_close_to_cpu(plan(vv), expected)
    # the weights (the composite op on CUDA) and a product that evaluates them instead
    assert_close_to_cpu(plan.gauss_newton_weights, cpu_plan.gauss_newton_weights)
    csr = (g.rowptr, g.col, g.weight) if g is not None else (None, None, None)
    args = (e, vv[plan.rows], plan.rows, plan._inner_rows, plan._ends, plan._incidence_rowptr, plan._incidence_slot,
            None, 7000, *csr, num_layers, 0.1, plan.propagated, False, True)
    assert_close_to_cpu(torch.ops.ifru.hvp_planned(*args), expected[plan.rows.cpu()])
    torch.library.opcheck(torch.ops.ifru.gauss_newton_weights.default,
                          (plan.propagated if num_layers else e, plan._ends, 7000))
    torch.library.opcheck(torch.ops.ifru.hvp_planned.default, (*args, plan.gauss_newton_weights))


def test_planned_bad_inputs_and_opcheck_on_cuda():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=33)
    e, vv, u, i, y, g, k = cuda_args(emb, v, users, items, labels, graph, keep)
    plan = ifru_ext.plan_hvp(e, u, i, y, g, 1, 0.1, k)
    raw = (plan.rows, plan._inner_rows, plan._ends, plan._incidence_rowptr, plan._incidence_slot)
    csr = (g.rowptr, g.col, g.weight)
    torch.library.opcheck(torch.ops.ifru.hvp_planned.default,
                          (e, vv[plan.rows], *raw, plan.labels, 40, *csr, 1, 0.1, plan.propagated, True))
    torch.library.opcheck(torch.ops.ifru.hvp_planned.default,
                          (e, vv[plan.rows], *raw, None, 40, *csr, 1, 0.1, plan.propagated, True, True))
    torch.library.opcheck(torch.ops.ifru.hvp_plan.default, (u, i, None, k, 15, g.rowptr, g.col, 1))
    with pytest.raises(RuntimeError, match="the plan was built for a table of 15 rows"):
        torch.ops.ifru.hvp_planned(torch.cat([e, e]), vv[plan.rows], *raw, plan.labels, 40, None, None, None, 0, 0.0)
    with pytest.raises(RuntimeError, match="ifru::hvp_planned: v is on cpu"):
        torch.ops.ifru.hvp_planned(e, v[plan.rows.cpu()], *raw, plan.labels, 40, *csr, 1, 0.1, None, True)
    with pytest.raises(ValueError, match=r"ifru::hvp_plan: users\[\d+\] = \d+ is out of range"):
        torch.ops.ifru.hvp_plan(u + 15, i, None, k, 15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_floor_matches_cpu(dtype):
    gen = torch.Generator().manual_seed(51)
    table = torch.randn(500, 48, generator=gen, dtype=torch.float64).to(dtype)
    index = torch.randint(0, 500, (50_000,), generator=gen)
    expected = torch.ops.ifru._gather_floor(table, index)
    out = torch.ops.ifru._gather_floor(table.to(CUDA), index.to(CUDA))
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-4 if dtype == torch.float32 else 1e-10, atol=1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_pair_sums_matches_cpu(dtype, weighted):
    # CUDA runs the composite (gathers and index_add, composite/pair_sums.cpp); CPU its one-pass kernel.
    from test_pair_sums import pair_problem
    args = pair_problem(52, rows=500, others=700, entries=40_000, d=48, dtype=dtype, weighted=weighted)
    expected = ifru_ext.pair_sums(*args)
    out = ifru_ext.pair_sums(*(None if t is None else t.to(CUDA) for t in args))
    for ours, theirs in zip(out, expected):
        assert ours.device.type == "cuda"
        assert rel_err(ours.cpu(), theirs) < TOLERANCE[dtype]
    bad = list(args)
    bad[3] = bad[3] + 700
    with pytest.raises(ValueError, match=r"ifru::pair_sums: col\[0\] = \d+ is out of range \[0, 700\)"):
        ifru_ext.pair_sums(*(None if t is None else t.to(CUDA) for t in bad))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_triple_sums_matches_cpu(dtype, weighted):
    # CUDA runs the composite (gathers and index_add, composite/triple_sums.cpp); CPU its one-pass kernel.
    from test_triple_sums import triple_problem
    args = triple_problem(53, nodes=700, terms=20_000, rows=500, d=48, dtype=dtype, weighted=weighted)
    expected = ifru_ext.triple_sums(*args)
    out = ifru_ext.triple_sums(*(None if t is None else t.to(CUDA) for t in args))
    for ours, theirs in zip(out, expected):
        assert ours.device.type == "cuda"
        assert rel_err(ours.cpu(), theirs) < TOLERANCE[dtype]
    bad = list(args)
    bad[3] = bad[3] + 700
    with pytest.raises(ValueError, match=r"ifru::triple_sums: negatives\[0\] = \d+ is out of range \[0, 700\)"):
        ifru_ext.triple_sums(*(None if t is None else t.to(CUDA) for t in bad))


# ---------------------------------------------------------------- importance
def seeded_problem(seed: int, num_users=60, num_items=80, n=600, removed=40, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    users, items, _ = random_interactions(num_users, num_items, n, gen)
    graph = interaction_graph(users, items, num_users, num_items, dtype=dtype)
    picked = torch.randperm(n, generator=gen)[:removed]
    seed_counts = torch.bincount(torch.cat([users[picked], items[picked] + num_users]),
                                 minlength=num_users + num_items).to(dtype)
    return graph, seed_counts


@pytest.mark.parametrize("ratios", [(1.0,), (0.5,), (1.0, 1.0), (1.0, 0.6), (0.7, 0.3, 0.5), (0.0, 1.0), (1.0, 0.0)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_importance_matches_cpu_exactly(seed, dtype, ratios):
    graph, seed_counts = seeded_problem(seed, dtype=dtype)
    scores, keep = ifru_ext.importance(graph, seed_counts, ratios)
    cuda_scores, cuda_keep = ifru_ext.importance(on_cuda(graph), seed_counts.to(CUDA), ratios)
    assert cuda_scores.device.type == "cuda" and cuda_keep.dtype == torch.bool
    assert torch.equal(cuda_keep.cpu(), keep)
    assert torch.equal(cuda_scores.cpu(), scores)  # same summation order, round-to-nearest: bit-identical
    if dtype == torch.float64:
        ref_scores, ref_keep = importance_reference(graph, seed_counts, ratios)
        assert torch.equal(cuda_keep.cpu(), ref_keep)
        assert torch.equal(cuda_scores.cpu(), ref_scores)


@pytest.mark.parametrize("dtype", DTYPES)
def test_importance_ties_and_hub_node(dtype):
    # Many equal scores (degree-1 seeds) and a hub of ~10k neighbours: ties go to the lower index.
    gen = torch.Generator().manual_seed(21)
    hub_users = torch.zeros(10_000, dtype=torch.long)
    hub_items = torch.arange(10_000)
    users = torch.cat([hub_users, torch.randint(1, 300, (3000,), generator=gen)])
    items = torch.cat([hub_items, torch.randint(0, 10_000, (3000,), generator=gen)])
    graph = interaction_graph(users, items, 300, 10_000, dtype=dtype)
    seed_counts = torch.zeros(10_300, dtype=dtype)
    seed_counts[[0, 5, 17, 300, 301, 302]] = 1.0
    seed_counts[torch.randint(1, 300, (50,), generator=gen)] = 2.0
    seed_counts[graph.degree() == 0] = 0.0
    for ratios in [(0.5, 0.5), (1.0, 0.25, 0.1), (0.3, 0.7, 0.5)]:
        scores, keep = ifru_ext.importance(graph, seed_counts, ratios)
        cuda_scores, cuda_keep = ifru_ext.importance(on_cuda(graph), seed_counts.to(CUDA), ratios)
        assert torch.equal(cuda_keep.cpu(), keep)
        assert torch.equal(cuda_scores.cpu(), scores)


def test_importance_multigraph_and_asymmetric_adjacency():
    gen = torch.Generator().manual_seed(22)
    graph = random_symmetric_csr(40, 90, gen)
    seed_counts = torch.where(graph.degree() > 0, torch.randint(0, 3, (40,), generator=gen), 0).double()
    scores, keep = ifru_ext.importance(graph, seed_counts, (0.8, 0.5))
    cuda_scores, cuda_keep = ifru_ext.importance(on_cuda(graph), seed_counts.to(CUDA), (0.8, 0.5))
    assert torch.equal(cuda_keep.cpu(), keep) and torch.equal(cuda_scores.cpu(), scores)
    # 0 -> 1 only: node 1 is reached but has no row entries.
    asymmetric = CSRGraph(torch.tensor([0, 1, 1], device=CUDA), torch.tensor([1], device=CUDA),
                          torch.ones(1, dtype=torch.float64, device=CUDA), 2)
    with pytest.raises(ValueError, match="both directions"):
        ifru_ext.importance(asymmetric, torch.tensor([1.0, 0.0], dtype=torch.float64, device=CUDA), (1.0, 1.0))


def test_importance_no_nodes_and_no_seeds():
    empty = CSRGraph(torch.zeros(1, dtype=torch.long, device=CUDA), torch.zeros(0, dtype=torch.long, device=CUDA),
                     torch.zeros(0, device=CUDA), 0)
    scores, keep = ifru_ext.importance(empty, torch.zeros(0, device=CUDA), (1.0, 0.5))
    assert scores.shape == keep.shape == (0,)
    graph, seed_counts = seeded_problem(3)
    scores, keep = ifru_ext.importance(on_cuda(graph), torch.zeros_like(seed_counts, device=CUDA), (1.0, 1.0))
    assert not bool(keep.any()) and bool((scores == 0).all())


# ---------------------------------------------------------------- opcheck on CUDA tensors
def test_opcheck_every_op_on_cuda():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=30)
    e, vv, u, i, y, g, k = cuda_args(emb, v, users, items, labels, graph, keep)
    csr = (g.rowptr, g.col, g.weight)
    torch.library.opcheck(torch.ops.ifru.propagate.default, (*csr, e.clone().requires_grad_(), 2, True))
    torch.library.opcheck(torch.ops.ifru.propagate.default, (*csr, e.clone().requires_grad_(), 1, False))
    torch.library.opcheck(torch.ops.ifru.propagate.default, (*csr, e, 0, False))
    torch.library.opcheck(torch.ops.ifru.hvp.default, (e, vv, u, i, y, *csr, 1, 0.1, k, True))
    torch.library.opcheck(torch.ops.ifru.hvp.default, (e, vv, u, i, y, None, None, None, 0, 0.0, None))
    torch.library.opcheck(torch.ops.ifru.hvp.default, (e, vv, u, i, y, None, None, None, 0, 0.0, k))
    adjacency = on_cuda(interaction_graph(users, items - 6, 6, 9))
    seed_counts = torch.zeros(15, dtype=torch.float64, device=CUDA)
    seed_counts[u[:3]] = 1.0
    torch.library.opcheck(torch.ops.ifru.importance.default, (adjacency.rowptr, adjacency.col, seed_counts, [1.0, 0.6]))
    torch.library.opcheck(torch.ops.ifru.csr_transpose.default, csr)


# ---------------------------------------------------------------- bad inputs and mixed devices
def small_cuda_problem():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=31)
    e, vv, u, i, y, g, k = cuda_args(emb, v, users, items, labels, graph, keep)
    adjacency = on_cuda(interaction_graph(users, items - 6, 6, 9, dtype=torch.float64))
    seed_counts = torch.zeros(15, dtype=torch.float64, device=CUDA)
    seed_counts[u[:3]] = 1.0
    return e, vv, u, i, y, g, k, adjacency, seed_counts


OPS = ["propagate", "hvp", "bpr_hvp", "importance", "csr_transpose"]


def call_op(op: str, rowptr, col, weight, x, problem_on_cuda):
    """`op` on the CSR (rowptr, col, weight) and embeddings x [N, d]; the rest from the problem."""
    e, vv, u, i, y, g, k, adjacency, seed_counts = problem_on_cuda
    if op == "propagate":
        return torch.ops.ifru.propagate(rowptr, col, weight, x, 1)
    if op == "hvp":
        return torch.ops.ifru.hvp(x, torch.ones_like(x), u, i, y, rowptr, col, weight, 1, 0.0, None)
    if op == "bpr_hvp":
        return torch.ops.ifru.bpr_hvp(x, torch.ones_like(x), u, i, i.flip(0), rowptr, col, weight, 1, 0.0, None)
    if op == "importance":
        return torch.ops.ifru.importance(rowptr, col, seed_counts, [1.0, 0.5])
    return torch.ops.ifru.csr_transpose(rowptr, col, weight)


@pytest.mark.parametrize("op", OPS)
def test_bad_inputs_on_cuda(op):
    p = small_cuda_problem()
    e, g, adjacency, seed_counts = p[0], p[5], p[7], p[8]
    # importance runs on the interaction graph, the others on the LightGCN graph (same N).
    csr = adjacency if op == "importance" else g
    rowptr, col, weight = csr.rowptr, csr.col, csr.weight
    bad_col = col.clone()
    bad_col[0] = 99
    with pytest.raises(ValueError, match="out of range"):
        call_op(op, rowptr, bad_col, weight, e, p)
    bad_rowptr = rowptr.clone()
    bad_rowptr[3] = bad_rowptr[4] + 1
    with pytest.raises(ValueError, match="non-decreasing"):
        call_op(op, bad_rowptr, col, weight, e, p)
    if op in ("propagate", "hvp", "bpr_hvp"):
        with pytest.raises(ValueError, match="NaN"):
            call_op(op, rowptr, col, weight, e.index_fill(0, torch.tensor([2], device=CUDA), math.nan), p)
        with pytest.raises(ValueError, match="NaN"):
            call_op(op, rowptr, col, weight * math.nan, e, p)
    if op == "importance":
        with pytest.raises(ValueError, match="NaN"):
            torch.ops.ifru.importance(rowptr, col, seed_counts * math.nan, [1.0])


def test_bad_hvp_arguments_on_cuda():
    e, vv, u, i, y, g, k, adjacency, seed_counts = small_cuda_problem()
    with pytest.raises(ValueError, match="users"):
        torch.ops.ifru.hvp(e, vv, u + 100, i, y, None, None, None, 0, 0.0, None)
    with pytest.raises(ValueError, match="labels"):
        torch.ops.ifru.hvp(e, vv, u, i, y * 3 - 1, None, None, None, 0, 0.0, None)
    with pytest.raises(RuntimeError, match="bool"):
        torch.ops.ifru.hvp(e, vv, u, i, y, None, None, None, 0, 0.0, k.long())


def test_mixed_devices_raise():
    e, vv, u, i, y, g, k, adjacency, seed_counts = small_cuda_problem()
    with pytest.raises(RuntimeError, match="rowptr is on cpu"):
        torch.ops.ifru.propagate(g.rowptr.cpu(), g.col, g.weight, e, 1)
    with pytest.raises(RuntimeError, match="is on cpu"):
        torch.ops.ifru.propagate(g.rowptr, g.col, g.weight.cpu(), e, 1)
    with pytest.raises(RuntimeError, match="is on cpu"):
        torch.ops.ifru.hvp(e, vv, u.cpu(), i, y, None, None, None, 0, 0.0, None)
    with pytest.raises(RuntimeError, match="keep is on cpu"):
        torch.ops.ifru.hvp(e, vv, u, i, y, None, None, None, 0, 0.0, k.cpu())
    with pytest.raises(RuntimeError, match="is on cpu"):
        torch.ops.ifru.importance(adjacency.rowptr.cpu(), adjacency.col, seed_counts, [1.0])
    with pytest.raises(RuntimeError, match="is on"):
        torch.ops.ifru.propagate(g.rowptr, g.col, g.weight, e.cpu(), 1)


def test_build_reports_cuda():
    assert ifru_ext.with_cuda() and torch.ops.ifru.cuda_version() > 0
