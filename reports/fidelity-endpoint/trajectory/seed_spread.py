"""seed_spread.py DATA MODEL: a probe, not part of the package (run from the repository root).

How far apart runs of one genuine-row cell are before any request is answered: the Original trained on the
full data at the matrix's seed and the next three, and the Retrains of two of the cell's draws (2% genuine
rows) at the seed and the next one (the cell's Retrain and Retrain-2), each run's test AUC_0. An answer
starts from the Original, so it carries the Original's draw; the cell's noise floor compares two Retrains.
DATA: ``amazon`` (the Amazon-shaped file of reports/fidelity-movielens-shaped/datasets.sh, generated under
runs/), or a ``load_dataset`` name such as ``planted:1e4`` or ``bookcrossing``; MODEL: mf or lightgcn."""
import dataclasses
import sys

import torch

from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.training import TrainConfig, train_new

torch.set_num_threads(2)
data, model_name = sys.argv[1], sys.argv[2]
if data == "amazon":
    clean = load_dataset("runs/amazon-shaped/ratings.csv", header=True,
                         columns=("user", "item", "rating", "timestamp"), threshold=3, kcore=5)
else:
    clean = load_dataset(data)
base = TrainConfig.for_model(model_name)


def auc(model, dataset) -> float:
    return evaluate(model, dataset, splits=("test",))["test"]["auc_0"]


for offset in range(4):
    model, result = train_new(model_name, clean, dataclasses.replace(base, seed=base.seed + offset))
    print(f"full data, seed {base.seed}+{offset}: best epoch {result.best_epoch}, test AUC_0 {auc(model, clean):.4f}",
          flush=True)
for draw in (1, 2):
    rows = request_rows(clean, "genuine", 0.02, draw)
    for offset in range(2):
        model, result = train_new(model_name, clean, dataclasses.replace(base, seed=base.seed + offset), removal=rows)
        print(f"draw {draw} (2% genuine rows removed), seed {base.seed}+{offset}: best epoch {result.best_epoch}, "
              f"test AUC_0 {auc(model, dataclasses.replace(clean, removal=rows)):.4f}", flush=True)
