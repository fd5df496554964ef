"""ifru::hvp_plan, ifru::hvp_planned and ifru::gauss_newton_weights (issue 14): the prepared HVP equals
the stateless hvp / bpr_hvp exactly and the float64 autograd reference, reads only what H_φφ v_φ
needs, refuses a plan of another table, and passes opcheck; the Gauss–Newton weights equal the float64
reference and a product given them has the bits of one that evaluates them; plus the _gather_floor
benchmark probe."""
from __future__ import annotations

import pytest
import torch

import ifru_ext
from references import gauss_newton_reference, hvp_reference
from test_ops import SHAPES, problem, rel_err

# The device-generic composites (composite/hvp_plan.cpp, composite/gather_floor.cpp) serve every
# device without its own kernel; redispatching to such a key runs them on CPU tensors.
COMPOSITE = torch._C.DispatchKeySet(torch._C.DispatchKey.PrivateUse1)


def negatives(items: torch.Tensor, num_users: int, num_nodes: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(num_users, num_nodes, items.shape, generator=gen)


def sparse_problem(seed: int, num_users: int = 60, num_items: int = 80, n: int = 150):
    """A sparse graph (many rows outside the K-hop reach of a small keep) with a small keep."""
    emb, v, users, items, labels, graph, _ = problem(num_users, num_items, n, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    keep = torch.rand(num_users + num_items, generator=gen) < 0.08
    return emb, v, users, items, labels, graph, keep


def grouped_by_user(active: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
    """The plan's interaction order: the ``active`` [n] bool interactions by ascending user, then index."""
    indices = active.nonzero().squeeze(1)
    return indices[torch.sort(users[indices], stable=True).indices]


def make_plan(loss, emb, users, items, labels, neg, graph, num_layers, l2, keep):
    if loss == "bce":
        return ifru_ext.plan_hvp(emb, users, items, labels, graph, num_layers, l2, keep)
    return ifru_ext.plan_bpr_hvp(emb, users, items, neg, graph, num_layers, l2, keep)


def stateless(loss, emb, v, users, items, labels, neg, graph, num_layers, l2, keep):
    if loss == "bce":
        return ifru_ext.hvp(emb, v, users, items, labels, graph, num_layers, l2, keep)
    return ifru_ext.bpr_hvp(emb, v, users, items, neg, graph, num_layers, l2, keep)


# ---------------------------------------------------------------- planned == stateless == reference
@pytest.mark.parametrize("loss", ["bce", "bpr"])
@pytest.mark.parametrize("num_layers", [0, 1, 2])
@pytest.mark.parametrize("use_keep", [False, True])
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("shape", SHAPES)
def test_planned_equals_stateless_hvp(loss, num_layers, use_keep, l2, shape):
    emb, v, users, items, labels, graph, keep = problem(*shape, seed=7 * num_layers + use_keep)
    neg = negatives(items, shape[0], emb.shape[0], seed=num_layers)
    keep = keep if use_keep else None
    graph = graph if num_layers > 0 else None
    plan = make_plan(loss, emb, users, items, labels, neg, graph, num_layers, l2, keep)
    expected = stateless(loss, emb, v, users, items, labels, neg, graph, num_layers, l2, keep)
    out = plan(v)
    assert torch.equal(out, expected)
    if loss == "bce":  # and the independent float64 autograd reference
        assert rel_err(out, hvp_reference(emb, v, users, items, labels, graph, num_layers, l2, keep)) < 1e-10
    # local form: v on the plan's rows in, (H v) on them out
    assert torch.equal(plan.local(v[plan.rows]), expected[plan.rows])
    if keep is not None:
        assert torch.equal(plan.rows, keep.nonzero().squeeze(1))
        assert bool((out[~keep] == 0).all())
        assert torch.equal(plan(v * keep[:, None]), out)  # v is read as zero outside keep


@pytest.mark.parametrize("loss", ["bce", "bpr"])
@pytest.mark.parametrize("num_layers", [0, 1, 2])
@pytest.mark.parametrize("use_keep", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_gauss_newton_plan_matches_the_autograd_reference(loss, num_layers, use_keep, shape):
    # The Gauss–Newton part alone (the training-aware response's operator), averaged over a
    # divisor larger than the interactions given, as a request's plan passes it.
    emb, v, users, items, labels, graph, keep = problem(*shape, seed=11 * num_layers + use_keep)
    neg = negatives(items, shape[0], emb.shape[0], seed=num_layers) if loss == "bpr" else None
    keep = keep if use_keep else None
    graph = graph if num_layers > 0 else None
    divisor = 3 * users.numel() + 1
    plan = ifru_ext.plan_gauss_newton(emb, users, items, divisor, graph, num_layers, 0.2, keep, neg)
    expected = gauss_newton_reference(emb, v, users, items, divisor, graph, num_layers, 0.2, keep, neg)
    assert rel_err(plan(v), expected) < 1e-10
    assert torch.equal(plan.local(v[plan.rows]), plan(v)[plan.rows])
    # It is the full Hessian without its ℓ' term: not the same operator (the labels enter hvp only).
    full = make_plan(loss, emb, users, items, labels, neg, graph, num_layers, 0.2, keep)
    assert rel_err(plan(v), full(v)) > 1e-3
    with pytest.raises(ValueError, match="plan_gauss_newton: divisor must be a positive int"):
        ifru_ext.plan_gauss_newton(emb, users, items, 0)


@pytest.mark.parametrize("loss", ["bce", "bpr"])
@pytest.mark.parametrize("d", [32, 48, 40])
def test_gauss_newton_plan_at_kernel_widths_and_thread_counts(loss, d):
    # The widths the CPU kernel fixes at compile time (32, 48) and one it does not (40), with a
    # keep holding both ends of many pairs (their coefficient then reads two moving rows' v):
    # the float64 reference, and the same bits with one thread or two in float32.
    emb, v, users, items, _, _, keep = problem(200, 300, 6000, seed=d, d=d)  # several chunks per thread
    neg = negatives(items, 200, emb.shape[0], seed=d) if loss == "bpr" else None
    both = keep[users] & keep[items]
    assert 50 < int(both.sum()) < users.numel()  # pairs with both ends kept, and others
    plan = ifru_ext.plan_gauss_newton(emb, users, items, 9000, keep=keep, neg_items=neg)
    expected = gauss_newton_reference(emb, v, users, items, 9000, None, 0, 0.0, keep, neg)
    assert rel_err(plan(v), expected) < 1e-10
    single = ifru_ext.plan_gauss_newton(emb.float(), users, items, 9000, keep=keep, neg_items=neg)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = single.local(v.float()[single.rows])
        torch.set_num_threads(max(2, threads))
        assert torch.equal(single.local(v.float()[single.rows]), one)
    finally:
        torch.set_num_threads(threads)
    assert rel_err(one.double(), expected[plan.rows]) < 1e-5


@pytest.mark.parametrize("loss", ["bce", "bpr"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lightgcn_inner_product_is_restricted_to_the_reach_of_keep(loss, num_layers):
    emb, v, users, items, labels, graph, keep = sparse_problem(seed=num_layers)
    neg = negatives(items, 60, emb.shape[0], seed=3)
    plan = make_plan(loss, emb, users, items, labels, neg, graph, num_layers, 0.1, keep)
    # the rows within num_layers hops of keep along the graph's structure
    structure = torch.zeros(graph.num_nodes, graph.num_nodes, dtype=torch.bool)
    rows = torch.repeat_interleave(torch.arange(graph.num_nodes), graph.rowptr.diff())
    structure[rows, graph.col] = True
    reach = keep.clone()
    for _ in range(num_layers):
        reach = reach | (structure.double() @ reach.double() > 0)
    assert torch.equal(plan._inner_rows, reach.nonzero().squeeze(1))
    assert 0 < plan._inner_rows.numel() < graph.num_nodes  # the restriction is exercised
    ends = torch.stack([users, items] if loss == "bce" else [users, items, neg])
    assert torch.equal(plan.interactions, grouped_by_user(reach[ends].any(0), users))
    expected = stateless(loss, emb, v, users, items, labels, neg, graph, num_layers, 0.1, keep)
    assert torch.equal(plan(v), expected)
    if loss == "bce":
        ref = hvp_reference(emb, v, users, items, labels, graph, num_layers, 0.1, keep)
        assert rel_err(plan(v), ref) < 1e-10


@pytest.mark.parametrize("loss", ["bce", "bpr"])
def test_mf_plan_reads_only_interactions_incident_to_keep(loss):
    emb, v, users, items, labels, graph, keep = sparse_problem(seed=5)
    neg = negatives(items, 60, emb.shape[0], seed=4)
    plan = make_plan(loss, emb, users, items, labels, neg, None, 0, 0.0, keep)
    ends = torch.stack([users, items] if loss == "bce" else [users, items, neg])
    active = keep[ends].any(0)
    assert 0 < int(active.sum()) < users.numel()
    assert torch.equal(plan.interactions, grouped_by_user(active, users))
    assert torch.equal(plan._inner_rows, plan.rows)
    assert torch.equal(plan._ends[0], ends[:, plan.interactions])
    position = torch.full((emb.shape[0],), -1, dtype=torch.long)
    position[plan.rows] = torch.arange(plan.rows.numel())
    assert torch.equal(plan._ends[1], position[ends[:, plan.interactions]])
    # one incidence per (pair, kept endpoint), listed under the kept row in slot order
    pairs = ends.shape[0] - 1
    kept_user = keep[ends[0, active]].sum() * pairs
    kept_items = keep[ends[1:, active]].sum()
    assert plan._incidence_slot.numel() == int(kept_user + kept_items)
    assert plan._incidence_rowptr.numel() == emb.shape[0] + 1
    assert bool((plan._incidence_rowptr.diff()[~keep] == 0).all())


@pytest.mark.parametrize("loss", ["bce", "bpr"])
def test_plan_incidence_lists_each_kept_row_and_interaction_once(loss):
    # HVPPlan.incidence: under each inner row (ascending), every interaction that reads it, once, with the
    # endpoint the row is of it; in the plan's interaction order (grouped by user).
    emb, v, users, items, labels, graph, keep = sparse_problem(seed=5)
    neg = negatives(items, 60, emb.shape[0], seed=4)
    plan = make_plan(loss, emb, users, items, labels, neg, None, 0, 0.0, keep)
    ends = torch.stack([users, items] if loss == "bce" else [users, items, neg])
    rowptr, term, end = plan.incidence()
    assert rowptr.numel() == plan.rows.numel() + 1 and rowptr[-1] == term.numel() == end.numel()
    order = {int(j): k for k, j in enumerate(plan.interactions)}
    for r, row in enumerate(plan.rows.tolist()):
        listed = list(zip(term[rowptr[r]:rowptr[r + 1]].tolist(), end[rowptr[r]:rowptr[r + 1]].tolist()))
        reading = [(j, e) for e in range(ends.shape[0]) for j in (ends[e] == row).nonzero().squeeze(1).tolist()]
        expected = sorted(reading, key=lambda entry: (order[entry[0]], entry[1]))
        assert listed == expected, row


def test_propagated_is_precomputed_and_equals_the_computed_one():
    emb, v, users, items, labels, graph, keep = problem(20, 15, 200, seed=8)
    plan = ifru_ext.plan_hvp(emb, users, items, labels, graph, 2, 0.1, keep)
    torch.testing.assert_close(plan.propagated, ifru_ext.propagate(emb, graph, 2), rtol=0, atol=0)
    raw = [plan.rows, plan._inner_rows, plan._ends, plan._incidence_rowptr, plan._incidence_slot]
    g = (graph.rowptr, graph.col, graph.weight)
    v_rows = v[plan.rows]
    computed = torch.ops.ifru.hvp_planned(emb, v_rows, *raw, plan.labels, users.numel(), *g, 2, 0.1, None, True)
    given = torch.ops.ifru.hvp_planned(emb, v_rows, *raw, plan.labels, users.numel(), *g, 2, 0.1, plan.propagated, True)
    assert torch.equal(computed, given)
    assert torch.equal(given, plan.local(v_rows))


def test_one_plan_serves_many_vectors_float32_and_threads():
    emb, v, users, items, labels, graph, keep = problem(40, 60, 3000, seed=15, d=16, dtype=torch.float32)
    plan = ifru_ext.plan_hvp(emb, users, items, labels, graph, 1, 0.05, keep)
    threads = torch.get_num_threads()
    try:
        for seed in range(3):
            w = torch.randn(v.shape, generator=torch.Generator().manual_seed(seed))
            torch.set_num_threads(1)
            one = plan(w)
            torch.set_num_threads(max(2, threads))
            assert torch.equal(plan(w), one)
            assert torch.equal(one, ifru_ext.hvp(emb, w, users, items, labels, graph, 1, 0.05, keep))
    finally:
        torch.set_num_threads(threads)


def test_a_plan_is_of_the_emb_it_was_built_for():
    emb, v, users, items, labels, graph, keep = problem(20, 15, 200, seed=9)
    table = emb.clone()
    plan = ifru_ext.plan_hvp(table, users, items, labels, graph, 1, 0.1, keep)
    expected = plan(v)
    table.mul_(2.0)  # F = P emb would be stale
    with pytest.raises(RuntimeError, match="HVPPlan: emb was modified in place after the plan was built"):
        plan(v)
    assert torch.equal(ifru_ext.plan_hvp(emb, users, items, labels, graph, 1, 0.1, keep)(v), expected)


@pytest.mark.parametrize("num_layers", [0, 1])
def test_a_plan_moved_to_another_table_is_that_tables_plan(num_layers):
    # HVPPlan.at shares the index work and re-propagates F: bit-identical to a plan built there.
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=15)
    other = emb * 1.5 + 0.1
    graph = graph if num_layers else None
    plan = ifru_ext.plan_gauss_newton(emb, users, items, 40, graph, num_layers, 0.1, keep)
    moved = plan.at(other)
    assert moved._incidence_slot is plan._incidence_slot  # the grouping is shared, not rebuilt
    assert torch.equal(moved(v), ifru_ext.plan_gauss_newton(other, users, items, 40, graph, num_layers, 0.1, keep)(v))
    assert torch.equal(plan(v), ifru_ext.plan_gauss_newton(emb, users, items, 40, graph, num_layers, 0.1, keep)(v))
    with pytest.raises(RuntimeError, match=r"HVPPlan.at: emb must match the plan's table \(\[15, 5\].* got \[15, 4\]"):
        plan.at(other[:, :4])
    with pytest.raises(ValueError, match="HVPPlan.at: emb contains NaN or infinity"):
        plan.at(other.index_fill(0, torch.tensor([2]), float("nan")))
    if num_layers:  # F = P emb handed in by a caller that propagated it already: the same operator, no propagation
        propagated = ifru_ext.propagate(other, graph, num_layers)
        handed = plan.at(other, propagated)
        assert handed.propagated is propagated
        assert torch.equal(handed(v), moved(v))
        with pytest.raises(RuntimeError, match=r"HVPPlan.at: propagated must match emb \(\[15, 5\].* got \[15, 4\]"):
            plan.at(other, propagated[:, :4])


def test_empty_plans():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=14)
    empty = users[:0]
    plan = ifru_ext.plan_hvp(emb, empty, empty, labels[:0], graph, 1, 0.25, keep)
    torch.testing.assert_close(plan(v), 0.25 * v * keep[:, None])
    nothing = torch.zeros_like(keep)
    plan = ifru_ext.plan_hvp(emb, users, items, labels, None, 0, 0.25, nothing)
    assert plan.rows.numel() == 0 and plan.interactions.numel() == 0
    assert torch.equal(plan(v), torch.zeros_like(v))
    assert plan.local(v[:0]).shape == (0, emb.shape[1])


# ---------------------------------------------------------------- the composite plan builder
@pytest.mark.parametrize("num_layers", [0, 1, 2])
@pytest.mark.parametrize("use_keep", [False, True])
@pytest.mark.parametrize("bpr", [False, True])
def test_composite_plan_is_the_cpu_plan(num_layers, use_keep, bpr):
    emb, v, users, items, labels, graph, keep = sparse_problem(seed=20 + num_layers)
    neg = negatives(items, 60, emb.shape[0], seed=5) if bpr else None
    args = (users, items, neg, keep if use_keep else None, emb.shape[0],
            graph.rowptr if num_layers else None, graph.col if num_layers else None, num_layers)
    cpu = torch.ops.ifru.hvp_plan(*args)
    composite = torch.ops.ifru.hvp_plan.default.redispatch(COMPOSITE, *args)
    assert len(cpu) == len(composite) == 6
    for ours, theirs in zip(cpu, composite):
        assert ours.dtype == theirs.dtype == torch.long
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("bpr", [False, True])
def test_cpu_plan_sorted_in_chunks_is_the_composite_plan_at_any_thread_count(bpr):
    # Past 2 × 65,536 interactions the CPU counting sorts run in chunks, one per thread: each row's
    # list must still be in interaction order, as the composite's stable sorts give it.
    gen = torch.Generator().manual_seed(21)
    num_users, num_items, n = 3000, 5000, 300_000
    users = torch.randint(0, num_users, (n,), generator=gen)
    items = torch.randint(0, num_items, (n,), generator=gen) + num_users
    neg = torch.randint(0, num_items, (n,), generator=gen) + num_users if bpr else None
    keep = torch.rand(num_users + num_items, generator=gen) < 0.3
    threads = torch.get_num_threads()
    try:
        for k in (None, keep):
            args = (users, items, neg, k, num_users + num_items, None, None, 0)
            composite = torch.ops.ifru.hvp_plan.default.redispatch(COMPOSITE, *args)
            for count in (1, max(2, threads)):
                torch.set_num_threads(count)
                for ours, theirs in zip(torch.ops.ifru.hvp_plan(*args), composite):
                    assert torch.equal(ours, theirs)
    finally:
        torch.set_num_threads(threads)


def test_composite_plan_self_interactions_and_empty():
    users = torch.tensor([0, 2, 2, 1])
    items = torch.tensor([0, 2, 3, 3])  # rows paired with themselves
    keep = torch.tensor([True, False, True, False])
    for k in (None, keep):
        args = (users, items, None, k, 4, None, None, 0)
        for ours, theirs in zip(torch.ops.ifru.hvp_plan(*args),
                                torch.ops.ifru.hvp_plan.default.redispatch(COMPOSITE, *args)):
            assert torch.equal(ours, theirs)
    args = (users[:0], items[:0], None, keep, 4, None, None, 0)
    for ours, theirs in zip(torch.ops.ifru.hvp_plan(*args), torch.ops.ifru.hvp_plan.default.redispatch(COMPOSITE, *args)):
        assert torch.equal(ours, theirs)


# ---------------------------------------------------------------- bad inputs
def raw_plan(plan):
    return [plan.rows, plan._inner_rows, plan._ends, plan._incidence_rowptr, plan._incidence_slot]


def test_a_plan_of_another_table_is_refused():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=40)
    plan = ifru_ext.plan_hvp(emb, users, items, labels, None, 0, 0.0, keep)
    bigger = torch.cat([emb, emb])  # 30 rows: every plan index stays in range, but the sizes differ
    with pytest.raises(RuntimeError, match=r"ifru::hvp_planned: the plan was built for a table of 15 rows .* N = 30"):
        torch.ops.ifru.hvp_planned(bigger, v[plan.rows], *raw_plan(plan), plan.labels, 40, None, None, None, 0, 0.0)
    smaller = emb[:10]
    with pytest.raises(RuntimeError, match="built for a table of 15 rows"):
        torch.ops.ifru.hvp_planned(smaller, v[plan.rows], *raw_plan(plan), plan.labels, 40, None, None, None, 0, 0.0)


def test_planned_call_checks_its_arguments():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=41)
    plan = ifru_ext.plan_hvp(emb, users, items, labels, None, 0, 0.0, keep)
    raw = raw_plan(plan)
    v_rows = v[plan.rows]

    def call(**kw):
        a = dict(emb=emb, v=v_rows, rows=raw[0], inner_rows=raw[1], ends=raw[2], incidence_rowptr=raw[3],
                 incidence_slot=raw[4], labels=plan.labels, num_interactions=40, rowptr=None, col=None, weight=None,
                 num_layers=0, l2=0.0, propagated=None)
        a.update(kw)
        return torch.ops.ifru.hvp_planned(*a.values())

    with pytest.raises(RuntimeError, match=r"v must have shape \[R, d\] = \[\d+, 5\] \(v on the plan's rows\)"):
        call(v=v)
    with pytest.raises(RuntimeError, match=r"labels must have shape \[a\]"):
        call(labels=labels)
    with pytest.raises(RuntimeError, match="labels must have dtype"):
        call(labels=plan.labels.float())
    with pytest.raises(ValueError, match="num_interactions = 3 is smaller than the plan's"):
        call(num_interactions=3)
    with pytest.raises(RuntimeError, match=r"ends must have shape \[2, E, a\]"):
        call(ends=raw[2][0])
    with pytest.raises(RuntimeError, match="incidence_slot must be int64"):
        call(incidence_slot=raw[4].int())
    other = ifru_ext.plan_hvp(emb, users[:20], items[:20], labels[:20], None, 0, 0.0, keep)
    with pytest.raises(RuntimeError, match="pass one plan's tensors together"):
        call(incidence_slot=other._incidence_slot)
    with pytest.raises(ValueError, match=r"num_layers must lie in \[0, 64\]"):
        call(num_layers=65)
    with pytest.raises(RuntimeError, match="needs a graph"):
        call(num_layers=1)
    with pytest.raises(ValueError, match="l2 must be finite"):
        call(l2=float("nan"))
    with pytest.raises(RuntimeError, match="propagated .* only read with num_layers >= 1"):
        call(propagated=emb)
    with pytest.raises(ValueError, match="the result holds NaN or infinity"):
        call(v=v_rows * float("nan"))
    # a LightGCN plan (inner rows = the reach of keep) is not an MF plan
    lightgcn = ifru_ext.plan_hvp(emb, users, items, labels, graph, 1, 0.0, keep)
    assert lightgcn._inner_rows.numel() > lightgcn.rows.numel()
    with pytest.raises(RuntimeError, match="it was built with a graph for num_layers >= 1"):
        torch.ops.ifru.hvp_planned(emb, v_rows, *raw_plan(lightgcn), lightgcn.labels, 40, None, None, None, 0, 0.0)


def test_plan_checks_its_arguments():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=42)
    with pytest.raises(ValueError, match=r"ifru::hvp_plan: users\[0\] = \d+ is out of range \[0, 15\)"):
        torch.ops.ifru.hvp_plan(users + 99, items, None, keep, 15)
    with pytest.raises(ValueError, match=r"ifru::hvp_plan: neg_items\[\d+\] = 15 is out of range"):
        torch.ops.ifru.hvp_plan(users, items, torch.full_like(items, 15), keep, 15)
    with pytest.raises(RuntimeError, match="ifru::hvp_plan: users and items must have equal length"):
        torch.ops.ifru.hvp_plan(users, items[1:], None, keep, 15)
    with pytest.raises(RuntimeError, match=r"ifru::hvp_plan: keep must have shape \[N\] = \[15\]"):
        torch.ops.ifru.hvp_plan(users, items, None, keep[1:], 15)
    with pytest.raises(RuntimeError, match="ifru::hvp_plan: keep must be bool"):
        torch.ops.ifru.hvp_plan(users, items, None, keep.long(), 15)
    with pytest.raises(ValueError, match="ifru::hvp_plan: num_nodes must be >= 0"):
        torch.ops.ifru.hvp_plan(users[:0], items[:0], None, None, -1)
    with pytest.raises(RuntimeError, match="ifru::hvp_plan: num_layers = 1 needs a graph"):
        torch.ops.ifru.hvp_plan(users, items, None, keep, 15, None, None, 1)
    with pytest.raises(RuntimeError, match="ifru::hvp_plan: rowptr and col must be given together"):
        torch.ops.ifru.hvp_plan(users, items, None, keep, 15, graph.rowptr, None, 1)
    with pytest.raises(ValueError, match=r"ifru::hvp_plan: col\[\d+\] = 99 is out of range"):
        torch.ops.ifru.hvp_plan(users, items, None, keep, 15, graph.rowptr, torch.full_like(graph.col, 99), 1)
    with pytest.raises(RuntimeError, match=r"ifru::hvp_plan: rowptr must have num_rows \+ 1 = 16 entries"):
        torch.ops.ifru.hvp_plan(users, items, None, keep, 15, graph.rowptr[:-1], graph.col, 1)
    # the Python plan: emb and labels are checked once, v on every call
    with pytest.raises(ValueError, match="plan_hvp: labels must lie in"):
        ifru_ext.plan_hvp(emb, users, items, labels * 3 - 1)
    with pytest.raises(RuntimeError, match=r"plan_hvp: labels must have shape \[n\]"):
        ifru_ext.plan_hvp(emb, users, items, labels[1:])
    with pytest.raises(ValueError, match="plan_bpr_hvp: emb contains NaN"):
        ifru_ext.plan_bpr_hvp(emb * float("nan"), users, items, items)
    plan = ifru_ext.plan_hvp(emb, users, items, labels, keep=keep)
    with pytest.raises(RuntimeError, match=r"v must have shape \[N, d\] = \[15, 5\]"):
        plan(v[1:])


# ---------------------------------------------------------------- opcheck and autograd
def test_opcheck_plan_ops():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=30)
    g = (graph.rowptr, graph.col, graph.weight)
    neg = negatives(items, 6, 15, seed=1)
    for args in [(users, items, None, keep, 15, graph.rowptr, graph.col, 1), (users, items, neg, None, 15)]:
        torch.library.opcheck(torch.ops.ifru.hvp_plan.default, args)
    for graph_args, num_layers in [(g, 1), ((None, None, None), 0)]:
        plan = ifru_ext.plan_hvp(emb, users, items, labels, graph if num_layers else None, num_layers, 0.1, keep)
        args = (emb, v[plan.rows], *raw_plan(plan), plan.labels, 40, *graph_args, num_layers, 0.1, plan.propagated, True)
        torch.library.opcheck(torch.ops.ifru.hvp_planned.default, args)
        torch.library.opcheck(torch.ops.ifru.hvp_planned.default, (*args, True))  # gauss_newton
        grad = (emb.clone().requires_grad_(), v[plan.rows].clone().requires_grad_(), *args[2:])
        torch.library.opcheck(torch.ops.ifru.hvp_planned.default, grad,
                              test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    torch.library.opcheck(torch.ops.ifru._gather_floor.default, (emb, users))


def test_planned_hvp_has_no_backward():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=31)
    plan = ifru_ext.plan_hvp(emb, users, items, labels, keep=keep)
    v_rows = v[plan.rows].requires_grad_()
    out = plan.local(v_rows)  # the forward works
    with pytest.raises(NotImplementedError, match=r"ifru::hvp_planned: not differentiable .* with respect to v"):
        out.sum().backward()


