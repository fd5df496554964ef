"""Run the benchmark suites and render Markdown reports with ratios into bench/reports/.

    python bench/report.py                      # run everything, write both reports
    python bench/report.py -- -m "not scaling"  # only the BookCrossing suites: bench/reports/<device>.md
    python bench/report.py -- -m scaling        # only the scaling suite (~15 min): scaling-<device>.md + .png
    python bench/report.py -- -k hvp            # any other pytest selection (after --)
    python bench/report.py --json results.json  # render an existing pytest-benchmark JSON

Each benchmark group holds our implementation and the plain-PyTorch (or scipy) way of doing
the same thing, measured in the same run; the ratio is baseline median / our median. Groups
named "scaling: <op>" (bench/test_bench_scaling.py, synthetic power-law graphs of 1e5 to 1e7
interactions) go to a separate report, scaling-<device>.md, with a log-log plot
scaling-<device>.png; each report is written only when the run has groups for it.
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
SCALING_PREFIX = "scaling: "


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


def grouped(results: dict, scaling: bool) -> dict[str, list[dict]]:
    """The run's benchmarks by group: the scaling groups, or all the others."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in results["benchmarks"]:
        if bench["group"].startswith(SCALING_PREFIX) == scaling:
            groups[bench["group"]].append(bench)
    return groups


def header(results: dict, title: str) -> list[str]:
    machine = results.get("machine_info", {})
    return [
        f"# {title} — {device_name()}",
        "",
        f"- device: {device_name()} ({'CUDA' if torch.cuda.is_available() else 'CPU'}, "
        f"{os.cpu_count()} logical cores, torch threads {torch.get_num_threads()})",
        f"- torch {torch.__version__}, CUDA {torch.version.cuda}, python {machine.get('python_version', platform.python_version())}",
        f"- date: {results.get('datetime', '')[:19]}; pytest-benchmark medians over its rounds",
        f"- memory settings: {memory_settings(machine)}",
        "- ratio = baseline median / implementation median (> 1: faster than the baseline)",
    ]


def memory_settings(machine: dict) -> str:
    """The run's allocator settings as bench/conftest.py recorded them ("not recorded" for an older JSON)."""
    settings = machine.get("memory_settings")
    if settings is None:
        return "not recorded"
    return ", ".join(f"{name}={value}" for name, value in settings.items()) or "none set"


def render(results: dict) -> str:
    groups = grouped(results, scaling=False)
    lines = header(results, "Benchmark report") + [""]
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


def scaling_series(rows: list[dict], baseline: bool) -> dict[str, dict[int, dict]]:
    """A scaling group's implementations (ours, or the baseline), in the run's order: each one's
    benchmarks by interactions."""
    series: dict[str, dict[int, dict]] = {}
    for bench in rows:
        if bool(bench["extra_info"].get("baseline")) == baseline:
            series.setdefault(bench["extra_info"]["impl"], {})[bench["extra_info"]["interactions"]] = bench
    return series


def scaling_baseline(rows: list[dict]) -> tuple[str, dict[int, dict]]:
    """A scaling group's one baseline: its name and benchmarks by interactions."""
    return next(iter(scaling_series(rows, baseline=True).items()), ("baseline", {}))


def median_cell(bench: dict | None) -> str:
    return fmt_seconds(bench["stats"]["median"]) if bench else "—"


def rate_cell(bench: dict | None) -> str:
    return f"{bench['extra_info']['interactions'] / bench['stats']['median']:.3g}" if bench else "—"


