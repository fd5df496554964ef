"""Anatomy of a poisoned-row fidelity cell: where the answer's forget loss falls short of Retrain's.

Usage (from the repository root, after the cell's `ifru fidelity` run has cached its models in OUT):
    python reports/fidelity-poison-tail/anatomy.py OUT FRACTION SCALE SOURCE {amazon|movielens|preset} [METHOD[=SCALE] ...]

Reads OUT/original-poison-FRACTION-1.pt, OUT/retrain-poison-FRACTION-1.pt and
OUT/retrain2-poison-FRACTION-1.pt (seed 1, FRACTION of the rows flipped) of the dataset SOURCE (a
ratings file read as the Amazon- or MovieLens-shaped files are, or a preset such as bookcrossing),
answers the request with `ifru` at the calibration scale SCALE
(the report's "Originals calibrated for `ifru` (scale ...)") and with each METHOD, calibrated for
it at its SCALE when one is given (else as the registry answers an uncalibrated Original), and prints for each model: the forget loss's mean and quantiles over the removed rows,
the share of Retrain's mean carried by rows whose Retrain loss exceeds 10 and by rows whose user keeps
rows of one label only (and each model's completeness on either group), the answer's logit
change against Retrain's (regression slope through 0, correlation, and by band of |Retrain's
change|), which rows carry a Retrain loss above 10 (their labels, items, users and logits), the largest-loss
rows with their endpoints' training degrees, the embedding norms of those rows'
users and their Adam second moments at the end of the Original's and the Retrains' runs, and the
test logits' growth (slope of the model's test logits on the Original's).
"""
from __future__ import annotations

import dataclasses
import sys

import torch

from ifru_ext.data import load_dataset
from ifru_ext.models import load_checkpoint
from ifru_ext.unlearning import METHODS, unlearn

FILES = {"amazon": dict(header=True, columns=["user", "item", "rating", "timestamp"], threshold=3, kcore=5),
         "movielens": dict(sep="::", columns=["user", "item", "rating", "timestamp"], threshold=3, kcore=5),
         "preset": {}}
# A removed row whose Retrain loss exceeds this is the tail (a logit beyond ~10 against its trained label).
TAIL_LOSS = 10.0
bce = torch.nn.functional.binary_cross_entropy_with_logits


def logits(model, rows):
    with torch.no_grad():
        return model.score_all(rows.users, rows.items).double()


def calibrated(model, method: str, scale: float | None):
    """``model`` with its trace's calibration set to ``scale`` for ``method``'s estimator (None: none)."""
    model.trace = dataclasses.replace(model.trace, calibration=scale,
                                      calibrated_for=None if scale is None else METHODS[method].config.estimator)
    return model