def test_fake_kernels_check_devices():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=32)
    with pytest.raises(RuntimeError, match="ifru::hvp_plan: items is on cpu but the op runs on meta"):
        torch.ops.ifru.hvp_plan(users.to("meta"), items, None, None, 15)
    plan = ifru_ext.plan_hvp(emb, users, items, labels, keep=keep)
    with pytest.raises(RuntimeError, match="ifru::hvp_planned: v is on cpu but the op runs on meta"):
        torch.ops.ifru.hvp_planned(emb.to("meta"), v[plan.rows], *raw_plan(plan), plan.labels, 40, None, None, None,
                                   0, 0.0)


# ---------------------------------------------------------------- gauss_newton_weights
def weights_reference(table, plan, divisor):
    """σ(x)(1 − σ(x))/divisor of each planned interaction, x = f_u·f_i (triples: f_u·(f_i − f_k)), float64."""
    rows = plan._ends[0]
    f = table.double()
    x = (f[rows[0]] * f[rows[1]]).sum(1)
    if rows.shape[0] == 3:
        x = x - (f[rows[0]] * f[rows[2]]).sum(1)
    return torch.sigmoid(x) * torch.sigmoid(-x) / divisor


@pytest.mark.parametrize("loss", ["bce", "bpr"])
@pytest.mark.parametrize("d", [32, 48, 40])
def test_gauss_newton_weights_match_the_float64_reference(loss, d):
    emb, _, users, items, _, _, keep = problem(200, 300, 6000, seed=60 + d, d=d)
    neg = negatives(items, 200, emb.shape[0], seed=d) if loss == "bpr" else None
    plan = ifru_ext.plan_gauss_newton(emb, users, items, 9000, keep=keep, neg_items=neg)
    expected = weights_reference(emb, plan, 9000)
    assert plan.gauss_newton_weights.shape == (plan.interactions.numel(),)
    assert rel_err(plan.gauss_newton_weights, expected) < 1e-13
    composite = torch.ops.ifru.gauss_newton_weights.default.redispatch(COMPOSITE, emb, plan._ends, 9000)
    assert rel_err(composite, expected) < 1e-13
    single = torch.ops.ifru.gauss_newton_weights(emb.float(), plan._ends, 9000)
    assert single.dtype == torch.float32 and rel_err(single.double(), expected) < 1e-5
    # LightGCN: the weights of a plan are read at F = P emb
    _, _, users, items, _, graph, keep = problem(6, 9, 40, seed=61)
    emb = torch.randn(15, d, dtype=torch.float64, generator=torch.Generator().manual_seed(d))
    lightgcn = ifru_ext.plan_gauss_newton(emb, users, items, 50, graph, 2, 0.0, keep)
    assert rel_err(lightgcn.gauss_newton_weights, weights_reference(lightgcn.propagated, lightgcn, 50)) < 1e-13


