"""tail_epochs.py OUT FRACTION USER_FRACTION SEED: a diagnostic, not an estimator.

Could the Original's own run past its best epoch tell where Retrain stops? Trains the Original of
one poisoned-row draw of an `ifru fidelity` run cached in OUT (MF, BCE, paper schedule) again,
keeping the table and Adam's v-hat after every epoch (the run is deterministic: the script checks
that it reproduces the cached Original), then answers the request with the uncalibrated `ifru`
as if the run had been returned at each epoch T + k it went on for (its trace cut there: steps,
v-hat, two evenly spread earlier snapshots). Retrain's table after epoch T + k is, linearised, the
Original's there plus that answer, so the answers' validation AUCs are Retrain's curve as this
reading sees it. Prints, per k, the Original's and the answer's validation AUC and the answer's
forget completeness, then Retrain's validation AUC and stopping epoch."""
import copy, dataclasses, sys, torch
torch.set_num_threads(2)
from ifru_ext.data import load_dataset
from ifru_ext.evaluation import forget_loss
from ifru_ext.metrics import auc
from ifru_ext.models.checkpoint import load_checkpoint
from ifru_ext.models.trace import Snapshot, SnapshotRecorder
from ifru_ext.training import TrainConfig, train_new
from ifru_ext.unlearning import UnlearnConfig, unlearn

out, fraction, uf, seed = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
data = load_dataset("bookcrossing", user_fraction=uf, attack_fraction=fraction, attack_seed=seed)
states = {}  # epoch -> (steps, table, v-hat), float32
record = SnapshotRecorder.record


def keep_every_epoch(self, epoch, steps, table, second_moment):
    states[epoch] = (steps, table.detach().clone(), second_moment.detach().clone())
    return record(self, epoch, steps, table, second_moment)


SnapshotRecorder.record = keep_every_epoch
original, _ = train_new("mf", data, TrainConfig.for_model("mf", "paper"))
cached = load_checkpoint(f"{out}/original-poison-{fraction:g}-{seed}.pt", data).model
assert torch.equal(cached.embedding.detach(), original.embedding.detach()), "the run did not reproduce the cached Original"
retrain = load_checkpoint(f"{out}/retrain-poison-{fraction:g}-{seed}.pt", data).model
rows, valid = data.removal, data.valid


def valid_auc(model):
    return auc(model.score_all(valid.users, valid.items), valid.labels)


lo, lr = forget_loss(original, data, rows), forget_loss(retrain, data, rows)
trace, best = original.trace, original.trace.best_epoch
print(f"poison {fraction:g}, users {uf:g}, seed {seed}: Original returned at epoch {best}, Retrain at {retrain.trace.best_epoch}")
for k in range(len(trace.validation_tail)):
    epoch = best + k
    steps, table, moment = states[epoch]
    earlier = [e for e in sorted(states) if e < epoch]
    picks = torch.linspace(0, len(earlier) - 1, 2).round().long().tolist() if len(earlier) > 2 else range(len(earlier))
    snapshots = trace.snapshots if k == 0 else [
        Snapshot(states[earlier[i]][0], states[earlier[i]][1].to(torch.bfloat16), states[earlier[i]][2].to(torch.bfloat16))
        for i in picks]
    model = copy.deepcopy(original)
    with torch.no_grad():
        model.embedding.copy_(table)
    model.trace = dataclasses.replace(trace, steps=steps, best_epoch=epoch, second_moment=moment, snapshots=snapshots,
                                      calibration=None, calibrated_for=None)
    answer = unlearn(model, data, rows, UnlearnConfig(calibrated=False)).model
    print(f"  k={k:2d} (epoch {epoch:2d}): Original valid AUC {trace.validation_tail[k]:.4f}, answer {valid_auc(answer):.4f}, "
          f"forget completeness {(forget_loss(answer, data, rows) - lo) / (lr - lo):.3f}")
print(f"  Retrain: valid AUC {valid_auc(retrain):.4f}")
