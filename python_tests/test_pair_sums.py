"""ifru::pair_sums (issue 14): the one-pass per-row sums of dot-product pair terms against the
float64 plain-PyTorch reference at every compiled width and a runtime one, the composite (every
device without its own kernel) against the same, determinism across thread counts, opcheck, and
one clear error per bad argument."""
from __future__ import annotations

import math

import pytest
import torch

import ifru_ext

# The device-generic composite (composite/pair_sums.cpp); redispatching to this key runs it on CPU tensors.
COMPOSITE = torch._C.DispatchKeySet(torch._C.DispatchKey.PrivateUse1)


def pair_problem(seed: int, rows: int = 40, others: int = 70, entries: int = 900, d: int = 48,
                 dtype: torch.dtype = torch.float64, weighted: bool = True, scale: float = 0.4):
    """rows_table [rows, d], table [others, d], a CSR with empty rows and repeated columns, labels in {0, 1}
    and one fractional, weights in (0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    rows_table = (torch.randn(rows, d, generator=gen, dtype=torch.float64) * scale).to(dtype)
    table = (torch.randn(others, d, generator=gen, dtype=torch.float64) * scale).to(dtype)
    entry_rows = torch.randint(0, rows, (entries,), generator=gen)
    entry_rows[entry_rows == 3] = 4  # row 3 empty
    entry_rows = entry_rows.sort().values
    col = torch.randint(0, others, (entries,), generator=gen)
    col[:6] = col[6]  # a repeated pair
    rowptr = torch.zeros(rows + 1, dtype=torch.int64)
    rowptr[1:] = torch.bincount(entry_rows, minlength=rows).cumsum(0)
    labels = torch.randint(0, 2, (entries,), generator=gen).to(dtype)
    labels[-1] = 0.25
    weight = torch.rand(entries, generator=gen, dtype=torch.float64).to(dtype) if weighted else None
    return rows_table, table, rowptr, col, labels, weight


def reference(rows_table, table, rowptr, col, labels, weight):
    """The three sums in float64 with gathers and index_add."""
    entry_rows = torch.repeat_interleave(torch.arange(rowptr.numel() - 1), rowptr.diff())
    other = table.double()[col]
    p = torch.sigmoid((rows_table.double()[entry_rows] * other).sum(1))
    w = torch.ones_like(p) if weight is None else weight.double()
    slope, curvature = (p - labels.double()) * w, p * (1 - p) * w
    square = (p - labels.double()).square() * w
    zeros = lambda: torch.zeros(rows_table.shape[0], table.shape[1], dtype=torch.float64)  # noqa: E731
    return (zeros().index_add_(0, entry_rows, slope[:, None] * other),
            zeros().index_add_(0, entry_rows, square[:, None] * other.square()),
            zeros().index_add_(0, entry_rows, curvature[:, None] * other.square()))


@pytest.mark.parametrize("d", [16, 32, 48, 64, 40, 5])  # the compiled widths (csrc/cpu/widths.h), then any d
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_pair_sums_match_the_float64_reference(d, dtype, weighted):
    args = pair_problem(d, d=d, dtype=dtype, weighted=weighted)
    expected = reference(*args)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    for out in (ifru_ext.pair_sums(*args), torch.ops.ifru.pair_sums.default.redispatch(COMPOSITE, *args)):
        assert all(sums.dtype == dtype and sums.shape == (40, d) for sums in out)
        for sums, reference_sums in zip(out, expected):
            torch.testing.assert_close(sums.double(), reference_sums, rtol=tolerance, atol=tolerance)
        assert all(bool((sums[3] == 0).all()) for sums in out)  # the empty row
    # The curvature and the squared gradients are sums of non-negative terms.
    assert bool((expected[1] >= 0).all()) and bool((expected[2] >= 0).all()) and float(expected[2].sum()) > 0


def test_pair_sums_are_deterministic_across_thread_counts():
    # Each row is summed by one thread in entry order: the same bits with 1 and 2 threads.
    args = pair_problem(7, rows=600, others=900, entries=60_000, dtype=torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ifru_ext.pair_sums(*args)
        torch.set_num_threads(2)
        two = ifru_ext.pair_sums(*args)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(one, two))


def test_pair_sums_without_entries_or_rows():
    rows_table, table, rowptr, col, labels, weight = pair_problem(8)
    out = ifru_ext.pair_sums(rows_table, table, torch.zeros_like(rowptr), col[:0], labels[:0], weight[:0])
    assert all(sums.shape == rows_table.shape and bool((sums == 0).all()) for sums in out)
    out = ifru_ext.pair_sums(rows_table[:0], table, rowptr[:1], col[:0], labels[:0])
    assert all(sums.shape == (0, table.shape[1]) for sums in out)


def test_pair_sums_opcheck_and_no_backward():
    args = pair_problem(9, rows=8, others=12, entries=60, d=6)
    torch.library.opcheck(torch.ops.ifru.pair_sums.default, args)
    torch.library.opcheck(torch.ops.ifru.pair_sums.default, (*args[:5], None))
    table = args[1].clone().requires_grad_()
    torch.library.opcheck(torch.ops.ifru.pair_sums.default, (args[0], table, *args[2:]),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    gradient, _, _ = ifru_ext.pair_sums(args[0], table, *args[2:])
    with pytest.raises(NotImplementedError, match=r"ifru::pair_sums: not differentiable .* with respect to table"):
        gradient.sum().backward()


def _with(args, **changes):
    names = ("rows_table", "table", "rowptr", "col", "labels", "weight")
    return tuple(changes.get(name, arg) for name, arg in zip(names, args))


@pytest.mark.parametrize("change, error, message", [
    (lambda a: dict(col=a[3] + 70), ValueError, r"ifru::pair_sums: col\[0\] = \d+ is out of range \[0, 70\)"),
    (lambda a: dict(rowptr=a[2][:-1]), RuntimeError, r"ifru::pair_sums: rowptr must have num_rows \+ 1 = 41"),
    (lambda a: dict(rowptr=a[2].flip(0)), ValueError, r"ifru::pair_sums: rowptr\[0\] must be 0"),
    (lambda a: dict(labels=a[4] * 2), ValueError, r"ifru::pair_sums: labels must lie in \[0, 1\]"),
    (lambda a: dict(labels=a[4][1:]), RuntimeError, r"ifru::pair_sums: labels must have shape \[900\]"),
    (lambda a: dict(weight=a[5].float()), RuntimeError, r"ifru::pair_sums: weight must have dtype Double"),
    (lambda a: dict(rows_table=a[0][:, 1:]), RuntimeError, r"ifru::pair_sums: rows_table must have shape \[40, 48\]"),
    (lambda a: dict(table=a[1][0]), RuntimeError, r"ifru::pair_sums: table must be 2-D"),
    (lambda a: dict(col=a[3].int()), RuntimeError, r"ifru::pair_sums: col must be int64"),
    (lambda a: dict(table=a[1].index_fill(0, torch.tensor([5]), math.nan)), ValueError,
     r"ifru::pair_sums: table contains NaN or infinity"),
    (lambda a: dict(rows_table=a[0].index_fill(0, torch.tensor([1]), math.inf)), ValueError,
     r"ifru::pair_sums: rows_table contains NaN or infinity"),
    (lambda a: dict(table=a[1] * 1e200), ValueError, r"ifru::pair_sums: the result overflowed"),
])
def test_pair_sums_bad_arguments(change, error, message):
    args = pair_problem(10)
    bad = _with(args, **change(args))
    with pytest.raises(error, match=message):
        ifru_ext.pair_sums(*bad)
    with pytest.raises(error, match=message):  # the composite runs the same checks
        torch.ops.ifru.pair_sums.default.redispatch(COMPOSITE, *bad)


def test_pair_sums_fake_kernel_checks_devices():
    rows_table, table, rowptr, col, labels, weight = pair_problem(11)
    meta = lambda t: t.to("meta")  # noqa: E731
    with pytest.raises(RuntimeError, match="ifru::pair_sums: rowptr is on cpu but the op runs on meta"):
        torch.ops.ifru.pair_sums(meta(rows_table), meta(table), rowptr, meta(col), meta(labels), meta(weight))
    out = torch.ops.ifru.pair_sums(*(meta(t) for t in (rows_table, table, rowptr, col, labels, weight)))
    assert all(sums.shape == rows_table.shape and sums.device.type == "meta" for sums in out)
