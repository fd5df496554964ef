"""ifru::bpr_hvp, the fused HVP of the mean BPR loss (issue 15): against the autograd float64
reference, finite differences, opcheck, its refusals and bad inputs, and CUDA against CPU (skipped
without a CUDA build and a GPU)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import ifru_ext
from ifru_ext.ops import MAX_LAYERS
from references import bpr_hvp_reference, bpr_training_loss, random_csr, random_negatives
from test_bad_inputs import CORRUPTIONS, valid_call
from test_cuda import CUDA, assert_close_to_cpu
from test_ops import SHAPES, problem, rel_err


def bpr_problem(num_users, num_items, n, seed, d=5, dtype=torch.float64):
    """emb, v, users, pos_items, neg_items, graph, keep: problem()'s interactions as the positives,
    a random item row (duplicates of the positive included) as each one's negative."""
    emb, v, users, pos_items, _, graph, keep = problem(num_users, num_items, n, seed, d, dtype)
    neg_items = random_negatives(num_users, num_items, n, torch.Generator().manual_seed(1000 + seed))
    return emb, v, users, pos_items, neg_items, graph, keep


# ---------------------------------------------------------------- against autograd
@pytest.mark.parametrize("num_layers", [0, 1, 2])
@pytest.mark.parametrize("use_keep", [False, True])
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("shape", SHAPES)
def test_bpr_hvp_matches_autograd(num_layers, use_keep, l2, shape):
    emb, v, users, pos, neg, graph, keep = bpr_problem(*shape, seed=11 * num_layers + use_keep)
    keep = keep if use_keep else None
    graph = graph if num_layers > 0 else None
    out = ifru_ext.bpr_hvp(emb, v, users, pos, neg, graph, num_layers, l2, keep)
    ref = bpr_hvp_reference(emb, v, users, pos, neg, graph, num_layers, l2, keep)
    assert out.dtype == torch.float64 and out.shape == emb.shape and out.is_contiguous()
    assert rel_err(out, ref) < 1e-10
    if keep is not None:
        assert bool((out[~keep] == 0).all())


def test_bpr_hvp_asymmetric_graph_uses_transpose():
    gen = torch.Generator().manual_seed(12)
    graph = random_csr(14, 50, gen)
    emb = torch.randn(14, 4, dtype=torch.float64, generator=gen) * 0.5
    v = torch.randn(14, 4, dtype=torch.float64, generator=gen)
    users = torch.randint(0, 7, (30,), generator=gen)
    pos, neg = torch.randint(7, 14, (30,), generator=gen), torch.randint(7, 14, (30,), generator=gen)
    keep = torch.rand(14, generator=gen) < 0.6
    for k in (None, keep):
        out = ifru_ext.bpr_hvp(emb, v, users, pos, neg, graph, 2, 0.1, k)
        assert rel_err(out, bpr_hvp_reference(emb, v, users, pos, neg, graph, 2, 0.1, k)) < 1e-10


def test_bpr_hvp_repeated_rows_and_float32():
    # A user row used as an item, the positive equal to the negative (x = 0 whatever F is),
    # all three rows the same: the fused kernel must still give the true Hessian.
    emb, v, users, pos, neg, graph, keep = bpr_problem(6, 9, 40, seed=13)
    users = torch.cat([users, torch.tensor([2, 2, 3, 4])])
    pos = torch.cat([pos, torch.tensor([2, 8, 10, 4])])
    neg = torch.cat([neg, torch.tensor([9, 2, 10, 4])])
    for g, layers, k in [(None, 0, None), (None, 0, keep), (graph, 1, None), (graph, 2, keep)]:
        ref = bpr_hvp_reference(emb, v, users, pos, neg, g, layers, 0.2, k)
        assert rel_err(ifru_ext.bpr_hvp(emb, v, users, pos, neg, g, layers, 0.2, k), ref) < 1e-10
        g32 = None if g is None else g.to(dtype=torch.float32)
        out32 = ifru_ext.bpr_hvp(emb.float(), v.float(), users, pos, neg, g32, layers, 0.2, k)
        assert out32.dtype == torch.float32
        assert rel_err(out32.double(), ref) < 1e-5


