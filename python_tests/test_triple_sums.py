"""ifru::triple_sums (issue 12's BPR cells): the one-pass per-row sums of BPR triple terms against a
float64 plain-PyTorch reference written per term (each column's Jacobian, scattered column by
column) at every compiled width and a runtime one, the composite (every device without its own
kernel) against the same, determinism across thread counts, opcheck, and one clear error per bad
argument."""
from __future__ import annotations

import math

import pytest
import torch

import ifru_ext

# The device-generic composite (composite/triple_sums.cpp); redispatching to this key runs it on CPU tensors.
COMPOSITE = torch._C.DispatchKeySet(torch._C.DispatchKey.PrivateUse1)


def triple_problem(seed: int, nodes: int = 60, terms: int = 300, rows: int = 25, d: int = 48,
                   dtype: torch.dtype = torch.float64, weighted: bool = True, scale: float = 0.4):
    """table [nodes, d]; triples (users, items, negatives) with a repeated triple and a triple whose
    item is its negative; labels in {0, 1} and one fractional; weights in (0, 1); a CSR over ``rows``
    rows (row 3 empty) listing every (term, column) whose row is below ``rows``, in a shuffled order."""
    gen = torch.Generator().manual_seed(seed)
    table = (torch.randn(nodes, d, generator=gen, dtype=torch.float64) * scale).to(dtype)
    columns = [torch.randint(0, nodes, (terms,), generator=gen) for _ in range(3)]
    for column in columns:
        column[column == 3] = 4  # row 3 has no entry
        column[1] = column[0]  # term 1 repeats term 0
    columns[2][5] = columns[1][5]  # x = 0, J at the user = 0
    labels = torch.randint(0, 2, (terms,), generator=gen).to(dtype)
    labels[-1] = 0.25
    weight = torch.rand(terms, generator=gen, dtype=torch.float64).to(dtype) if weighted else None
    entry_rows, codes = torch.cat(columns), torch.cat([3 * torch.arange(terms) + c for c in range(3)])
    present = entry_rows < rows
    entry_rows, codes = entry_rows[present], codes[present]
    order = torch.argsort(entry_rows * 10 * terms + torch.randperm(codes.numel(), generator=gen))
    col = codes[order]
    rowptr = torch.zeros(rows + 1, dtype=torch.int64)
    rowptr[1:] = torch.bincount(entry_rows, minlength=rows).cumsum(0)
    return table, *columns, labels, weight, rowptr, col


def reference(table, users, items, negatives, labels, weight, rowptr, col):
    """The three sums in float64: per term its logit and each column's Jacobian, added at the
    column's row when that row is one of the CSR's (the CSR lists exactly those entries)."""
    table = table.double()
    f_u, f_i, f_k = table[users], table[items], table[negatives]
    p = torch.sigmoid((f_u * (f_i - f_k)).sum(1))
    w = torch.ones_like(p) if weight is None else weight.double()
    slope = p - labels.double()
    rows = rowptr.numel() - 1
    out = [torch.zeros(rows, table.shape[1], dtype=torch.float64) for _ in range(3)]
    for column, jacobian in zip((users, items, negatives), (f_i - f_k, f_u, -f_u)):
        inside = column < rows
        for sums, coefficient, value in zip(out, (w * slope, w * slope.square(), w * p * (1 - p)),
                                            (jacobian, jacobian.square(), jacobian.square())):
            sums.index_add_(0, column[inside], (coefficient[:, None] * value)[inside])
    return tuple(out)


@pytest.mark.parametrize("d", [16, 32, 48, 64, 40, 5])  # the compiled widths (csrc/cpu/widths.h), then any d
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_triple_sums_match_the_float64_reference(d, dtype, weighted):
    args = triple_problem(d, d=d, dtype=dtype, weighted=weighted)
    expected = reference(*args)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    for out in (ifru_ext.triple_sums(*args), torch.ops.ifru.triple_sums.default.redispatch(COMPOSITE, *args)):
        assert all(sums.dtype == dtype and sums.shape == (25, d) for sums in out)
        for sums, reference_sums in zip(out, expected):
            torch.testing.assert_close(sums.double(), reference_sums, rtol=tolerance, atol=tolerance)
        assert all(bool((sums[3] == 0).all()) for sums in out)  # the empty row
    # Every column contributes: the sums are far from zero, the squares non-negative.
    assert float(expected[0].abs().sum()) > 1 and bool((expected[1] >= 0).all()) and float(expected[2].sum()) > 0


def test_triple_sums_are_deterministic_across_thread_counts():
    # Each row is summed by one thread in entry order: the same bits with 1 and 2 threads.
    args = triple_problem(7, nodes=900, terms=30_000, rows=700, dtype=torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ifru_ext.triple_sums(*args)
        torch.set_num_threads(2)
        two = ifru_ext.triple_sums(*args)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(one, two))


