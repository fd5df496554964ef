"""The calibrated scale over calibration draws (seeds 0-4) at 2% and 8% of the training rows (experiment)."""
import sys, copy, statistics, json
from ifru_ext.data import load_dataset
from ifru_ext.training import TrainConfig, train_new
from ifru_ext.unlearning import calibrate
name, data = sys.argv[1], sys.argv[2]
read = json.loads(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else {}
ds = load_dataset(data, **read)
config = TrainConfig.for_model(name)
original, _ = train_new(name, ds, config)
for f in (0.02, 0.08):
    scales, refused = [], 0
    for s in range(int(sys.argv[4]) if len(sys.argv) > 4 else 5):
        try:
            scales.append(calibrate(copy.deepcopy(original), ds, fraction=f, seed=s).scale)
        except ValueError:
            refused += 1
    sd = statistics.stdev(scales) if len(scales) > 1 else float("nan")
    print(f"{name} {data} calibration {f}: scales {[round(x, 3) for x in scales]} refused {refused} mean {statistics.mean(scales):.3f} sd {sd:.3f}", flush=True)
