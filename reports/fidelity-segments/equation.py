"""Two probes of the nonlinear segment equation (``corrections`` = k > 0), run through ``ifru fidelity``.

Usage (from the repository root; the rest of the arguments are ``ifru fidelity``'s):
    python reports/fidelity-segments/equation.py descent|plain|floor fidelity ...
or through run.sh: ``IFRU="python reports/fidelity-segments/equation.py floor" run.sh``.

- ``descent``: the product's Newton corrections (``response._corrected``), but a step is kept by the
  segment's convex objective instead of by a smaller residual norm. The equation
  ``Λ' δ + (∇L_{-r}(E + δ) − ∇L_{-r}(E))/n = rhs`` is the stationarity condition of
  ``φ(δ) = ½ δᵀΛ'δ + (L_{-r}(E + δ) − ∇L_{-r}(E)·δ)/n − rhs·δ`` (convex: Λ' > 0), whose slope along a
  step ``p`` is ``−p·r``; a step is kept while ``φ`` still falls at its end (``p·r(δ + αp) ≥ 0``),
  else shortened by the secant of that slope. This asks whether the equation's own answer (solved
  further) or the residual test's early stop is what overshoots.
- ``plain`` / ``floor``: each segment written in velocity form,
  ``r(δ) = Λ'(δ) (target − δ) − F(δ)`` with ``F(δ) = ∇L_{-r}(E + δ)/n + λ(E + δ)`` Retrain's mean
  gradient at its estimated table and ``target = δ_{s−1} + (g/n + ∇L_{-r}(E)/n + λE)/Λ`` the
  Original's step undone (the product's equation when ``Λ'`` is constant), solved by ``k + 1``
  Newton steps from ``δ_{s−1}`` (``(G + Λ' + λ) p = r``, ``Λ'`` lagged, kept where ``‖r‖`` falls).
  ``plain``: ``Λ'`` from the product's ``v̂' = v̂ (1 − ρ) n/m``. ``floor``: ``v̂' = max(v̂ (1 − ρ) n/m,
  F(δ)²)`` — Adam's second moment is at least its mean gradient squared, so Retrain's own step over a
  segment is at most ``η n_s`` per coordinate (Adam's reach) however far the equation would send it.

Patches the module's functions in this process only; MF and LightGCN, BCE.
"""
from __future__ import annotations

import sys

import torch

import ifru_ext.unlearning.influence as influence
import ifru_ext.unlearning.response as response
from ifru_ext.unlearning.base import SolveReport
from ifru_ext.unlearning.response import _BACKTRACKS, training_damping

MODE = {"floor": False}


def descent_corrected(plan, at, segment, rhs, diagonal, delta, corrections, tol, max_iter, lap):
    """``response._corrected`` with steps kept while the segment's objective falls along them."""
    remaining = plan.remaining_gradient(at, segment)

    def residual_at(candidate):
        moved = at.index_copy(0, plan.rows, at.index_select(0, plan.rows) + candidate)
        return moved, rhs - diagonal * candidate - (plan.remaining_gradient(moved, segment) - remaining) * plan.scale

    moved, residual = residual_at(delta)
    norm, iterations, report, accuracy = residual.norm(), 0, None, tol * float(rhs.norm())
    for _ in range(corrections):
        if float(norm) <= accuracy:
            break
        correction, report = plan.system(moved, diagonal, segment).solve(residual, accuracy / float(norm), max_iter)
        iterations += report.iterations
        start_slope, alpha = float((correction * residual).sum()), 1.0  # −φ'(0) > 0: a descent direction
        for _ in range(_BACKTRACKS + 2):
            trial_moved, trial = residual_at(delta + alpha * correction)
            slope = float((correction * trial).sum())  # −φ'(α)
            if slope >= 0:
                break
            alpha *= start_slope / (start_slope - slope)  # the secant's zero of φ' on (0, α)
        else:
            break
        delta, moved, residual = delta + alpha * correction, trial_moved, trial
        norm = residual.norm()
    return delta, report, iterations


def velocity_response(emb, trace, plan, removed, gradient, tol, max_iter, lap, select=None, corrections=0,
                      validation=None):
    """The response with each segment in velocity form (``plain`` / ``floor``, module docstring)."""
    n = round(1.0 / plan.scale)
    delta, iterations, norm = None, 0, torch.tensor(0.0)
    for number, (steps, table, second_moment) in enumerate(trace.segments(), start=1):
        segment = number - 1
        at = plan.local(emb if table is None else table)
        rows = at.index_select(0, plan.rows)
        moment = plan.moving(second_moment)
        damping = training_damping(trace, moment, steps)
        system = plan.system(at, segment=segment)
        base = moment * (1 - plan.removed_share(at, system, segment)) * (n / (n - removed))
        remaining = plan.remaining_gradient(at, segment, system) * plan.scale + trace.l2 * rows
        previous = torch.zeros_like(rows) if delta is None else delta
        target = previous + (gradient(at, segment) * plan.scale + remaining) / damping

        def evaluate(candidate):
            moved = at.index_copy(0, plan.rows, rows + candidate)
            force = plan.remaining_gradient(moved, segment) * plan.scale + trace.l2 * (rows + candidate)
            moment_retrain = torch.maximum(base, force.square()) if MODE["floor"] else base
            retrain_damping = training_damping(trace, moment_retrain, steps)
            return moved, retrain_damping, retrain_damping * (target - candidate) - force

        delta = previous
        moved, retrain_damping, residual = evaluate(delta)
        norm = residual.norm()
        for _ in range(corrections + 1):
            step, report = plan.system(moved, retrain_damping + trace.l2, segment).solve(residual, tol, max_iter)
            iterations += report.iterations
            for _ in range(_BACKTRACKS + 1):
                trial = evaluate(delta + step)
                if trial[2].norm() < norm:
                    delta, (moved, retrain_damping, residual) = delta + step, trial
                    norm = residual.norm()
                    break
                step = step / 2
            else:
                break
    return delta, SolveReport(iterations, float(norm), "converged")


def main(mode: str, *argv: str) -> int:
    if mode == "descent":
        response._corrected = descent_corrected
    elif mode in ("plain", "floor"):
        MODE["floor"] = mode == "floor"
        influence.training_response = velocity_response
    else:
        raise SystemExit(f"mode must be descent, plain or floor, got {mode!r}")
    from ifru_ext.cli import main as cli
    return cli(list(argv))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