def test_triple_sums_without_entries_terms_or_rows():
    table, users, items, negatives, labels, weight, rowptr, col = triple_problem(8)
    out = ifru_ext.triple_sums(table, users, items, negatives, labels, weight, torch.zeros_like(rowptr), col[:0])
    assert all(sums.shape == (25, table.shape[1]) and bool((sums == 0).all()) for sums in out)
    none = users[:0]
    out = ifru_ext.triple_sums(table, none, none, none, labels[:0], None, torch.zeros_like(rowptr), col[:0])
    assert all(bool((sums == 0).all()) for sums in out)
    out = ifru_ext.triple_sums(table, users, items, negatives, labels, weight, rowptr[:1], col[:0])
    assert all(sums.shape == (0, table.shape[1]) for sums in out)


def test_triple_sums_opcheck_and_no_backward():
    args = triple_problem(9, nodes=12, terms=20, rows=10, d=6)
    torch.library.opcheck(torch.ops.ifru.triple_sums.default, args)
    torch.library.opcheck(torch.ops.ifru.triple_sums.default, (*args[:5], None, *args[6:]))
    table = args[0].clone().requires_grad_()
    torch.library.opcheck(torch.ops.ifru.triple_sums.default, (table, *args[1:]),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    gradient, _, _ = ifru_ext.triple_sums(table, *args[1:])
    with pytest.raises(NotImplementedError, match=r"ifru::triple_sums: not differentiable .* with respect to table"):
        gradient.sum().backward()


def _with(args, **changes):
    names = ("table", "users", "items", "negatives", "labels", "weight", "rowptr", "col")
    return tuple(changes.get(name, arg) for name, arg in zip(names, args))


@pytest.mark.parametrize("change, error, message", [
    (lambda a: dict(col=a[7] + 900), ValueError, r"ifru::triple_sums: col\[0\] = \d+ is out of range \[0, 900\)"),
    (lambda a: dict(negatives=a[3] + 60), ValueError, r"ifru::triple_sums: negatives\[0\] = \d+ is out of range \[0, 60\)"),
    (lambda a: dict(items=a[2][1:]), RuntimeError, r"ifru::triple_sums: users and items must have equal length"),
    (lambda a: dict(users=a[1].int()), RuntimeError, r"ifru::triple_sums: users must be int64"),
    (lambda a: dict(rowptr=a[6].flip(0)), ValueError, r"ifru::triple_sums: rowptr\[0\] must be 0"),
    (lambda a: dict(rowptr=a[6][:0]), RuntimeError, r"ifru::triple_sums: rowptr must have num_rows \+ 1 >= 1 entries"),
    (lambda a: dict(labels=a[4] * 2), ValueError, r"ifru::triple_sums: labels must lie in \[0, 1\]"),
    (lambda a: dict(labels=a[4][1:]), RuntimeError, r"ifru::triple_sums: labels must have shape \[300\]"),
    (lambda a: dict(weight=a[5].float()), RuntimeError, r"ifru::triple_sums: weight must have dtype Double"),
    (lambda a: dict(table=a[0][0]), RuntimeError, r"ifru::triple_sums: table must be 2-D"),
    (lambda a: dict(table=a[0].index_fill(0, torch.tensor([5]), math.nan)), ValueError,
     r"ifru::triple_sums: table contains NaN or infinity"),
    (lambda a: dict(weight=a[5].index_fill(0, torch.tensor([0]), math.inf)), ValueError,
     r"ifru::triple_sums: weight contains NaN or infinity"),
    (lambda a: dict(table=a[0] * 1e200), ValueError, r"ifru::triple_sums: the result overflowed"),
])
def test_triple_sums_bad_arguments(change, error, message):
    args = triple_problem(10)
    bad = _with(args, **change(args))
    with pytest.raises(error, match=message):
        ifru_ext.triple_sums(*bad)
    with pytest.raises(error, match=message):  # the composite runs the same checks
        torch.ops.ifru.triple_sums.default.redispatch(COMPOSITE, *bad)


def test_triple_sums_fake_kernel_checks_devices():
    args = triple_problem(11)
    meta = lambda t: None if t is None else t.to("meta")  # noqa: E731
    with pytest.raises(RuntimeError, match="ifru::triple_sums: rowptr is on cpu but the op runs on meta"):
        torch.ops.ifru.triple_sums(*(meta(t) for t in args[:6]), args[6], meta(args[7]))
    out = torch.ops.ifru.triple_sums(*(meta(t) for t in args))
    assert all(sums.shape == (25, args[0].shape[1]) and sums.device.type == "meta" for sums in out)
