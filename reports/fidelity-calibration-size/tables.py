"""The README's tables from raw.txt (calfrac.py's lines): per cell, the answer with the scale calibrated
on a random 2% and on a random 8% of the training rows."""
import re, statistics, sys
from pathlib import Path

HERE = Path(__file__).parent
LINE = re.compile(r"^(\S+) (\S+) (\S+) (\S+) seed (\d+) \(\d+s\): (.*)$")
PART = re.compile(r"cal@(\S+) \(scale ([\d.]+)\): forget (-?[\d.]+)  \|AUC0-R\| ([\d.]+)  test-compl (\S+)")
NAMES = {"runs/fill/100k.dat": "100K-shaped", "runs/fill/amazon.csv": "Amazon-shaped"}
cells, seen = {}, set()
for line in (HERE / "raw.txt").read_text().splitlines():
    m = LINE.match(line)
    if not m or line in seen:
        continue
    seen.add(line)
    model, data, scenario, fraction, seed, rest = m.groups()
    parts = {p[0]: p[1:] for p in PART.findall(rest)}
    if len(parts) < 2:
        continue
    cells.setdefault((model, NAMES.get(data, data), scenario, fraction), []).append((int(seed), parts))
print("| model | data | request | seeds | scale 2% → 8% | forget completeness 2% → 8% | \\|AUC_0 − R\\| 2% → 8% | test-AUC completeness 0/1/2, 2% → 8% |")
print("|---|---|---|---|---|---|---|---|")
for (model, data, scenario, fraction), draws in cells.items():
    draws.sort()
    col = lambda i, f: " / ".join(d[1][f][i] for d in draws)
    mean = lambda i, f: statistics.mean(float(d[1][f][i]) for d in draws)
    def both(i):
        text = f"{col(i, '0.02')} → {col(i, '0.08')}"
        return text + (f" (means {mean(i, '0.02'):.2f} → {mean(i, '0.08'):.2f})" if len(draws) > 1 and i == 1 else "")
    tc = " / ".join(f"{d[1]['0.02'][3]} → {d[1]['0.08'][3]}" for d in draws)
    print(f"| {model} | {data} | {scenario} {float(fraction):.1%} | {','.join(str(d[0]) for d in draws)} | {both(0)} | {both(1)} | {both(2)} | {tc} |")
