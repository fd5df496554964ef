"""Diagnostic: today's default answered at each epoch of the run's tail, K = 0..10 past the returned one.

The default walks the tail and answers where its estimate of Retrain scores best on validation (Retrain's own
stopping rule applied to the estimate). This forces the answer to epoch K instead (the walk's validation score
replaced by K itself up to K) and prints forget and test-AUC completeness at each K, to see whether another
epoch of the tail would meet the poisoned-row AUC bar. Cells as moments_newton.py takes them (cached models of
the trajectory matrix), e.g. `python reports/fidelity-poison-tail/tail_epochs.py full:poison:0.08:1`.
"""
import sys

import torch

from ifru_ext.unlearning import influence, response, unlearn

from moments_newton import cell, completeness, references

torch.set_num_threads(1)
TRAJECTORY = 11  # training_response's positional argument `trajectory`


def forced(epochs_past: int):
    """``response.training_response`` whose walk scores epoch k as k up to ``epochs_past`` (then stops)."""
    def respond(*args, **kwargs):
        args = list(args)
        args[TRAJECTORY] = lambda k, delta: float(k) if k <= epochs_past else -1.0
        return response.training_response(*args, **kwargs)
    return respond


if __name__ == "__main__":
    for spec in sys.argv[1:]:
        _, data, original, retrain = cell(spec)
        reference = references(data, original, retrain)
        parts = []
        for epochs_past in range(11):
            influence.training_response = forced(epochs_past)
            answer = unlearn(original, data, data.removal)
            forget, auc, _ = completeness(data, reference, answer.model)
            parts.append(f"K={answer.epochs_past}: forget {forget:.2f} AUC {' / '.join(f'{a:.2f}' for a in auc.values())}")
            if answer.epochs_past < epochs_past:  # the tail is shorter
                break
        influence.training_response = response.training_response
        print(spec, "| " + " | ".join(parts), flush=True)
