"""ifru::propagate_rows (issue 14): ``(P X)[out_rows]`` with ``X`` given on some rows, against the
float64 dense reference and against ``propagate`` (the same bits: the same sums in the same order),
at every compiled width and a runtime one, 0–3 layers, both kernels (CPU and the device-generic
composite), any thread count; opcheck; no backward; one clear error per bad argument (a non-finite value
where it reaches the result)."""
from __future__ import annotations

import math

import pytest
import torch

import ifru_ext
from references import propagate_reference, random_csr

# The device-generic composite (composite/propagate_rows.cpp); redispatching to this key runs it on CPU tensors.
COMPOSITE = torch._C.DispatchKeySet(torch._C.DispatchKey.PrivateUse1)


def rows_problem(seed: int, nodes: int = 60, nnz: int = 400, d: int = 5, dtype: torch.dtype = torch.float64):
    """An asymmetric graph with empty rows, x on a random ascending subset of rows (and those rows'
    full table X), and output rows with repeats, unsorted."""
    gen = torch.Generator().manual_seed(seed)
    graph = random_csr(nodes, nnz, gen).to(dtype=dtype)
    x_rows = torch.randperm(nodes, generator=gen)[: nodes // 2].sort().values
    x = torch.randn(x_rows.numel(), d, generator=gen, dtype=torch.float64).to(dtype)
    table = torch.zeros(nodes, d, dtype=dtype).index_copy_(0, x_rows, x)
    out_rows = torch.randint(0, nodes, (nodes // 3,), generator=gen)
    out_rows[1] = out_rows[0]  # a repeat
    return graph, x, x_rows, table, out_rows


def composite(x, graph, num_layers, x_rows=None, out_rows=None):
    return torch.ops.ifru.propagate_rows.default.redispatch(COMPOSITE, graph.rowptr, graph.col, graph.weight, x,
                                                            x_rows, out_rows, num_layers)


KERNELS = [ifru_ext.propagate_rows, composite]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("num_layers", [0, 1, 2, 3])
def test_propagate_rows_matches_the_dense_reference(kernel, num_layers):
    graph, x, x_rows, table, out_rows = rows_problem(num_layers)
    expected = propagate_reference(graph, table, num_layers)
    for rows_in, rows_out, want in ((x_rows, out_rows, expected[out_rows]), (x_rows, None, expected),
                                    (None, out_rows, None), (None, None, None)):
        given = x if rows_in is not None else table
        want = want if rows_in is not None else (expected if rows_out is None else expected[rows_out])
        out = kernel(given, graph, num_layers, x_rows=rows_in, out_rows=rows_out)
        assert out.shape == want.shape and out.dtype == torch.float64
        torch.testing.assert_close(out, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [16, 32, 48, 64, 65])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_propagate_rows_gives_propagates_bits_on_any_thread_count(d, dtype, num_layers):
    # The rows it sums are summed as propagate sums them (a zero row of X skipped, not added), so the
    # request's answers do not change; 16–64 take the compile-time widths, 65 the general one.
    graph, x, x_rows, table, _ = rows_problem(d, nodes=500, nnz=8000, d=d, dtype=dtype)
    graph = type(graph)(graph.rowptr, graph.col, graph.weight / 8, 500)
    out_rows = torch.randperm(500, generator=torch.Generator().manual_seed(d))[:300].sort().values
    whole = ifru_ext.propagate(table, graph, num_layers)
    threads = torch.get_num_threads()
    try:
        for count in (1, max(2, threads)):
            torch.set_num_threads(count)
            assert torch.equal(ifru_ext.propagate_rows(x, graph, num_layers, x_rows=x_rows, out_rows=out_rows),
                               whole[out_rows])
            assert torch.equal(ifru_ext.propagate_rows(table, graph, num_layers), whole)
    finally:
        torch.set_num_threads(threads)


def test_propagate_rows_without_rows_or_width():
    graph, x, x_rows, table, out_rows = rows_problem(3)
    none = out_rows[:0]
    for kernel in KERNELS:
        assert kernel(x, graph, 2, x_rows=x_rows, out_rows=none).shape == (0, 5)
        empty = kernel(x[:0], graph, 2, x_rows=x_rows[:0], out_rows=out_rows)  # X = 0
        assert empty.shape == (out_rows.numel(), 5) and bool((empty == 0).all())
        assert kernel(table[:, :0], graph, 1, out_rows=out_rows).shape == (out_rows.numel(), 0)


def test_propagate_rows_opcheck_and_no_backward():
    graph, x, x_rows, _, out_rows = rows_problem(4, nodes=12, nnz=40, d=3)
    args = (graph.rowptr, graph.col, graph.weight, x, x_rows, out_rows, 2)
    torch.library.opcheck(torch.ops.ifru.propagate_rows.default, args)
    whole = torch.randn(12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    torch.library.opcheck(torch.ops.ifru.propagate_rows.default, (*args[:3], whole, None, None, 1))
    x = x.clone().requires_grad_()
    torch.library.opcheck(torch.ops.ifru.propagate_rows.default, (*args[:3], x, *args[4:]),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    with pytest.raises(NotImplementedError, match=r"ifru::propagate_rows: not differentiable .* with respect to x"):
        ifru_ext.propagate_rows(x, graph, 2, x_rows=x_rows).sum().backward()


def _bad(graph, x, x_rows, out_rows, change):
    args = dict(rowptr=graph.rowptr, col=graph.col, weight=graph.weight, x=x, x_rows=x_rows, out_rows=out_rows,
                num_layers=2)
    args.update(change)
    return tuple(args.values())


@pytest.mark.parametrize("change, error, message", [
    (lambda g, x, r, o: dict(x_rows=r.flip(0)), ValueError,
     r"ifru::propagate_rows: x_rows must be strictly ascending \(distinct rows\), but x_rows\[0\] = \d+ >= x_rows\[1\]"),
    (lambda g, x, r, o: dict(x_rows=torch.cat((r[:1], r[:-1]))), ValueError,
     r"ifru::propagate_rows: x_rows must be strictly ascending"),
    (lambda g, x, r, o: dict(x_rows=r[1:]), RuntimeError,
     r"ifru::propagate_rows: x_rows must have one entry per row of x \(30\), got 29"),
    (lambda g, x, r, o: dict(x_rows=r + 60), ValueError, r"ifru::propagate_rows: x_rows\[\d+\] = \d+ is out of range"),
    (lambda g, x, r, o: dict(out_rows=o - 100), ValueError, r"ifru::propagate_rows: out_rows\[0\] = -\d+ is out of range"),
    (lambda g, x, r, o: dict(out_rows=o.int()), RuntimeError, r"ifru::propagate_rows: out_rows must be int64"),
    (lambda g, x, r, o: dict(x_rows=None), RuntimeError,
     r"ifru::propagate_rows: x must have N = rowptr.numel\(\) - 1 = 60 rows without x_rows, got 30"),
    (lambda g, x, r, o: dict(x=x.float()), RuntimeError, r"ifru::propagate_rows: weight must have dtype Float"),
    (lambda g, x, r, o: dict(x=x[0]), RuntimeError, r"ifru::propagate_rows: x must be 2-D"),
    (lambda g, x, r, o: dict(num_layers=-1), ValueError, r"ifru::propagate_rows: num_layers must lie in"),
    (lambda g, x, r, o: dict(col=g.col + 60), ValueError, r"ifru::propagate_rows: col\[0\] = \d+ is out of range"),
    (lambda g, x, r, o: dict(rowptr=g.rowptr[:0]), RuntimeError, r"ifru::propagate_rows: rowptr must hold N \+ 1 >= 1"),
])
def test_propagate_rows_bad_arguments(change, error, message):
    graph, x, x_rows, _, out_rows = rows_problem(5)
    bad = _bad(graph, x, x_rows, out_rows, change(graph, x, x_rows, out_rows))
    with pytest.raises(error, match=message):
        torch.ops.ifru.propagate_rows(*bad)
    with pytest.raises(error, match=message):  # the composite runs the same checks
        torch.ops.ifru.propagate_rows.default.redispatch(COMPOSITE, *bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_propagate_rows_names_a_non_finite_input_that_reaches_the_result(bad):
    # The CPU kernel reads x and weight again only when its result is not finite; the composite
    # checks them first. Either way the error names the input.
    graph, x, x_rows, _, out_rows = rows_problem(8)
    listed = torch.cat((out_rows, x_rows[3:4]))  # X[x_rows[3]] enters its own row of the result
    entry = int(graph.rowptr[int(x_rows[5])])  # an entry of a listed row (rows_problem's odd rows are empty)
    listed = torch.cat((listed, x_rows[5:6]))
    assert int(graph.rowptr[int(x_rows[5]) + 1]) > entry
    for kernel in KERNELS:
        with pytest.raises(ValueError, match="ifru::propagate_rows: x contains NaN or infinity"):
            kernel(x.index_fill(0, torch.tensor([3]), bad), graph, 2, x_rows=x_rows, out_rows=listed)
        weight = graph.weight.index_fill(0, torch.tensor([entry]), bad)
        with pytest.raises(ValueError, match="ifru::propagate_rows: weight contains NaN or infinity"):
            kernel(x, type(graph)(graph.rowptr, graph.col, weight, 60), 1, x_rows=x_rows, out_rows=listed)


def test_propagate_rows_reads_no_value_it_does_not_need_on_cpu():
    # A NaN in a row of x that no listed row reads cannot spoil the result: the CPU kernel returns
    # it (the values are read again only for a non-finite result); the composite checks x whole.
    graph, x, x_rows, table, _ = rows_problem(9)
    spoiled = x.index_fill(0, torch.tensor([0]), math.nan)
    others = x_rows[1:]
    out = ifru_ext.propagate_rows(spoiled, graph, 0, x_rows=x_rows, out_rows=others)
    assert torch.equal(out, table[others])
    with pytest.raises(ValueError, match="ifru::propagate_rows: x contains NaN or infinity"):
        composite(spoiled, graph, 0, x_rows=x_rows, out_rows=others)


def test_propagate_rows_overflow_is_named():
    graph, x, x_rows, _, out_rows = rows_problem(6)
    loud = type(graph)(graph.rowptr, graph.col, graph.weight * 1e10, 60)
    with pytest.raises(ValueError, match=r"ifru::propagate_rows: the result overflowed"):
        ifru_ext.propagate_rows(x * 1e300, loud, 3, x_rows=x_rows, out_rows=out_rows)


def test_propagate_rows_fake_kernel_checks_devices():
    graph, x, x_rows, _, out_rows = rows_problem(7)
    meta = lambda t: t.to("meta")  # noqa: E731
    with pytest.raises(RuntimeError, match="ifru::propagate_rows: x_rows is on cpu but the op runs on meta"):
        torch.ops.ifru.propagate_rows(meta(graph.rowptr), meta(graph.col), meta(graph.weight), meta(x), x_rows,
                                      meta(out_rows), 2)
    out = torch.ops.ifru.propagate_rows(meta(graph.rowptr), meta(graph.col), meta(graph.weight), meta(x),
                                        meta(x_rows), None, 2)
    assert out.shape == (60, 5) and out.device.type == "meta"
