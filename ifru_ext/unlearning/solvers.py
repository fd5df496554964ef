"""Iterative solvers for ``(H + δI) t = g`` given only ``v ↦ H v``.

Both run on the tensors' device. CG reads its step's scalars to the host every iteration
(``_cg_iterates``); Adam checks its residual every ``check_every`` iterations.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..training import EarlyStopping
from .base import SolveReport

Operator = Callable[[Tensor], Tensor]


def _relative_residual(apply: Operator, damping: float, t: Tensor, g: Tensor, g_norm: float) -> float:
    return float((apply(t) + damping * t - g).norm()) / g_norm


def conjugate_gradient(
    apply: Operator,
    g: Tensor,
    *,
    tol: float = 1e-6,
    max_iter: int = 200,
    damping: float = 0.0,
    preconditioner: Operator | None = None,
    select: Callable[[Tensor], float] | None = None,
    patience: int = 3,
    true_residual: bool = True,
) -> tuple[Tensor, SolveReport]:
    """(Preconditioned) conjugate gradients from t = 0, stopping on ‖r‖/‖g‖ < tol.

    ``H`` may be indefinite (the MF Hessian's user–item cross block carries ℓ'·I): when a
    search direction has pᵀ(H+δI)p ≤ 0 the iteration stops there (truncated CG) and
    reports ``negative_curvature``; raise ``damping`` δ to make the system definite.
    With ``select`` every iterate is scored and the best is returned, stopping after
    ``patience`` iterations without improvement (as ``adam_solve``). The reported residual is
    recomputed from ``t`` (one more product: the recursion's ``r`` drifts in floating point);
    ``true_residual=False`` reports the recursion's instead, for a solve whose answer only
    feeds another one.
    """
    if select is not None:
        return _select_best((t for t, _ in _cg_iterates(apply, g, damping, preconditioner, max_iter)), apply, g,
                            damping, select, patience)
    g_norm = float(g.norm())
    if g_norm == 0.0:
        return torch.zeros_like(g), SolveReport(0, 0.0, "zero_rhs")
    t, r_norm, iterations = torch.zeros_like(g), g_norm, 0
    for iterations, (t, r) in enumerate(_cg_iterates(apply, g, damping, preconditioner, max_iter), start=1):
        r_norm = float(r.norm())
        if r_norm < tol * g_norm:
            break
    converged = r_norm < tol * g_norm
    residual = _relative_residual(apply, damping, t, g, g_norm) if true_residual else r_norm / g_norm
    if not converged and iterations < max_iter:  # the iterates ended early: a direction of curvature ≤ 0
        status = "negative_curvature"
    else:
        status = "converged" if residual < tol else "max_iter"
    return t, SolveReport(iterations, residual, status)


def _cg_iterates(apply: Operator, g: Tensor, damping: float, preconditioner: Operator | None, max_iter: int):
    """Plain preconditioned CG iterates from t = 0: yields ``(t, r)`` after each step (both updated
    in place by the next one: copy to keep), and ends early, without yielding, at a direction
    with ``pᵀ(H+δI)p ≤ 0``.

    The three scalars of a step are read to the host: the loop decides on them at once, and
    each replaces several 0-d tensor ops (guards, masks), whose fixed cost, not the arithmetic,
    is a small request's solve time (BookCrossing MF, a one-user request: ~0.2 ms per step
    in 0-d ops against a ~20 µs product). On a GPU each read is a sync, the price of stopping
    at the converged step."""
    precondition = preconditioner or (lambda r: r)
    t = torch.zeros_like(g)
    r = g.clone()
    z = precondition(r)
    p = z.clone()
    rz = _inner(r, z)
    for _ in range(max_iter):
        hp = apply(p)
        if damping:
            hp = hp + damping * p
        php = _inner(p, hp)
        if not php > 0:  # NaN too
            return
        step = rz / php
        t.add_(p, alpha=step)
        r.add_(hp, alpha=-step)
        yield t, r
        z = precondition(r)
        rz_next = _inner(r, z)
        p.mul_(rz_next / rz if rz != 0 else 0.0).add_(z)  # in place: no fresh [a, d] buffer per step
        rz = rz_next


def _inner(a: Tensor, b: Tensor) -> float:
    """``Σ a ⊙ b`` read to the host, one fused pass (no ``a * b`` temporary)."""
    return float(torch.dot(a.reshape(-1), b.reshape(-1)))


def _select_best(iterates, apply: Operator, g: Tensor, damping: float, select: Callable[[Tensor], float],
                 patience: int) -> tuple[Tensor, SolveReport]:
    """The iterate with the highest ``select`` score (t = 0 included), stopping after ``patience`` misses."""
    stopper, iterations = EarlyStopping(patience), 0
    zero = torch.zeros_like(g)
    stopper.update(0, select(zero), lambda: zero)
    for iterations, t in enumerate(iterates, start=1):
        stopper.update(iterations, select(t), lambda: t.detach().clone())
        if stopper.should_stop(iterations):
            break
    best_t = stopper.best_state
    g_norm = float(g.norm())
    residual = _relative_residual(apply, damping, best_t, g, g_norm) if g_norm > 0 else 0.0
    return best_t, SolveReport(iterations, residual, "validation")


def adam_solve(
    apply: Operator,
    g: Tensor,
    *,
    lr: float,
    tol: float = 1e-6,
    max_iter: int = 200,
    damping: float = 0.0,
    check_every: int = 5,
    select: Callable[[Tensor], float] | None = None,
    patience: int = 3,
) -> tuple[Tensor, SolveReport]:
    """The paper's solver: Adam on ``½ tᵀ(H+δ)t − tᵀg`` from t = 0 (its gradient is ``(H+δ)t − g``).

    ``lr`` is large (1e3–5e4 in the paper) because H of a mean loss is tiny. Without
    ``select`` it stops on the relative residual like CG. With ``select`` (a score to
    maximise, e.g. validation AUC of the model the iterate gives) it evaluates every
    iterate, keeps the best and stops after ``patience`` iterations without improvement
    — the authors' released-code behaviour.
    """
    t = torch.zeros_like(g)
    g_norm = float(g.norm())
    if g_norm == 0.0:
        return t, SolveReport(0, 0.0, "zero_rhs")
    # Adam written out (torch.optim.Adam's default update: β = (0.9, 0.999), ε = 1e-8, bias
    # correction): constructing torch.optim.Adam imports torch._dynamo, ~2.7 s on first use,
    # which would dominate a request that otherwise takes about a second.
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    first, second = torch.zeros_like(g), torch.zeros_like(g)

    def iterates():
        nonlocal t
        for step in range(1, max_iter + 1):
            grad = apply(t) + damping * t - g
            first.mul_(beta1).add_(grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (second / (1 - beta2**step)).sqrt_().add_(eps)
            t = t - (lr / (1 - beta1**step)) * first / denom
            yield t

    if select is not None:
        return _select_best(iterates(), apply, g, damping, select, patience)
    iterations = 0
    for iterations, _ in enumerate(iterates(), start=1):
        if iterations % check_every == 0 and _relative_residual(apply, damping, t, g, g_norm) < tol:
            break
    residual = _relative_residual(apply, damping, t, g, g_norm)
    return t.detach(), SolveReport(iterations, residual, "converged" if residual < tol else "max_iter")


def block_jacobi(blocks: Tensor) -> Operator:
    """``r ↦ B_v⁻¹ r_v`` row by row for SPD blocks ``[N, d, d]`` (batched Cholesky, factored once)."""
    factor = torch.linalg.cholesky(blocks)

    def apply(r: Tensor) -> Tensor:
        return torch.cholesky_solve(r.unsqueeze(-1), factor).squeeze(-1)

    return apply
