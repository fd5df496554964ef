"""Retrain of a poisoned cell returned at given epochs (early stopping off): its forget loss and test AUC
along its own run. Usage: retrain_epochs.py MODEL FRACTION SEED EPOCHS (comma-separated)"""
import sys, dataclasses, torch
from ifru_ext.data import load_dataset
from ifru_ext.training import TrainConfig, train_new
from ifru_ext.training import early_stopping as ES
from ifru_ext.evaluation import evaluate, forget_loss
model_name, frac, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
epochs = [int(e) for e in sys.argv[4].split(",")]
ds = load_dataset("bookcrossing", attack_fraction=frac, attack_seed=seed)
removal = ds.removal
config = TrainConfig.for_model(model_name)
orig_update = ES.EarlyStopping.update
ES.EarlyStopping.update = lambda self, step, score, state, accept=False, tolerance=None: orig_update(self, step, score, state, True, tolerance)
for E in epochs:
    m, r = train_new(model_name, ds, dataclasses.replace(config, max_epochs=E, patience=10**6), removal=removal)
    e = evaluate(m, ds, splits=("test",))
    print(E, "test", round(e["test"]["auc_0"], 4), "forget", round(forget_loss(m, ds, removal), 4), flush=True)
