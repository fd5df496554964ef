"""The cost of LightGCN's default at the matrix's slowest LightGCN cell: the 100K-shaped 8% poisoned cell's requests
(seeds 1-3, the models run.sh trained for lightgcn-ml100k-p8), own against original moments, in one process, the
faster of three calls each, uncalibrated (the scale does not change the work). Run alone:
python reports/fidelity-own-moments/cost_ml100k.py"""
import time, torch
from ifru_ext.data import load_dataset
from ifru_ext.models import load_checkpoint
from ifru_ext.unlearning import unlearn
torch.set_num_threads(2)
for seed in (1, 2, 3):
    data = load_dataset("runs/plateaus/100k.dat", sep="::", columns=("user", "item", "rating", "timestamp"),
                        threshold=3, kcore=5, attack_fraction=0.08, attack_seed=seed)
    model = load_checkpoint(f"runs/own-moments/lightgcn-ml100k-p8-o/original-poison-0.08-{seed}.pt", data).model
    best = {}
    for _ in range(3):
        for method in ("ifru-original-moments-uncalibrated", "ifru-own-moments-uncalibrated"):
            start = time.perf_counter(); unlearn(model, data, data.removal, method=method)
            best[method] = min(best.get(method, 1e9), time.perf_counter() - start)
    print(seed, {k: f"{v * 1e3:.0f} ms" for k, v in best.items()}, flush=True)
