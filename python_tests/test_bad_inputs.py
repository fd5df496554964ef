"""Bad arguments raise a clear Python exception naming the problem, never crash or hang."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import ifru_ext
from ifru_ext import lightgcn_graph


def valid_call():
    """A small valid hvp/propagate/importance problem as plain keyword dicts."""
    gen = torch.Generator().manual_seed(0)
    num_users, num_items, n = 5, 6, 25
    users = torch.randint(0, num_users, (n,), generator=gen)
    items = torch.randint(0, num_items, (n,), generator=gen)
    labels = torch.randint(0, 2, (n,), generator=gen).double()
    graph = lightgcn_graph(users, items, labels, num_users, num_items, dtype=torch.float64)
    emb = torch.randn(11, 4, dtype=torch.float64, generator=gen)
    seed_counts = torch.zeros(11, dtype=torch.float64)
    seed_counts[graph.degree() > 0] = 1.0
    return dict(
        rowptr=graph.rowptr, col=graph.col, weight=graph.weight, emb=emb, v=torch.randn_like(emb),
        users=users, items=items + num_users, labels=labels, keep=torch.ones(11, dtype=torch.bool),
        seed_counts=seed_counts,
    )


def call(op: str, a: dict, num_layers: int = 1, l2: float = 0.0, ratios=(1.0, 0.5)):
    if op == "propagate":
        return torch.ops.ifru.propagate(a["rowptr"], a["col"], a["weight"], a["emb"], num_layers)
    if op == "hvp":
        return torch.ops.ifru.hvp(a["emb"], a["v"], a["users"], a["items"], a["labels"], a["rowptr"], a["col"],
                                  a["weight"], num_layers, l2, a["keep"])
    if op == "csr_transpose":
        return torch.ops.ifru.csr_transpose(a["rowptr"], a["col"], a["weight"])
    return torch.ops.ifru.importance(a["rowptr"], a["col"], a["seed_counts"], list(ratios))


def decreasing_rowptr(a):
    r = a["rowptr"].clone()
    r[3] = r[4] + 1
    return {**a, "rowptr": r}


# (name, corruption, ops it applies to, expected exception, message fragment)
CORRUPTIONS = [
    ("rowptr decreasing", decreasing_rowptr, "all", ValueError, "non-decreasing"),
    ("rowptr not starting at 0", lambda a: {**a, "rowptr": a["rowptr"] + 1}, "all", ValueError, r"rowptr\[0\]"),
    ("rowptr too short", lambda a: {**a, "rowptr": a["rowptr"][:-1]}, "propagate hvp importance", RuntimeError, "rowptr"),
    ("rowptr int32", lambda a: {**a, "rowptr": a["rowptr"].int()}, "all", RuntimeError, "int64"),
    ("col out of range", lambda a: {**a, "col": torch.where(torch.arange(a["col"].numel()) == 0, 99, a["col"])},
     "all", ValueError, "out of range"),
    ("col negative", lambda a: {**a, "col": -a["col"] - 1}, "all", ValueError, "out of range"),
    ("weight wrong length", lambda a: {**a, "weight": a["weight"][1:]}, "propagate hvp csr_transpose", RuntimeError, "weight"),
    ("weight NaN", lambda a: {**a, "weight": a["weight"] * math.nan}, "propagate hvp csr_transpose", ValueError, "NaN"),
    ("weight inf", lambda a: {**a, "weight": a["weight"].index_fill(0, torch.tensor([1]), -math.inf)},
     "propagate hvp csr_transpose", ValueError, "weight contains NaN or infinity"),
    ("weight float32", lambda a: {**a, "weight": a["weight"].float()}, "propagate hvp", RuntimeError, "dtype"),
    ("x 1-D", lambda a: {**a, "emb": a["emb"][:, 0]}, "propagate hvp", RuntimeError, "2-D"),
    ("x wrong rows", lambda a: {**a, "emb": a["emb"][1:]}, "propagate", RuntimeError, "rowptr"),
    ("x integer", lambda a: {**a, "emb": a["emb"].long()}, "propagate hvp", RuntimeError, "float"),
    ("x has inf", lambda a: {**a, "emb": a["emb"].index_fill(0, torch.tensor([2]), math.inf)}, "propagate hvp",
     ValueError, "NaN or infinity"),
    ("v wrong shape", lambda a: {**a, "v": a["v"][:, 1:]}, "hvp", RuntimeError, "v must have shape"),
    ("users out of range", lambda a: {**a, "users": a["users"] + 100}, "hvp", ValueError, "users"),
    ("items too short", lambda a: {**a, "items": a["items"][1:]}, "hvp", RuntimeError, "equal length"),
    ("users float", lambda a: {**a, "users": a["users"].double()}, "hvp", RuntimeError, "int64"),
    ("labels outside [0,1]", lambda a: {**a, "labels": a["labels"] * 3 - 1}, "hvp", ValueError, "labels"),
    ("labels NaN", lambda a: {**a, "labels": a["labels"] * math.nan}, "hvp", ValueError, "labels"),
    ("keep not bool", lambda a: {**a, "keep": a["keep"].long()}, "hvp", RuntimeError, "bool"),
    ("keep wrong length", lambda a: {**a, "keep": a["keep"][1:]}, "hvp", RuntimeError, "keep"),
    ("seed_counts negative", lambda a: {**a, "seed_counts": -a["seed_counts"]}, "importance", ValueError, ">= 0"),
    ("seed on isolated node", lambda a: {**a, "seed_counts": torch.ones_like(a["seed_counts"])}, "importance",
     ValueError, "no neighbours"),
    ("seed_counts int", lambda a: {**a, "seed_counts": a["seed_counts"].long()}, "importance", RuntimeError, "float"),
]
OPS = ["propagate", "hvp", "csr_transpose", "importance"]
CASES = [
    pytest.param(op, corrupt, exc, fragment, id=f"{op}-{name}")
    for name, corrupt, ops, exc, fragment in CORRUPTIONS
    for op in OPS
    if ops == "all" or op in ops.split()
]


@pytest.mark.parametrize("op, corrupt, exc, fragment", CASES)
def test_bad_argument_raises_clear_error(op, corrupt, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call(op, corrupt(valid_call()))


@pytest.mark.parametrize(
    "kwargs, exc, fragment",
    [
        (dict(num_layers=-1), ValueError, "num_layers"),
        (dict(num_layers=ifru_ext.ops.MAX_LAYERS + 1), ValueError, r"num_layers must lie in \[0, 64\]"),
        (dict(num_layers=2**40), ValueError, r"num_layers must lie in \[0, 64\], got 1099511627776"),
        (dict(l2=math.nan), ValueError, "l2"),
        (dict(ratios=(1.0, 1.5)), ValueError, "ratios"),
        (dict(ratios=()), ValueError, "ratios"),
    ],
)
def test_bad_scalar_argument(kwargs, exc, fragment):
    op = "importance" if "ratios" in kwargs else "hvp"
    with pytest.raises(exc, match=fragment):
        call(op, valid_call(), **kwargs)
    if "num_layers" in kwargs:
        with pytest.raises(exc, match=fragment):
            call("propagate", valid_call(), **kwargs)


def test_hvp_graph_parts_must_come_together():
    a = valid_call()
    with pytest.raises(RuntimeError, match="together"):
        torch.ops.ifru.hvp(a["emb"], a["v"], a["users"], a["items"], a["labels"], a["rowptr"], None, a["weight"], 1, 0.0, None)
    with pytest.raises(RuntimeError, match="needs a graph"):
        torch.ops.ifru.hvp(a["emb"], a["v"], a["users"], a["items"], a["labels"], None, None, None, 2, 0.0, None)


def test_importance_asymmetric_adjacency_is_refused():
    # Edge 0 -> 1 stored, but row 1 is empty: |N_1| = 0 would divide by zero.
    rowptr, col = torch.tensor([0, 1, 1]), torch.tensor([1])
    with pytest.raises(ValueError, match="both directions"):
        torch.ops.ifru.importance(rowptr, col, torch.tensor([1.0, 0.0], dtype=torch.float64), [1.0, 1.0])


def test_cuda_tensor_on_cpu_only_build_is_refused():
    if ifru_ext.with_cuda() or not torch.cuda.is_available():
        pytest.skip("needs a CUDA device with a CPU-only build")
    a = valid_call()
    with pytest.raises(RuntimeError):
        torch.ops.ifru.propagate(a["rowptr"].cuda(), a["col"].cuda(), a["weight"].cuda(), a["emb"].cuda(), 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    op=st.sampled_from(OPS),
    picks=st.lists(st.sampled_from(range(len(CORRUPTIONS))), min_size=1, max_size=3, unique=True),
    num_layers=st.sampled_from([-2, -1, 0, 1, 2, 3, ifru_ext.ops.MAX_LAYERS + 1, 2**40]),
    l2=st.sampled_from([0.0, 0.1, math.inf]),
    ratios=st.lists(st.sampled_from([-0.5, 0.0, 0.3, 1.0, 2.0]), min_size=0, max_size=3),
)
def test_fuzzed_arguments_never_crash(op, picks, num_layers, l2, ratios):
    """Any mix of corruptions: either a clean result or a Python exception with a message."""
    a = valid_call()
    for pick in picks:
        try:
            a = CORRUPTIONS[pick][1](a)
        except (RuntimeError, IndexError):  # corruptions that cannot be stacked (inf into an int tensor)
            assume(False)
    try:
        out = call(op, a, num_layers=num_layers, l2=l2, ratios=ratios)
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        assert str(error).strip()
    else:
        outs = out if isinstance(out, tuple) else (out,)
        assert all(not o.is_floating_point() or bool(torch.isfinite(o).all()) for o in outs)
