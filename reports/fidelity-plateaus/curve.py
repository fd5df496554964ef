"""curve.py RATINGS EPOCHS OUT: LightGCN's whole validation curve on a MovieLens-shaped ``ratings.dat``
(no early stopping: patience = EPOCHS) for the clean Original and for its Retrain without the genuine
cell's rows (``request_rows(dataset, "genuine", 0.02, 1)``), written to OUT as JSON with the
validation AUC's noise (``auc_noise``) that ``--wait-through-plateaus`` tolerates."""
import json
import sys

from ifru_ext.data import load_dataset
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.metrics import auc_noise
from ifru_ext.training import TrainConfig, model_arguments, train_new

ratings, epochs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
dataset = load_dataset(ratings, sep="::", columns=("user", "item", "rating", "timestamp"), threshold=3, kcore=5)
config = TrainConfig.for_model("lightgcn", max_epochs=epochs, patience=epochs, log_every=50)
curves = {"auc_noise": auc_noise(dataset.valid.labels)}
for name, removal in (("original", None), ("retrain", request_rows(dataset, "genuine", 0.02, 1))):
    _, result = train_new("lightgcn", dataset, config, removal, **model_arguments("lightgcn"))
    curves[name] = [{"epoch": r["epoch"], "loss": round(r["loss"], 6), "valid_auc": round(r["valid_auc"], 6)}
                    for r in result.history]
with open(out, "w") as file:
    json.dump(curves, file, indent=0)
