"""amazon_seeds.py: a probe, not part of the package (run from the repository root, ~2 min).

How far apart MF runs on the Amazon-shaped file are before any request: the Original of the
genuine-row cells trained at the matrix's seed and the next three, on the full data, and the Retrains of
two of the cell's draws (2% genuine rows) at the seed and the next one (Retrain and Retrain-2), each
run's test AUC_0. The file: reports/fidelity-movielens-shaped/datasets.sh (runs/amazon-shaped/ratings.csv)."""
import dataclasses

import torch

from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.training import TrainConfig, train_new

torch.set_num_threads(2)
clean = load_dataset("runs/amazon-shaped/ratings.csv", header=True, columns=("user", "item", "rating", "timestamp"),
                     threshold=3, kcore=5)
base = TrainConfig.for_model("mf")


def auc(model, dataset) -> float:
    return evaluate(model, dataset, splits=("test",))["test"]["auc_0"]


for offset in range(4):
    model, result = train_new("mf", clean, dataclasses.replace(base, seed=base.seed + offset))
    print(f"full data, seed {base.seed}+{offset}: best epoch {result.best_epoch}, test AUC_0 {auc(model, clean):.4f}",
          flush=True)
for draw in (1, 2):
    rows = request_rows(clean, "genuine", 0.02, draw)
    for offset in range(2):
        model, result = train_new("mf", clean, dataclasses.replace(base, seed=base.seed + offset), removal=rows)
        print(f"draw {draw} (2% genuine rows removed), seed {base.seed}+{offset}: best epoch {result.best_epoch}, "
              f"test AUC_0 {auc(model, dataclasses.replace(clean, removal=rows)):.4f}", flush=True)