@pytest.mark.parametrize("loss", ["bce", "bpr"])
@pytest.mark.parametrize("num_layers", [0, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_product_given_the_weights_is_the_product_that_evaluates_them(loss, num_layers, dtype):
    # The weights are what pass 1 evaluates without them (cpu/plan_ends.h): the same bits.
    emb, v, users, items, _, graph, keep = problem(60, 80, 3000, seed=62 + num_layers, d=48, dtype=dtype)
    neg = negatives(items, 60, emb.shape[0], seed=3) if loss == "bpr" else None
    graph = graph if num_layers > 0 else None
    plan = ifru_ext.plan_gauss_newton(emb, users, items, 7000, graph, num_layers, 0.1, keep, neg)
    assert plan.gauss_newton_weights is not None
    csr = (graph.rowptr, graph.col, graph.weight) if graph is not None else (None, None, None)
    args = (emb, v[plan.rows], *raw_plan(plan), None, 7000, *csr, num_layers, 0.1, plan.propagated, False, True)
    given = torch.ops.ifru.hvp_planned(*args, plan.gauss_newton_weights)
    assert torch.equal(given, torch.ops.ifru.hvp_planned(*args))
    assert torch.equal(plan.local(v[plan.rows]), given)
    # weights are read, not recomputed: other weights give another (linear in them) product
    doubled = torch.ops.ifru.hvp_planned(*args, 2 * plan.gauss_newton_weights)
    torch.testing.assert_close(doubled - 0.1 * v[plan.rows], 2 * (given - 0.1 * v[plan.rows]))


def test_gauss_newton_weights_check_their_arguments():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=63)
    plan = ifru_ext.plan_gauss_newton(emb, users, items, 40, keep=keep)
    ends = plan._ends
    with pytest.raises(ValueError, match=r"ifru::gauss_newton_weights: ends\[0\]\.flatten\(\) \(the plan's rows\)\[\d+\] "
                                         r"= \d+ is out of range \[0, 10\)"):
        torch.ops.ifru.gauss_newton_weights(emb[:10], ends, 40)
    with pytest.raises(ValueError, match="num_interactions = 3 must be positive and at least the plan's"):
        torch.ops.ifru.gauss_newton_weights(emb, ends, 3)
    with pytest.raises(RuntimeError, match="ifru::gauss_newton_weights: table must be 2-D"):
        torch.ops.ifru.gauss_newton_weights(emb[0], ends, 40)
    with pytest.raises(RuntimeError, match=r"ifru::gauss_newton_weights: ends must have shape \[2, E, a\]"):
        torch.ops.ifru.gauss_newton_weights(emb, ends[0], 40)
    with pytest.raises(RuntimeError, match="ifru::gauss_newton_weights: ends must be int64"):
        torch.ops.ifru.gauss_newton_weights(emb, ends.int(), 40)
    nan = emb.clone()
    nan[users[plan.interactions[0]]] = float("nan")
    with pytest.raises(ValueError, match="the weights hold NaN: table holds NaN or infinity in a row the plan reads"):
        torch.ops.ifru.gauss_newton_weights(nan, ends, 40)
    with pytest.raises(ValueError, match="the weights hold NaN"):  # the composite runs the same checks
        torch.ops.ifru.gauss_newton_weights.default.redispatch(COMPOSITE, nan, ends, 40)
    args = (emb, v[plan.rows], *raw_plan(plan), None, 40, None, None, None, 0, 0.0, None, False)
    weights = plan.gauss_newton_weights
    with pytest.raises(RuntimeError, match="gauss_newton_weights weigh the Gauss–Newton part only: pass gauss_newton=True"):
        torch.ops.ifru.hvp_planned(*args, False, weights)
    with pytest.raises(RuntimeError, match=r"gauss_newton_weights must have shape \[a\] = \[\d+\]"):
        torch.ops.ifru.hvp_planned(*args, True, weights[1:])
    with pytest.raises(RuntimeError, match="gauss_newton_weights must have dtype"):
        torch.ops.ifru.hvp_planned(*args, True, weights.float())
    with pytest.raises(RuntimeError, match="ifru::gauss_newton_weights: ends is on cpu but the op runs on meta"):
        torch.ops.ifru.gauss_newton_weights(emb.to("meta"), ends, 40)
    with pytest.raises(NotImplementedError, match=r"ifru::gauss_newton_weights: not differentiable .* table"):
        torch.ops.ifru.gauss_newton_weights(emb.clone().requires_grad_(), ends, 40).sum().backward()


def test_opcheck_gauss_newton_weights():
    emb, v, users, items, labels, graph, keep = problem(6, 9, 40, seed=64)
    neg = negatives(items, 6, 15, seed=2)
    for negatives_ in (None, neg):
        plan = ifru_ext.plan_gauss_newton(emb, users, items, 40, keep=keep, neg_items=negatives_)
        torch.library.opcheck(torch.ops.ifru.gauss_newton_weights.default, (emb, plan._ends, 40))
        torch.library.opcheck(torch.ops.ifru.gauss_newton_weights.default,
                              (emb.clone().requires_grad_(), plan._ends, 40),
                              test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
        args = (emb, v[plan.rows], *raw_plan(plan), None, 40, None, None, None, 0, 0.1, None, False, True,
                plan.gauss_newton_weights)
        torch.library.opcheck(torch.ops.ifru.hvp_planned.default, args)


# ---------------------------------------------------------------- _gather_floor
def test_gather_floor_sums_the_gathered_rows():
    gen = torch.Generator().manual_seed(50)
    for dtype in (torch.float32, torch.float64):
        table = torch.randn(300, 17, generator=gen, dtype=torch.float64).to(dtype)
        index = torch.randint(0, 300, (20_000,), generator=gen)
        expected = table.double()[index].sum(0)
        tolerance = 1e-3 if dtype == torch.float32 else 1e-10
        torch.testing.assert_close(torch.ops.ifru._gather_floor(table, index).double(), expected, rtol=tolerance,
                                   atol=tolerance)
        composite = torch.ops.ifru._gather_floor.default.redispatch(COMPOSITE, table, index)
        torch.testing.assert_close(composite.double(), expected, rtol=tolerance, atol=tolerance)
    assert torch.equal(torch.ops.ifru._gather_floor(table, index[:0]), torch.zeros(17, dtype=table.dtype))
    with pytest.raises(ValueError, match=r"ifru::_gather_floor: index\[0\] = \d+ is out of range \[0, 300\)"):
        torch.ops.ifru._gather_floor(table, index + 300)
    with pytest.raises(RuntimeError, match="ifru::_gather_floor: table must be 2-D"):
        torch.ops.ifru._gather_floor(table[0], index)

