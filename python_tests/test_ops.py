"""Every op against an independent float64 reference, gradcheck and opcheck."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import ifru_ext
from ifru_ext import interaction_graph, lightgcn_graph
from references import (
    bpr_hvp_reference,
    dense,
    hvp_reference,
    importance_reference,
    propagate_reference,
    random_csr,
    random_interactions,
    random_symmetric_csr,
)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-300))


# (num_users, num_items, interactions): small, with isolated nodes and duplicates; items only.
SHAPES = [(6, 9, 40), (1, 12, 15), (20, 15, 200)]


def problem(num_users, num_items, n, seed, d=5, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    users, items, labels = random_interactions(num_users, num_items, n, gen)
    graph = lightgcn_graph(users, items, labels, num_users, num_items, dtype=dtype)
    num_nodes = num_users + num_items
    emb = (torch.randn(num_nodes, d, generator=gen, dtype=torch.float64) * 0.7).to(dtype)
    v = torch.randn(num_nodes, d, generator=gen, dtype=torch.float64).to(dtype)
    keep = torch.rand(num_nodes, generator=gen) < 0.5
    return emb, v, users, items + num_users, labels.to(dtype), graph, keep


# ---------------------------------------------------------------- graph helpers
def test_lightgcn_graph_matches_dense_normalised_adjacency():
    users = torch.tensor([0, 0, 1, 2, 2, 0])
    items = torch.tensor([0, 1, 1, 2, 0, 0])  # (0,0) twice: merged
    labels = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    graph = lightgcn_graph(users, items, labels, 4, 3, dtype=torch.float64)
    a = torch.zeros(7, 7, dtype=torch.float64)
    for u, i, y in zip(users.tolist(), items.tolist(), labels.tolist()):
        if y > 0.5:
            a[u, 4 + i] = a[4 + i, u] = 1.0
    deg = a.sum(1)
    inv = torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))
    torch.testing.assert_close(dense(graph), inv[:, None] * a * inv[None, :], rtol=0, atol=1e-15)
    assert graph.degree().tolist() == [2, 0, 1, 0, 1, 1, 1]
    assert torch.equal(dense(ifru_ext.csr_transpose(graph)), dense(graph))


# ---------------------------------------------------------------- propagate
@pytest.mark.parametrize("num_layers", [0, 1, 2, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_propagate_matches_sparse_mm(num_layers, shape):
    emb, _, _, _, _, graph, _ = problem(*shape, seed=num_layers)
    out = ifru_ext.propagate(emb, graph, num_layers)
    torch.testing.assert_close(out, propagate_reference(graph, emb, num_layers), rtol=1e-13, atol=1e-15)


def test_propagate_asymmetric_with_empty_rows_and_float32():
    gen = torch.Generator().manual_seed(3)
    graph = random_csr(30, 120, gen)
    x = torch.randn(30, 7, generator=gen, dtype=torch.float64)
    ref = propagate_reference(graph, x, 2)
    torch.testing.assert_close(ifru_ext.propagate(x, graph, 2), ref, rtol=1e-13, atol=1e-14)
    out32 = ifru_ext.propagate(x.float(), graph.to(dtype=torch.float32), 2)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), ref, rtol=1e-5, atol=1e-5)


def test_propagate_non_contiguous_input_and_zero_width():
    gen = torch.Generator().manual_seed(4)
    graph = random_csr(10, 30, gen)
    x = torch.randn(7, 10, dtype=torch.float64, generator=gen).t()  # [10, 7], not contiguous
    torch.testing.assert_close(ifru_ext.propagate(x, graph, 2), propagate_reference(graph, x, 2))
    assert ifru_ext.propagate(torch.zeros(10, 0, dtype=torch.float64), graph, 2).shape == (10, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [16, 32, 48, 64, 65])
def test_propagate_fixed_widths_and_thread_counts(d, dtype):
    # 16–64 take the CPU kernel's compile-time widths, 65 the general one; the first rows hold most
    # entries (as user rows do), so the split by work differs from a split by rows; any split and
    # any thread count give the same bits.
    gen = torch.Generator().manual_seed(d)
    graph = random_csr(400, 6000, gen, dtype=dtype)
    graph = type(graph)(graph.rowptr, graph.col, graph.weight / 8, 400, symmetric=False)
    heavy = torch.sort(torch.randint(0, 40, (4000,), generator=gen)).values
    rowptr = torch.zeros(401, dtype=torch.long)
    rowptr[1:] = torch.cumsum(torch.bincount(torch.cat([heavy, torch.arange(400)]), minlength=400), 0)
    col = torch.randint(0, 400, (int(rowptr[-1]),), generator=gen)
    weight = (torch.rand(col.numel(), generator=gen, dtype=torch.float64) / 8).to(dtype)
    skewed = type(graph)(rowptr, col, weight, 400, symmetric=False)
    x = torch.randn(400, d, generator=gen, dtype=torch.float64).to(dtype)
    threads = torch.get_num_threads()
    try:
        for g in (graph, skewed):
            torch.set_num_threads(1)
            one = ifru_ext.propagate(x, g, 2)
            torch.set_num_threads(max(2, threads))
            assert torch.equal(ifru_ext.propagate(x, g, 2), one)
            tolerance = 1e-5 if dtype == torch.float32 else 1e-13
            torch.testing.assert_close(one.double(), propagate_reference(g.to(dtype=torch.float64), x.double(), 2),
                                       rtol=tolerance, atol=tolerance)
    finally:
        torch.set_num_threads(threads)


def test_propagate_names_a_non_finite_input_although_it_checks_values_after_the_layers():
    gen = torch.Generator().manual_seed(9)
    graph = random_csr(30, 120, gen)
    x = torch.randn(30, 32, dtype=torch.float64, generator=gen)
    for bad in (float("nan"), float("inf")):
        x_bad = x.clone()
        x_bad[29, 3] = bad  # row 29 of x enters row 29 of the result
        with pytest.raises(ValueError, match="ifru::propagate: x contains NaN or infinity"):
            ifru_ext.propagate(x_bad, graph, 2)
        weight = graph.weight.clone()
        weight[-1] = bad  # one entry, whose source row may be anything
        source = graph.col[-1]
        x_zero = x.clone()
        x_zero[source] = 0.0  # inf · 0 is NaN: still caught
        for xx in (x, x_zero):
            with pytest.raises(ValueError, match="ifru::propagate: weight contains NaN or infinity"):
                ifru_ext.propagate(xx, type(graph)(graph.rowptr, graph.col, weight, 30), 1)
    with pytest.raises(ValueError, match="ifru::propagate: the result overflowed"):
        ifru_ext.propagate(x * 1e300, type(graph)(graph.rowptr, graph.col, graph.weight * 1e10, 30), 2)


@pytest.mark.parametrize("symmetric", [False, True])
def test_propagate_gradcheck(symmetric):
    gen = torch.Generator().manual_seed(5)
    if symmetric:
        graph = random_symmetric_csr(9, 14, gen)
    else:
        graph = random_csr(9, 25, gen)
    x = torch.randn(9, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    fn = lambda t: ifru_ext.propagate(t, graph, 2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_propagate_backward_is_transpose_for_asymmetric_graph():
    gen = torch.Generator().manual_seed(6)
    graph = random_csr(12, 40, gen)
    x = torch.randn(12, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    g = torch.randn(12, 4, dtype=torch.float64, generator=gen)
    (grad,) = torch.autograd.grad(ifru_ext.propagate(x, graph, 3), x, g)
    a_t = dense(graph).t()
    expected, layer = g.clone(), g
    for _ in range(3):
        layer = a_t @ layer
        expected = expected + layer
    torch.testing.assert_close(grad, expected / 4, rtol=1e-13, atol=1e-14)


def test_csr_transpose_matches_dense():
    gen = torch.Generator().manual_seed(7)
    graph = random_csr(15, 50, gen)
    t = ifru_ext.csr_transpose(graph)
    torch.testing.assert_close(dense(t), dense(graph).t(), rtol=0, atol=0)
    rows = torch.repeat_interleave(torch.arange(15), t.degree())
    # Stable: within a transposed row the source rows ascend.
    assert bool(((rows[1:] > rows[:-1]) | (t.col[1:] >= t.col[:-1])).all())


# ---------------------------------------------------------------- hvp
@pytest.mark.parametrize("num_layers", [0, 1, 2])
@pytest.mark.parametrize("use_keep", [False, True])
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("shape", SHAPES)
def test_hvp_matches_autograd(num_layers, use_keep, l2, shape):
    emb, v, users, items, labels, graph, keep = problem(*shape, seed=11 * num_layers + use_keep)
    keep = keep if use_keep else None
    graph = graph if num_layers > 0 else None
    out = ifru_ext.hvp(emb, v, users, items, labels, graph, num_layers, l2, keep)
    ref = hvp_reference(emb, v, users, items, labels, graph, num_layers, l2, keep)
    assert rel_err(out, ref) < 1e-10
    if keep is not None:
        assert bool((out[~keep] == 0).all())


def test_hvp_asymmetric_graph_uses_transpose():
    gen = torch.Generator().manual_seed(12)
    graph = random_csr(14, 50, gen)
    emb = torch.randn(14, 4, dtype=torch.float64, generator=gen) * 0.5
    v = torch.randn(14, 4, dtype=torch.float64, generator=gen)
    users, items = torch.randint(0, 7, (30,), generator=gen), torch.randint(7, 14, (30,), generator=gen)
    labels = torch.rand(30, generator=gen, dtype=torch.float64)  # soft labels are fine
    out = ifru_ext.hvp(emb, v, users, items, labels, graph, 2)
    assert rel_err(out, hvp_reference(emb, v, users, items, labels, graph, 2)) < 1e-10


def test_hvp_self_interaction_and_float32():
    # A row paired with itself: x = ‖e‖², the fused kernel must still give the true Hessian.
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=13)
    users = torch.cat([users, torch.tensor([2, 2])])
    items = torch.cat([items, torch.tensor([2, 8])])
    labels = torch.cat([labels, torch.tensor([1.0, 0.0], dtype=torch.float64)])
    ref = hvp_reference(emb, v, users, items, labels)
    assert rel_err(ifru_ext.hvp(emb, v, users, items, labels), ref) < 1e-10
    out32 = ifru_ext.hvp(emb.float(), v.float(), users, items, labels.float())
    assert rel_err(out32.double(), ref) < 1e-5


def test_hvp_no_interactions_is_l2_only():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=14)
    empty = users[:0]
    out = ifru_ext.hvp(emb, v, empty, empty, labels[:0], graph, 1, 0.25, keep)
    torch.testing.assert_close(out, 0.25 * v * keep[:, None])


def test_hvp_is_deterministic_across_thread_counts():
    emb, v, users, items, labels, graph, keep = problem(40, 60, 3000, seed=15, d=16, dtype=torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ifru_ext.hvp(emb, v, users, items, labels, graph, 1, 0.0, keep)
        torch.set_num_threads(max(2, threads))
        many = ifru_ext.hvp(emb, v, users, items, labels, graph, 1, 0.0, keep)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)


@pytest.mark.parametrize("use_keep", [False, True])
def test_hvp_rows_that_are_users_and_items_match_the_reference(use_keep):
    # The CPU kernel sums a row's user incidences in its first pass and its item incidences in the
    # second; a row that is both (ids drawn from one range) needs the two parts added.
    gen = torch.Generator().manual_seed(16)
    num_nodes, n = 30, 400
    emb = torch.randn(num_nodes, 6, dtype=torch.float64, generator=gen) * 0.5
    v = torch.randn(num_nodes, 6, dtype=torch.float64, generator=gen)
    users, items = torch.randint(0, num_nodes, (n,), generator=gen), torch.randint(0, num_nodes, (n,), generator=gen)
    labels = (torch.rand(n, generator=gen) < 0.5).to(torch.float64)
    negatives = torch.randint(0, num_nodes, (n,), generator=gen)
    keep = torch.rand(num_nodes, generator=gen) < 0.5 if use_keep else None
    out = ifru_ext.hvp(emb, v, users, items, labels, keep=keep)
    assert rel_err(out, hvp_reference(emb, v, users, items, labels, keep=keep)) < 1e-10
    out = ifru_ext.bpr_hvp(emb, v, users, items, negatives, keep=keep)
    assert rel_err(out, bpr_hvp_reference(emb, v, users, items, negatives, keep=keep)) < 1e-10


def test_hvp_a_user_split_across_threads_is_summed_once_in_order():
    # Threads take the first pass's interactions in chunks; one user with more interactions than a
    # chunk (2048) must still be summed whole by one thread, in interaction order.
    gen = torch.Generator().manual_seed(17)
    num_users, num_items, heavy = 8, 500, 9000
    users = torch.cat((torch.zeros(heavy, dtype=torch.int64), torch.randint(1, num_users, (3000,), generator=gen)))
    items = torch.randint(0, num_items, (users.numel(),), generator=gen) + num_users
    labels = (torch.rand(users.numel(), generator=gen) < 0.5).to(torch.float64)
    emb = torch.randn(num_users + num_items, 16, dtype=torch.float64, generator=gen) * 0.3
    v = torch.randn(num_users + num_items, 16, dtype=torch.float64, generator=gen)
    reference = hvp_reference(emb, v, users, items, labels)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ifru_ext.hvp(emb.float(), v.float(), users, items, labels.float())
        torch.set_num_threads(max(2, threads))
        many = ifru_ext.hvp(emb.float(), v.float(), users, items, labels.float())
        assert rel_err(ifru_ext.hvp(emb, v, users, items, labels), reference) < 1e-10
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)
    assert rel_err(many.double(), reference) < 1e-5


# ---------------------------------------------------------------- importance
@pytest.mark.parametrize("ratios", [(1.0,), (0.5,), (1.0, 1.0), (1.0, 0.6), (0.7, 0.3, 0.5), (0.0, 1.0), (1.0, 0.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_importance_matches_python_algorithm_1(ratios, seed):
    gen = torch.Generator().manual_seed(seed)
    num_users, num_items = 25, 30
    users, items, _ = random_interactions(num_users, num_items, 120, gen)
    graph = interaction_graph(users, items, num_users, num_items, dtype=torch.float64)
    removed = torch.randperm(120, generator=gen)[:10]
    seed_counts = torch.bincount(
        torch.cat([users[removed], items[removed] + num_users]), minlength=num_users + num_items
    ).double()
    ref_scores, ref_keep = importance_reference(graph, seed_counts, ratios)
    # The interaction graph is symmetric: its hops read its own rows; declared otherwise, the
    # op walks the transpose it builds. Both are the reference, bit for bit.
    for symmetric in (True, False):
        scores, keep = ifru_ext.importance(dataclasses.replace(graph, symmetric=symmetric), seed_counts, ratios)
        assert torch.equal(keep, ref_keep)
        assert torch.equal(scores, ref_scores)


def test_importance_multigraph_float32_and_ties():
    gen = torch.Generator().manual_seed(21)
    graph = random_symmetric_csr(40, 90, gen, dtype=torch.float32)
    degree = graph.degree()
    seed_counts = torch.where(degree > 0, torch.randint(0, 3, (40,), generator=gen), 0).float()
    scores, keep = ifru_ext.importance(graph, seed_counts, (0.8, 0.5))
    ref_scores, ref_keep = importance_reference(graph, seed_counts.double(), (0.8, 0.5))
    torch.testing.assert_close(scores.double(), ref_scores, rtol=1e-6, atol=1e-7)
    assert scores.dtype == torch.float32
    # Equal scores (many degree-1 seeds) resolve by index, the same way in both.
    assert torch.equal(keep, ref_keep)


def test_importance_paper_figure_3_example():
    # Fig. 3: erasing (u1, i1); |N_u1| = 5, |N_i1| = 3 -> scores 1/5 and 1/3; u2 (|N|=4) gets 1/3·1/4.
    users = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    items = torch.tensor([0, 1, 2, 3, 4, 0, 5, 6, 7, 0, 5])
    graph = interaction_graph(users, items, 3, 8, dtype=torch.float64)
    seed_counts = torch.zeros(11, dtype=torch.float64)
    seed_counts[[0, 3]] = 1  # user 0 and item 0 (row 3)
    scores, keep = ifru_ext.importance(graph, seed_counts, (1.0, 1.0))
    assert scores[0].item() == pytest.approx(1 / 5 + (1 / 3) / 5)
    assert scores[3].item() == pytest.approx(1 / 3 + (1 / 5) / 3)
    assert scores[1].item() == pytest.approx((1 / 3) / 4)
    assert keep.sum().item() == 3 + 5  # S0 = {u0, i0}; S1 = neighbours of both
    _, pruned = ifru_ext.importance(graph, seed_counts, (1.0, 0.0))
    assert pruned.nonzero().flatten().tolist() == [0, 3]


# ---------------------------------------------------------------- opcheck and build info
def test_opcheck_every_op():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=30)
    g = (graph.rowptr, graph.col, graph.weight)
    torch.library.opcheck(torch.ops.ifru.propagate.default, (*g, emb.clone().requires_grad_(), 2, True))
    torch.library.opcheck(torch.ops.ifru.propagate.default, (*g, emb, 0, False))
    torch.library.opcheck(torch.ops.ifru.hvp.default, (emb, v, users, items, labels, *g, 1, 0.1, keep, True))
    torch.library.opcheck(torch.ops.ifru.hvp.default, (emb, v, users, items, labels, None, None, None, 0, 0.0, None))
    seed_counts = torch.zeros(15, dtype=torch.float64)
    seed_counts[users[:3]] = 1.0
    adjacency = interaction_graph(users, items - 6, 6, 9)
    torch.library.opcheck(torch.ops.ifru.importance.default, (adjacency.rowptr, adjacency.col, seed_counts, [1.0, 0.6]))
    torch.library.opcheck(torch.ops.ifru.importance.default,
                          (adjacency.rowptr, adjacency.col, seed_counts, [1.0, 0.6], True))
    torch.library.opcheck(torch.ops.ifru.csr_transpose.default, g)


def test_opcheck_autograd_registration_with_inputs_requiring_grad():
    """Every op has its own autograd kernel (a formula or a clear refusal), not the silent fallback."""
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=31)
    g = (graph.rowptr, graph.col, graph.weight)
    grad = lambda t: t.clone().requires_grad_()  # noqa: E731
    seed_counts = torch.zeros(15, dtype=torch.float64)
    seed_counts[users[:3]] = 1.0
    adjacency = interaction_graph(users, items - 6, 6, 9)
    checks = ("test_schema", "test_autograd_registration", "test_faketensor")  # no backward: it is refused
    for op, args in [
        (torch.ops.ifru.propagate.default, (g[0], g[1], grad(g[2]), grad(emb), 2, False)),
        (torch.ops.ifru.hvp.default, (grad(emb), grad(v), users, items, labels, *g, 1, 0.1, keep, True)),
        (torch.ops.ifru.importance.default, (adjacency.rowptr, adjacency.col, grad(seed_counts), [1.0, 0.6])),
        (torch.ops.ifru.csr_transpose.default, (g[0], g[1], grad(g[2]))),
    ]:
        torch.library.opcheck(op, args, test_utils=checks)


def test_build_info():
    assert isinstance(ifru_ext.with_cuda(), bool)
    assert ifru_ext.with_cuda() == (torch.ops.ifru.cuda_version() > 0)