def test_bpr_hvp_matches_finite_differences_of_the_gradient():
    """Independent of double backward: H v ≈ (∇L(E + εv) − ∇L(E − εv)) / 2ε."""
    emb, v, users, pos, neg, graph, _ = bpr_problem(20, 15, 200, seed=9)
    from references import propagation_matrix

    for g, layers in [(None, 0), (graph, 1), (graph, 2)]:
        propagation = None if g is None else propagation_matrix(g, layers)

        def grad(e):
            e = e.clone().requires_grad_()
            (out,) = torch.autograd.grad(bpr_training_loss(e, users, pos, neg, propagation, 0.3), e)
            return out

        eps = 1e-5
        fd = (grad(emb + eps * v) - grad(emb - eps * v)) / (2 * eps)
        assert rel_err(ifru_ext.bpr_hvp(emb, v, users, pos, neg, g, layers, 0.3), fd) < 1e-8


def test_bpr_hvp_is_linear_in_v_and_symmetric():
    """Hessian-vector products: H(αa + b) = αHa + Hb and a·Hb = b·Ha (H is symmetric)."""
    emb, a, users, pos, neg, graph, _ = bpr_problem(20, 15, 200, seed=10)
    b = torch.randn_like(a)
    hvp = lambda t: ifru_ext.bpr_hvp(emb, t, users, pos, neg, graph, 2, 0.1)  # noqa: E731
    assert rel_err(hvp(2.5 * a + b), 2.5 * hvp(a) + hvp(b)) < 1e-12
    assert abs(float((a * hvp(b)).sum() - (b * hvp(a)).sum())) < 1e-12 * float(a.norm() * hvp(b).norm())


def test_bpr_hvp_no_triples_is_l2_only():
    emb, v, users, pos, neg, graph, keep = bpr_problem(6, 9, 40, seed=14)
    empty = users[:0]
    out = ifru_ext.bpr_hvp(emb, v, empty, empty, empty, graph, 1, 0.25, keep)
    torch.testing.assert_close(out, 0.25 * v * keep[:, None])
    none_kept = torch.zeros_like(keep)
    assert bool((ifru_ext.bpr_hvp(emb, v, users, pos, neg, None, 0, 0.3, none_kept) == 0).all())
    zero_width = torch.zeros(15, 0, dtype=torch.float64)
    assert ifru_ext.bpr_hvp(zero_width, zero_width, users, pos, neg).shape == (15, 0)


def test_bpr_hvp_is_deterministic_across_thread_counts():
    emb, v, users, pos, neg, graph, keep = bpr_problem(40, 60, 3000, seed=15, d=16, dtype=torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [ifru_ext.bpr_hvp(emb, v, users, pos, neg, g, k, 0.0, keep) for g, k in [(None, 0), (graph, 1)]]
        torch.set_num_threads(max(2, threads))
        many = [ifru_ext.bpr_hvp(emb, v, users, pos, neg, g, k, 0.0, keep) for g, k in [(None, 0), (graph, 1)]]
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(x, y) for x, y in zip(one, many))


def test_bpr_hvp_non_contiguous_inputs():
    emb, v, users, pos, neg, graph, keep = bpr_problem(20, 15, 200, seed=16, d=6)
    triples = torch.stack([users, pos, neg], 1)  # columns of a [n, 3] tensor are strided views
    emb_t = emb.t().contiguous().t()
    assert not triples[:, 0].is_contiguous() and not emb_t.is_contiguous()
    out = ifru_ext.bpr_hvp(emb_t, v, triples[:, 0], triples[:, 1], triples[:, 2], graph, 1, 0.1, keep)
    assert rel_err(out, bpr_hvp_reference(emb, v, users, pos, neg, graph, 1, 0.1, keep)) < 1e-10


