"""decompose.py OUT SIZE SCENARIO FRACTION SEED: a diagnostic, not an estimator.

Where does the test-AUC gap of the `planted:SIZE` genuine-row and whole-user cells come from? For one draw
of an `ifru fidelity` run cached in OUT (MF, BCE), the test AUC of Original, Retrain, the noise-floor
Retrain and the uncalibrated `ifru` answer, on all test rows, on the test rows of users with no removed
training row ("untouched") and on the rest; then the answer with its step on the rows it moved
(orphans excluded) scaled by 1.5, 2, 3 and 4, with its forget completeness; and the table distances
‖R − O‖, ‖R₂ − R‖, ‖O‖ and ‖answer − O‖."""
import copy, dataclasses, sys, torch
torch.set_num_threads(2)
from ifru_ext.data import load_dataset
from ifru_ext.evaluation import forget_loss
from ifru_ext.experiments.fidelity import request_rows
from ifru_ext.metrics import auc
from ifru_ext.models.checkpoint import load_checkpoint
from ifru_ext.unlearning import UnlearnConfig, unlearn
from ifru_ext.unlearning.response import orphaned_rows

out, size, scenario, fraction, seed = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
clean = load_dataset(f"planted:{size}")
data = dataclasses.replace(clean, removal=request_rows(clean, scenario, fraction, seed))
cell = f"{scenario}-{fraction:g}-{seed}"
original = load_checkpoint(f"{out}/original-clean.pt", clean).model
retrain = load_checkpoint(f"{out}/retrain-{cell}.pt", data).model
retrain2 = load_checkpoint(f"{out}/retrain2-{cell}.pt", data).model
rows, test = data.removal, data.test
touched = torch.zeros(data.num_users, dtype=torch.bool)
touched[data.train.users[rows]] = True
untouched = ~touched[test.users]
lo, lr = forget_loss(original, data, rows), forget_loss(retrain, data, rows)


def line(model, label):
    s = model.score_all(test.users, test.items)
    print(f"  {label:14s} test AUC {auc(s, test.labels):.4f}, untouched users {auc(s[untouched], test.labels[untouched]):.4f}, "
          f"touched users {auc(s[~untouched], test.labels[~untouched]):.4f}, forget completeness "
          f"{(forget_loss(model, data, rows) - lo) / (lr - lo):.3f}")


print(f"planted:{size} {cell}: {int(untouched.sum())} of {len(test)} test rows are untouched users'")
for model, label in ((original, "Original"), (retrain, "Retrain"), (retrain2, "Retrain₂")):
    line(model, label)
answer = unlearn(original, data, rows, UnlearnConfig(calibrated=False)).model
moved = ~orphaned_rows(data, rows, torch.device("cpu"))
base, step = original.embedding.detach(), (answer.embedding.detach() - original.embedding.detach())
for scale in (1.0, 1.5, 2.0, 3.0, 4.0):
    scaled = copy.deepcopy(answer)
    with torch.no_grad():
        scaled.embedding[moved] = base[moved] + scale * step[moved]
    line(scaled, f"answer ×{scale:g}")
norm = lambda t: float(t.detach().norm())
print(f"  ‖R − O‖ {norm(retrain.embedding - base):.0f}, ‖R₂ − R‖ {norm(retrain2.embedding - retrain.embedding):.0f}, "
      f"‖O‖ {norm(base):.0f}, ‖answer − O‖ {norm(step):.0f}")
