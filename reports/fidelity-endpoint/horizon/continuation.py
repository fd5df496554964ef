"""continuation.py OUT SCENARIO FRACTION USER_FRACTION SEED [SUBSTEPS]: a diagnostic, not an estimator.

Does Retrain's longer run continue from the answer? Starting from the uncalibrated `ifru` answer to one
draw of an `ifru fidelity` run cached in OUT (MF, BCE), runs Retrain's training on: each epoch is
SUBSTEPS (default 8) explicit full-batch steps on the remaining data, each of 1/SUBSTEPS of an epoch of
Adam steps with the Original's v-hat scaled to the remaining rows (an Adam epoch moves a coordinate
by about lr·(steps per epoch)·mean gradient/(√v̂ + ε)), on the rows the answer moved. Prints the
validation and test AUC and the forget completeness after each of 8 epochs, next to Retrain's."""
import copy, dataclasses, sys, torch
torch.set_num_threads(2)
import torch.nn.functional as F
from ifru_ext.data import load_dataset
from ifru_ext.evaluation import evaluate, forget_loss
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.metrics import auc
from ifru_ext.models.checkpoint import load_checkpoint
from ifru_ext.unlearning import UnlearnConfig, unlearn

out, scenario, fraction, uf, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
substeps = int(sys.argv[6]) if len(sys.argv) > 6 else 8
if scenario == "poison":
    data = odata = load_dataset("bookcrossing", user_fraction=uf, attack_fraction=fraction, attack_seed=seed)
    opath = f"{out}/original-poison-{fraction:g}-{seed}.pt"
else:
    odata = load_dataset("bookcrossing", user_fraction=uf)
    data = dataclasses.replace(odata, removal=request_rows(odata, scenario, fraction, seed))
    opath = f"{out}/original-clean.pt"
original = load_checkpoint(opath, odata).model
retrain = load_checkpoint(f"{out}/retrain-{scenario}-{fraction:g}-{seed}.pt", data).model
rows, valid = data.removal, data.valid
lo, lr = forget_loss(original, data, rows), forget_loss(retrain, data, rows)


def scores(model, label):
    test_auc = evaluate(model, data, splits=("test",), metrics=("auc",))["test"]["auc_0"]
    print(f"  {label}: valid AUC {auc(model.score_all(valid.users, valid.items), valid.labels):.4f}, test AUC "
          f"{test_auc:.4f}, forget completeness {(forget_loss(model, data, rows) - lo) / (lr - lo):.3f}", flush=True)


print(f"{scenario} {fraction:g}, users {uf:g}, seed {seed}: Original returned at epoch {original.trace.best_epoch}, "
      f"Retrain at {retrain.trace.best_epoch}")
scores(retrain, "Retrain")
result = unlearn(original, data, rows, UnlearnConfig(calibrated=False))
answer, trace = copy.deepcopy(result.model), original.trace
n = len(data.train)
m = n - rows.numel()
moving = torch.zeros(data.num_users + data.num_items, dtype=torch.bool)
moving[result.changed_rows] = True
kept = torch.ones(n, dtype=torch.bool)
kept[rows] = False
users, items = data.train.users, data.train.items + data.num_users
terms = kept & (moving[users] | moving[items])
users, items, labels = users[terms], items[terms], data.train.labels[terms].float()
step = trace.lr / ((trace.second_moment.float() * n / m).sqrt() + trace.eps) * (trace.steps / trace.best_epoch / substeps)
step = step * moving[:, None]
table = answer.embedding.detach().clone()
scores(answer, "answer, epoch +0")
for epoch in range(1, 9):
    for _ in range(substeps):
        at = table.clone().requires_grad_(True)
        loss = F.binary_cross_entropy_with_logits((at[users] * at[items]).sum(1), labels, reduction="sum") / m
        loss = loss + 0.5 * trace.l2 * (at * at * moving[:, None]).sum()
        table = table - step * torch.autograd.grad(loss, at)[0]
    with torch.no_grad():
        answer.embedding.copy_(table)
    scores(answer, f"answer, epoch +{epoch}")
