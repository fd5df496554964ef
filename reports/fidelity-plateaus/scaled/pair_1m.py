"""The 1M-shaped LightGCN poisoned 2% pair (seed 1) trained under LightGCN's `paper` preset (scaled patience):
`python pair_1m.py original` / `python pair_1m.py retrain` (one thread each; run from the repository root, with
runs/plateaus/1m.dat as reports/fidelity-plateaus/README.md draws it). Prints the returned and trained epochs,
then the test AUCs; the 2026-12-06 output is pair_1m.txt."""
import sys
import time

import torch

from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate
from ifru_ext.training import TrainConfig, train_new

torch.set_num_threads(1)
which = sys.argv[1]
data = load_dataset("runs/plateaus/1m.dat", sep="::", columns=("user", "item", "rating", "timestamp"), threshold=3,
                    kcore=5, attack_fraction=0.02, attack_seed=1)
config = TrainConfig.for_model("lightgcn")
start = time.time()
model, result = train_new("lightgcn", data, config, removal=None if which == "original" else data.removal)
print(which, "scaled", config.scaled_patience, "best", result.best_epoch, "trained", result.epochs,
      "%.0f s" % (time.time() - start), flush=True)
print(which, "test", evaluate(model, data, splits=("test",))["test"], flush=True)