# ---------------------------------------------------------------- registration: opcheck, derivatives
def test_opcheck():
    emb, v, users, pos, neg, graph, keep = bpr_problem(6, 9, 40, seed=30)
    g = (graph.rowptr, graph.col, graph.weight)
    op = torch.ops.ifru.bpr_hvp.default
    torch.library.opcheck(op, (emb, v, users, pos, neg, *g, 1, 0.1, keep, True))
    torch.library.opcheck(op, (emb, v, users, pos, neg, *g, 2, 0.0, None, False))
    torch.library.opcheck(op, (emb, v, users, pos, neg, None, None, None, 0, 0.0, None))
    torch.library.opcheck(op, (emb.float(), v.float(), users, pos, neg, None, None, None, 0, 0.5, keep))


def test_opcheck_autograd_registration_with_inputs_requiring_grad():
    """Its own autograd kernel (a clear refusal of the backward), not the silent fallback."""
    emb, v, users, pos, neg, graph, keep = bpr_problem(6, 9, 40, seed=31)
    g = (graph.rowptr, graph.col, graph.weight)
    args = (emb.clone().requires_grad_(), v.clone().requires_grad_(), users, pos, neg, *g, 1, 0.1, keep, True)
    torch.library.opcheck(torch.ops.ifru.bpr_hvp.default, args,
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


@pytest.mark.parametrize("wanted", ["emb", "v"])
def test_gradient_through_bpr_hvp_is_refused(wanted):
    emb, v, users, pos, neg, graph, _ = bpr_problem(6, 9, 40, seed=32)
    inputs = {"emb": emb, "v": v}
    inputs[wanted] = inputs[wanted].clone().requires_grad_()
    out = ifru_ext.bpr_hvp(inputs["emb"], inputs["v"], users, pos, neg, graph, 1)  # the forward itself is fine
    assert out.requires_grad
    with pytest.raises(NotImplementedError, match=rf"ifru::bpr_hvp: not differentiable .* with respect to {wanted}"):
        out.sum().backward()


def test_forward_mode_ad_is_refused():
    emb, v, users, pos, neg, graph, _ = bpr_problem(6, 9, 40, seed=33)
    with pytest.raises(NotImplementedError, match=r"ifru::bpr_hvp: forward-mode AD .* not supported"):
        torch.func.jvp(lambda t: ifru_ext.bpr_hvp(emb, t, users, pos, neg, graph, 1), (v,), (torch.ones_like(v),))
    with fwAD.dual_level():
        dual = fwAD.make_dual(emb, torch.ones_like(emb))
        with pytest.raises(NotImplementedError, match=r"ifru::bpr_hvp: forward-mode AD .* emb has a tangent"):
            ifru_ext.bpr_hvp(dual, v, users, pos, neg)


def test_fake_kernel_checks_devices_and_num_layers():
    emb, v, users, pos, neg, graph, keep = bpr_problem(6, 9, 40, seed=34)
    meta = lambda t: t.to("meta")  # noqa: E731
    with pytest.raises(RuntimeError, match=r"ifru::bpr_hvp: neg_items is on cpu but the op runs on meta"):
        torch.ops.ifru.bpr_hvp(meta(emb), meta(v), meta(users), meta(pos), neg, None, None, None, 0, 0.0, None)
    g = (meta(graph.rowptr), meta(graph.col), meta(graph.weight))
    out = torch.ops.ifru.bpr_hvp(meta(emb), meta(v), meta(users), meta(pos), meta(neg), *g, 1, 0.0, meta(keep))
    assert out.device.type == "meta" and out.shape == emb.shape
    with pytest.raises(ValueError, match="ifru::bpr_hvp: num_layers"):
        torch.ops.ifru.bpr_hvp(meta(emb), meta(v), meta(users), meta(pos), meta(neg), *g, 2**40, 0.0, None)


def test_num_layers_bound_and_overflow():
    emb, v, users, pos, neg, graph, _ = bpr_problem(6, 9, 40, seed=35)
    assert ifru_ext.bpr_hvp(emb, v, users, pos, neg, graph, MAX_LAYERS).isfinite().all()
    with pytest.raises(ValueError, match=rf"ifru::bpr_hvp: num_layers must lie in \[0, {MAX_LAYERS}\], got 65"):
        ifru_ext.bpr_hvp(emb, v, users, pos, neg, graph, MAX_LAYERS + 1)
    with pytest.raises(ValueError, match=r"ifru::bpr_hvp: the result overflowed"):
        ifru_ext.bpr_hvp(emb.float(), torch.full_like(emb.float(), 1e30), users, pos, neg, None, 0, 1e30)


# ---------------------------------------------------------------- bad inputs
def valid_bpr_call():
    """test_bad_inputs.valid_call() with a negative item per interaction."""
    a = valid_call()
    gen = torch.Generator().manual_seed(1)
    return {**a, "neg_items": torch.randint(5, 11, (a["users"].numel(),), generator=gen)}


def call_bpr(a: dict, num_layers: int = 1, l2: float = 0.0):
    return torch.ops.ifru.bpr_hvp(a["emb"], a["v"], a["users"], a["items"], a["neg_items"], a["rowptr"], a["col"],
                                  a["weight"], num_layers, l2, a["keep"])


# hvp's corruptions that bpr_hvp's arguments share (all but the labels), as pos_items in the place
# of items, plus its own.
SHARED = [c for c in CORRUPTIONS if (c[2] == "all" or "hvp" in c[2].split()) and "labels" not in c[0]]
BPR_CORRUPTIONS = [
    *SHARED,
    ("neg_items out of range", lambda a: {**a, "neg_items": a["neg_items"] + 100}, "", ValueError,
     r"neg_items\[0\] = \d+ is out of range"),
    ("neg_items negative", lambda a: {**a, "neg_items": -a["neg_items"]}, "", ValueError, "neg_items"),
    ("neg_items too short", lambda a: {**a, "neg_items": a["neg_items"][1:]}, "", RuntimeError,
     "users and neg_items must have equal length"),
    ("neg_items int32", lambda a: {**a, "neg_items": a["neg_items"].int()}, "", RuntimeError,
     "neg_items must be int64"),
    ("neg_items 2-D", lambda a: {**a, "neg_items": a["neg_items"][:, None]}, "", RuntimeError, "neg_items must be 1-D"),
    ("pos_items too short", lambda a: {**a, "items": a["items"][1:]}, "", RuntimeError,
     "users and pos_items must have equal length"),
    ("pos_items out of range", lambda a: {**a, "items": a["items"] * 0 + 11}, "", ValueError, r"pos_items\[0\] = 11"),
    ("users too long", lambda a: {**a, "users": torch.cat([a["users"], a["users"][:1]])}, "", RuntimeError,
     "equal length"),
    ("v float32", lambda a: {**a, "v": a["v"].float()}, "", RuntimeError, "v must have dtype"),
    ("v has NaN", lambda a: {**a, "v": a["v"] * math.nan}, "", ValueError, "v contains NaN"),
    ("keep 2-D", lambda a: {**a, "keep": a["keep"][:, None]}, "", RuntimeError, r"keep must have shape \[N\]"),
]


@pytest.mark.parametrize("corrupt, exc, fragment",
                         [pytest.param(c[1], c[3], c[4], id=c[0]) for c in BPR_CORRUPTIONS])
def test_bad_argument_raises_clear_error(corrupt, exc, fragment):
    with pytest.raises(exc, match=fragment) as error:
        call_bpr(corrupt(valid_bpr_call()))
    assert "ifru::bpr_hvp: " in str(error.value)


@pytest.mark.parametrize(
    "kwargs, exc, fragment",
    [
        (dict(num_layers=-1), ValueError, "num_layers"),
        (dict(num_layers=2**40), ValueError, r"num_layers must lie in \[0, 64\], got 1099511627776"),
        (dict(l2=math.nan), ValueError, "l2 must be finite"),
        (dict(l2=math.inf), ValueError, "l2 must be finite"),
    ],
)
def test_bad_scalar_argument(kwargs, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call_bpr(valid_bpr_call(), **kwargs)


def test_graph_parts_must_come_together():
    a = valid_bpr_call()
    args = (a["emb"], a["v"], a["users"], a["items"], a["neg_items"])
    with pytest.raises(RuntimeError, match="ifru::bpr_hvp: rowptr, col and weight must be given together"):
        torch.ops.ifru.bpr_hvp(*args, a["rowptr"], None, a["weight"], 1, 0.0, None)
    with pytest.raises(RuntimeError, match="ifru::bpr_hvp: num_layers = 2 needs a graph"):
        torch.ops.ifru.bpr_hvp(*args, None, None, None, 2, 0.0, None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.sampled_from(range(len(BPR_CORRUPTIONS))), min_size=1, max_size=3, unique=True),
    num_layers=st.sampled_from([-1, 0, 1, 2, MAX_LAYERS + 1]),
    l2=st.sampled_from([0.0, 0.1, math.inf]),
)
def test_fuzzed_arguments_never_crash(picks, num_layers, l2):
    a = valid_bpr_call()
    for pick in picks:
        try:
            a = BPR_CORRUPTIONS[pick][1](a)
        except (RuntimeError, IndexError):  # corruptions that cannot be stacked
            assume(False)
    try:
        out = call_bpr(a, num_layers=num_layers, l2=l2)
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        assert str(error).strip()
    else:
        assert bool(torch.isfinite(out).all())


# ---------------------------------------------------------------- CUDA (the sweep over widths and dtypes
# against the CPU kernel is test_cuda.py's test_hvp_matches_cpu, parametrised over hvp and bpr_hvp)
cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and ifru_ext.with_cuda()), reason="needs a CUDA build of ifru_ext and a visible GPU"
)