def main(out: str, fraction: str, scale: float, source: str, kind: str, *methods: str) -> None:
    dataset = load_dataset(source, attack_fraction=float(fraction), attack_seed=1, **FILES[kind])
    removal = dataset.removal
    original = load_checkpoint(f"{out}/original-poison-{fraction}-1.pt", dataset).model
    models = {"original": original,
              "retrain": load_checkpoint(f"{out}/retrain-poison-{fraction}-1.pt", dataset).model,
              "retrain-2": load_checkpoint(f"{out}/retrain2-poison-{fraction}-1.pt", dataset).model,
              "ifru": unlearn(calibrated(original, "ifru", scale), dataset, removal).model}
    for spec in methods:
        method, _, method_scale = spec.partition("=")
        model = calibrated(original, method, float(method_scale) if method_scale else None)
        models[method] = unlearn(model, dataset, removal, method=method).model
    removed = dataset.train.select(removal)
    labels = removed.labels.double()
    users = torch.bincount(dataset.train.users, minlength=dataset.num_users)[removed.users]
    items = torch.bincount(dataset.train.items, minlength=dataset.num_items)[removed.items]
    x = {name: logits(model, removed) for name, model in models.items()}
    test = {name: logits(model, dataset.test) for name, model in models.items()}
    loss = {name: bce(value, labels, reduction="none") for name, value in x.items()}
    print(f"{removal.numel()} removed rows, trained label 1 on {float(labels.mean()):.3f} of them; SCALE {scale}")
    quantiles = torch.tensor([0.25, 0.5, 0.75, 0.9, 0.99], dtype=torch.double)
    change_r = x["retrain"] - x["original"]
    bands = torch.quantile(change_r.abs(), torch.tensor([0.5, 0.9, 0.99], dtype=torch.double)).tolist()
    edges = [0.0, *bands, float("inf")]
    print("model | forget loss | quantiles 25/50/75/90/99% | slope on Retrain's change (corr) | "
          "mean change in |ΔR| bands (50/40/9/1% of rows) | test-logit slope on the Original's")
    for name in models:
        change = x[name] - x["original"]
        slope = float((change * change_r).sum() / (change_r * change_r).sum())
        corr = float(torch.corrcoef(torch.stack((change, change_r)))[0, 1]) if name != "original" else float("nan")
        band = [float(change[(change_r.abs() >= lo) & (change_r.abs() < hi)].mean()) for lo, hi in zip(edges, edges[1:])]
        growth = float((test["original"] * test[name]).sum() / (test["original"] ** 2).sum())
        print(f"{name} | {float(loss[name].mean()):.3f} | {' / '.join(f'{v:.2f}' for v in torch.quantile(loss[name], quantiles).tolist())}"
              f" | {slope:.2f} ({corr:.2f}) | {' / '.join(f'{v:+.2f}' for v in band)} | {growth:.3f}")
    tail = loss["retrain"] > TAIL_LOSS
    print(f"rows with Retrain loss > {TAIL_LOSS:g}: {int(tail.sum())} ({float(tail.double().mean()):.1%} of the rows), "
          f"{float(loss['retrain'][tail].sum() / loss['retrain'].sum()):.1%} of Retrain's mean; their mean loss: "
          + ", ".join(f"{name} {float(loss[name][tail].mean()):.2f}" for name in models))
    print("without those rows, forget completeness: " + ", ".join(
        f"{name} {float((loss[name][~tail].mean() - loss['original'][~tail].mean()) / (loss['retrain'][~tail].mean() - loss['original'][~tail].mean())):.2f}"
        for name in models if name != "original"))
    # A removed row whose user keeps rows of one label only (or none): nothing in that user's remaining
    # loss opposes its logits, so Retrain's are free to run on (a BCE loss with no minimiser along them).
    kept = torch.ones(len(dataset.train), dtype=torch.bool)
    kept[removal] = False
    kept_labels = [torch.bincount(dataset.train.users[kept & (dataset.train.labels == label)], minlength=dataset.num_users)
                   for label in (0, 1)]
    one_sided = (kept_labels[0][removed.users] == 0) | (kept_labels[1][removed.users] == 0)
    for name_of, group in (("one-sided", one_sided), ("two-sided", ~one_sided)):
        if not bool(group.any()):
            continue
        change_r_group = loss["retrain"][group].mean() - loss["original"][group].mean()
        print(f"{name_of} users' rows (their user keeps rows of {'one label only' if name_of == 'one-sided' else 'both labels'}): "
              f"{int(group.sum())} ({float(group.double().mean()):.1%} of the rows), "
              f"{float(loss['retrain'][group].sum() / loss['retrain'].sum()):.1%} of Retrain's mean, "
              f"{float(tail[group].double().mean()):.1%} of them in the tail ({float(group[tail].double().mean()):.1%} of the tail); "
              "mean loss: " + ", ".join(f"{name} {float(loss[name][group].mean()):.2f}" for name in models)
              + "; forget completeness: " + ", ".join(
                  f"{name} {float((loss[name][group].mean() - loss['original'][group].mean()) / change_r_group):.2f}"
                  for name in models if name not in ("original", "retrain")))
    if bool(tail.any()):
        rank = torch.argsort(torch.argsort(torch.bincount(dataset.train.items, minlength=dataset.num_items),
                                           descending=True))[removed.items]  # 0: the most popular item
        spread = torch.tensor([0.1, 0.5, 0.9], dtype=torch.double)
        print(f"the tail: trained label 0 on {float((labels[tail] == 0).double().mean()):.1%}; "
              f"{int((rank[tail] < 4).sum())} rows on the 4 most popular items, {int((rank[tail] < 20).sum())} on the "
              f"top 20, {torch.unique(removed.items[tail]).numel()} items; median item degree {float(items[tail].double().median()):.0f} "
              f"(every removed row: {float(items.double().median()):.0f}), median user degree "
              f"{float(users[tail].double().median()):.0f} ({float(users.double().median()):.0f}); logits 10/50/90%: "
              + ", ".join(f"{name} " + " / ".join(f"{v:+.1f}" for v in torch.quantile(x[name][tail], spread).tolist())
                          for name in models))
    tail_users = torch.unique(removed.users[tail])
    print("their users' embedding norm |e_u| (median over the tail's users; over every user): " + ", ".join(
        f"{name} {float(model.embedding.detach()[tail_users].norm(dim=1).median()):.2f}"
        f" ({float(model.embedding.detach()[:dataset.num_users].norm(dim=1).median()):.2f})" for name, model in models.items()))
    print("their users' Adam step denominator sqrt(v) at the run's end (median over the tail's users; over every user): "
          + ", ".join(f"{name} {float(models[name].trace.second_moment.double()[tail_users].sqrt().median()):.2e}"
                      f" ({float(models[name].trace.second_moment.double()[:dataset.num_users].sqrt().median()):.2e})"
                      for name in ("original", "retrain", "retrain-2")))
    print("largest Retrain losses: label, user degree, item degree, logit of " + ", ".join(models))
    for k in torch.argsort(loss["retrain"], descending=True)[:10].tolist():
        print(f"  {int(labels[k])} {int(users[k]):5d} {int(items[k]):6d}  " + "  ".join(f"{float(x[n][k]):7.2f}" for n in models))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5], *sys.argv[6:])
