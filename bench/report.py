"""Run the benchmark suites and render a Markdown report with ratios into bench/reports/.

    python bench/report.py                      # run everything, write bench/reports/<device>.md
    python bench/report.py --json results.json  # render an existing pytest-benchmark JSON

Each benchmark group holds our implementation and the plain-PyTorch (or scipy) way of doing
the same thing, measured in the same run; the ratio is baseline median / our median.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def run_suites(json_path: Path, selection: list[str]) -> None:
    command = [sys.executable, "-m", "pytest", str(HERE), "--benchmark-only", f"--benchmark-json={json_path}", "-q",
               *selection]
    subprocess.run(command, check=True)


def fmt_seconds(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.3f} s"


def render(results: dict) -> str:
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in results["benchmarks"]:
        groups[bench["group"]].append(bench)
    machine = results.get("machine_info", {})
    lines = [
        f"# Benchmark report — {device_name()}",
        "",
        f"- device: {device_name()} ({'CUDA' if torch.cuda.is_available() else 'CPU'}, "
        f"{os.cpu_count()} logical cores, torch threads {torch.get_num_threads()})",
        f"- torch {torch.__version__}, CUDA {torch.version.cuda}, python {machine.get('python_version', platform.python_version())}",
        f"- date: {results.get('datetime', '')[:19]}; pytest-benchmark medians over its rounds",
        "- ratio = baseline median / implementation median (> 1: faster than the baseline)",
        "",
    ]
    for group in sorted(groups):
        rows = groups[group]
        baseline = next((b for b in rows if b["extra_info"].get("baseline")), None)
        lines += [f"## {group}", "", "| implementation | median | min | rounds | ratio vs baseline | details |",
                  "|---|---|---|---|---|---|"]
        for bench in sorted(rows, key=lambda b: b["stats"]["median"]):
            info = dict(bench["extra_info"])
            impl = info.pop("impl", bench["name"])
            is_baseline = info.pop("baseline", False)
            ratio = baseline["stats"]["median"] / bench["stats"]["median"] if baseline else float("nan")
            details = ", ".join(f"{k}={v}" for k, v in info.items())
            lines.append(
                f"| {impl}{' (baseline)' if is_baseline else ''} | {fmt_seconds(bench['stats']['median'])} | "
                f"{fmt_seconds(bench['stats']['min'])} | {bench['stats']['rounds']} | {ratio:.2f}× | {details} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="render this pytest-benchmark JSON instead of running")
    parser.add_argument("--out", type=Path, help="report path (default bench/reports/<cpu|cuda>.md)")
    parser.add_argument("selection", nargs="*", help="extra pytest arguments, e.g. -k hvp")
    args = parser.parse_args()
    json_path = args.json
    if json_path is None:
        json_path = HERE / "reports" / "latest.json"
        json_path.parent.mkdir(exist_ok=True)
        run_suites(json_path, args.selection)
    report = render(json.loads(json_path.read_text()))
    out = args.out or HERE / "reports" / ("cuda.md" if torch.cuda.is_available() else "cpu.md")
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