def on_cuda(emb, v, users, pos, neg, graph, keep):
    return (emb.to(CUDA), v.to(CUDA), users.to(CUDA), pos.to(CUDA), neg.to(CUDA),
            None if graph is None else graph.to(CUDA), None if keep is None else keep.to(CUDA))


@cuda
@pytest.mark.parametrize("use_keep", [False, True])
def test_cuda_matches_autograd_reference_and_is_deterministic(use_keep):
    emb, v, users, pos, neg, graph, keep = bpr_problem(20, 15, 200, seed=7)
    keep = keep if use_keep else None
    ref = bpr_hvp_reference(emb, v, users, pos, neg, graph, 1, 0.3, keep)
    args = on_cuda(emb, v, users, pos, neg, graph, keep)
    first = ifru_ext.bpr_hvp(*args[:6], 1, 0.3, args[6])
    assert rel_err(first.cpu(), ref) < 1e-10
    assert torch.equal(first, ifru_ext.bpr_hvp(*args[:6], 1, 0.3, args[6]))


@cuda
def test_cuda_degenerate_inputs_opcheck_and_bad_arguments():
    emb, v, users, pos, neg, graph, keep = bpr_problem(6, 9, 40, seed=14)
    e, vv, u, p, n, g, k = on_cuda(emb, v, users, pos, neg, graph, keep)
    torch.testing.assert_close(ifru_ext.bpr_hvp(e, vv, u[:0], p[:0], n[:0], g, 1, 0.25, k), 0.25 * vv * k[:, None])
    assert bool((ifru_ext.bpr_hvp(e, vv, u, p, n, None, 0, 0.0, torch.zeros_like(k)) == 0).all())
    csr = (g.rowptr, g.col, g.weight)
    torch.library.opcheck(torch.ops.ifru.bpr_hvp.default, (e, vv, u, p, n, *csr, 1, 0.1, k, True))
    torch.library.opcheck(torch.ops.ifru.bpr_hvp.default, (e, vv, u, p, n, None, None, None, 0, 0.0, k))
    with pytest.raises(ValueError, match="neg_items"):
        torch.ops.ifru.bpr_hvp(e, vv, u, p, n + 100, None, None, None, 0, 0.0, None)
    with pytest.raises(RuntimeError, match="neg_items is on cpu"):
        torch.ops.ifru.bpr_hvp(e, vv, u, p, n.cpu(), None, None, None, 0, 0.0, None)
