"""paired.py OUT MODEL SCENARIO EPOCHS DATASET [--movielens | --amazon] [FRACTION]: where each early-stopping rule
would stop an Original and its Retrain, replayed on their whole runs.

Trains the cell's Original (``poison``: on the attacked copy, FRACTION of the rows, default 0.02,
attack seed 1; ``genuine``: clean) and its Retrain (without the attack rows / the genuine cell's 2%
of the rows, seed 1) for EPOCHS
epochs each with no stopping (patience = EPOCHS; the model's default schedule otherwise), keeping
every epoch's training loss, validation scores and test AUC. Then it replays ``train``'s stopping
(patience 10 from the epoch where the loss decelerates, the best epoch returned) under four rules
for what counts as a miss:

- ``plain``: every epoch not strictly better than the best (``--no-wait-through-plateaus``);
- ``noise``: below the best by more than ``auc_noise`` (what ``--wait-through-plateaus`` did first);
- ``paired-1`` / ``paired-2``: below the best by more than 1 / 2 paired standard deviations of
  the difference between this epoch's AUC and the best epoch's, from both epochs' validation
  scores on the same rows (``metrics.paired_auc_sd``: DeLong's variance of the difference);
  ``paired-1`` is ``--wait-through-plateaus`` now.

Writes OUT (JSON: each run's per-epoch loss / validation AUC / test AUC and, per rule, the best
and the stopping epoch) and prints a table. ``--movielens`` reads DATASET as a ``ratings.dat``
(``::``, threshold 3, 5-core), ``--amazon`` as a headed reviews CSV (threshold 3, 5-core); FRACTION needs one of the two before it."""
import json
import sys

import torch

from ifru_ext.data import load_dataset
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.metrics import auc, auc_noise, auc_placements, paired_auc_sd
from ifru_ext.models import build_model
from ifru_ext.training import EarlyStopping, TrainConfig, model_arguments, train

PATIENCE = 10
RULES = ("plain", "noise", "paired-1", "paired-2")


def replay(run: dict, scores: list[torch.Tensor], labels: torch.Tensor, rule: str, noise: float) -> tuple[int, int | None]:
    """(best epoch, stopping epoch or None when the run would go on past its last epoch) of
    ``train``'s stopping under ``rule``: its ``EarlyStopping``, started afresh where the loss
    turns (training/train.py ``offer``), with the rule's tolerance given to each epoch."""
    losses, aucs = run["loss"], run["valid_auc"]
    deviations = {"paired-1": 1.0, "paired-2": 2.0}.get(rule)
    placements = (lambda epoch: auc_placements(scores[epoch - 1], labels)) if deviations else (lambda epoch: None)
    stopper, decelerating = EarlyStopping(PATIENCE), False
    for epoch in range(1, len(losses) + 1):
        if not decelerating and epoch >= 3:
            before, last, this = losses[epoch - 3: epoch]
            if last - this <= before - last:  # the loss turned at epoch - 1: counting starts there
                decelerating, stopper = True, EarlyStopping(PATIENCE)
                stopper.update(epoch - 1, aucs[epoch - 2], lambda: placements(epoch - 1))
        current = placements(epoch) if decelerating else None
        tolerance = None
        if decelerating and rule != "plain":
            tolerance = noise if deviations is None else deviations * paired_auc_sd(current, stopper.best_state)
        stopper.update(epoch, aucs[epoch - 1], lambda: current, tolerance=tolerance)
        if decelerating and stopper.should_stop(epoch):
            return stopper.best_step, epoch
    return stopper.best_step, None


def whole_run(name: str, dataset, config: TrainConfig, removal) -> tuple[dict, list[torch.Tensor]]:
    """Train with no stopping, keeping each epoch's validation scores and test AUC."""
    model = build_model(name, dataset.num_users, dataset.num_items, seed=config.seed, **model_arguments(name))
    scores, test_aucs = [], []
    score_all = model.score_all

    def recording(users, items):
        result = score_all(users, items)
        if users is dataset.valid.users:  # the per-epoch validation scoring
            scores.append(result.detach().to(torch.float32).clone())
            test_aucs.append(auc(score_all(dataset.test.users, dataset.test.items), dataset.test.labels))
        return result

    model.score_all = recording
    result = train(model, dataset, config, removal=removal, progress=False)
    run = {"loss": [round(r["loss"], 7) for r in result.history],
           "valid_auc": [r["valid_auc"] for r in result.history], "test_auc": test_aucs}
    return run, scores


def main() -> None:
    out, name, scenario, epochs, path = sys.argv[1:6]
    options = {"--movielens": dict(sep="::", columns=("user", "item", "rating", "timestamp"), threshold=3, kcore=5),
               "--amazon": dict(header=True, columns=("user", "item", "rating", "timestamp"), threshold=3, kcore=5),
               }.get(sys.argv[6] if len(sys.argv) > 6 else None, {})
    epochs, fraction = int(epochs), float(sys.argv[7]) if len(sys.argv) > 7 else 0.02
    if scenario == "poison":
        dataset = load_dataset(path, attack_fraction=fraction, attack_seed=1, **options)
        original_removal, removal = None, dataset.removal
    else:
        dataset = load_dataset(path, attack_fraction=0.0, **options)
        original_removal, removal = None, request_rows(dataset, scenario, 0.02, 1)
    config = TrainConfig.for_model(name, max_epochs=epochs, patience=epochs)
    noise = auc_noise(dataset.valid.labels)
    report = {"auc_noise": noise, "epochs": epochs, "runs": {}}
    for run_name, run_removal in (("original", original_removal), ("retrain", removal)):
        run, scores = whole_run(name, dataset, config, run_removal)
        run["rules"] = {rule: replay(run, scores, dataset.valid.labels, rule, noise) for rule in RULES}
        report["runs"][run_name] = run
        del scores
    with open(out, "w") as file:
        json.dump(report, file, indent=0)
    print(f"{path} {name} {scenario}: auc_noise {noise:.5f}")
    for rule in RULES:
        cells = []
        for run_name, run in report["runs"].items():
            best, stop = run["rules"][rule]
            cells.append(f"{run_name} best {best} stop {stop if stop else f'>{epochs}'} "
                         f"valid {run['valid_auc'][best - 1]:.4f} test {run['test_auc'][best - 1]:.4f}")
        print(f"  {rule:9s} " + " | ".join(cells))


if __name__ == "__main__":
    main()