def render_scaling(results: dict, plot_name: str) -> str:
    groups = grouped(results, scaling=True)
    infos = [b["extra_info"] for rows in groups.values() for b in rows]
    peak_rss = max(info["peak_rss_gib"] for info in infos)
    loads = [info["load_average"] for info in infos]
    lines = header(results, "Scaling on synthetic power-law graphs") + [
        "- graphs: `bench/synthetic.py`, n distinct (user, item) pairs, n/20 users (Zipf exponent 0.8),"
        " n/10 items (exponent 1.0), 30% positive labels; LightGCN Â over the positives",
        f"- peak resident memory of the benchmark process: {peak_rss:.1f} GiB",
        f"- 1-minute load average after each benchmark: {min(loads):.1f}–{max(loads):.1f}"
        f" ({os.cpu_count()} logical cores; above that, other processes shared the cores)",
        "- \"—\" for a median: not measured (a baseline over its memory guard is skipped; see the suite's"
        " skip reasons); for graph nnz: the op uses no graph",
        "",
        f"![median seconds per call against interactions, log-log]({plot_name})",
        "",
    ]
    for group in sorted(groups):
        base_name, base = scaling_baseline(groups[group])
        lines += [f"## {group.removeprefix(SCALING_PREFIX)}", "",
                  f"| interactions | graph nnz | implementation | median | {base_name} (baseline) median | ratio | "
                  f"interactions/s | {base_name} interactions/s |",
                  "|---|---|---|---|---|---|---|---|"]
        for ours_name, ours in scaling_series(groups[group], baseline=False).items():
            for size in sorted(ours.keys() | base.keys()):
                mine, theirs = ours.get(size), base.get(size)
                ratio = f"{theirs['stats']['median'] / mine['stats']['median']:.2f}×" if mine and theirs else "—"
                nnz = (mine or theirs)["extra_info"].get("nnz")
                lines.append(f"| {size:,} | {'—' if nnz is None else f'{nnz:,}'} | {ours_name} | {median_cell(mine)} | "
                             f"{median_cell(theirs)} | {ratio} | {rate_cell(mine)} | {rate_cell(theirs)} |")
        lines.append("")
    return "\n".join(lines)


def plot_scaling(results: dict, path: Path) -> None:
    """One log-log panel per op: median seconds per call against interactions, ours vs baseline."""
    # Imported here: matplotlib is needed only for the scaling plot (a test-only dependency).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = grouped(results, scaling=True)
    columns = 2
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4 * rows), squeeze=False)
    for ax, group in zip(axes.flat, sorted(groups)):
        base_name, base = scaling_baseline(groups[group])
        mine = scaling_series(groups[group], baseline=False)
        curves = [(name, series, "o-") for name, series in mine.items()] + [(f"{base_name} (baseline)", base, "s--")]
        for name, series, style in curves:
            sizes = sorted(series)
            ax.plot(sizes, [series[n]["stats"]["median"] for n in sizes], style, label=name)
        if mine:
            # A slope-1 guide through our first implementation's largest size, where fixed per-call
            # costs matter least: smaller sizes above it carry such overheads; a steeper curve grows
            # faster than linearly.
            ours = next(iter(mine.values()))
            largest = max(ours)
            sizes = sorted(ours.keys() | base.keys())
            end = ours[largest]["stats"]["median"]
            ax.plot(sizes, [end * n / largest for n in sizes], ":", color="grey", label="∝ interactions")
        ax.set(xscale="log", yscale="log", title=group.removeprefix(SCALING_PREFIX),
               xlabel="interactions", ylabel="median seconds per call")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(groups):]:
        ax.remove()
    fig.suptitle(f"Scaling on synthetic power-law graphs — {device_name()}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="render this pytest-benchmark JSON instead of running")
    parser.add_argument("--out", type=Path, help="report path (default bench/reports/<cpu|cuda>.md); "
                        "the scaling report and plot go beside it as scaling-<name>.md / .png")
    parser.add_argument("selection", nargs="*", help="extra pytest arguments after --, e.g. -- -k hvp")
    args = parser.parse_args()
    json_path = args.json
    if json_path is None:
        json_path = HERE / "reports" / "latest.json"
        json_path.parent.mkdir(exist_ok=True)
        run_suites(json_path, args.selection)
    results = json.loads(json_path.read_text())
    out = args.out or HERE / "reports" / ("cuda.md" if torch.cuda.is_available() else "cpu.md")
    out.parent.mkdir(exist_ok=True)
    reports = []
    if grouped(results, scaling=False):
        reports.append((out, render(results)))
    if grouped(results, scaling=True):
        scaling_out = out.with_name(f"scaling-{out.name}")
        plot_scaling(results, scaling_out.with_suffix(".png"))
        reports.append((scaling_out, render_scaling(results, scaling_out.with_suffix(".png").name)))
    for path, report in reports:
        path.write_text(report)
        print(report)


if __name__ == "__main__":
    main()
