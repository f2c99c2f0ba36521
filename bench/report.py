"""Draws the README's performance figures from committed benchmark results (no benchmark is run).

Run: python bench/report.py [--results bench/results/<date>-<machine>] [--out docs/figures]
Reads sizes.json (bench_sizes.py) and, where present, convert.json (bench_convert.py) of the results
folder (default: the newest one that has sizes.json); writes loading.png, handover.png and, with convert
sizes, convert.png into --out. The machine and date of the run are in each caption.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
FIGURES = HERE.parent / "docs" / "figures"
STYLE = {  # reader or method -> (colour, marker); ndshm in strong colours, peers muted
    "ndshm 2 threads": ("#c0392b", "o"),
    "ndshm 1 thread": ("#e67e22", "o"),
    "ndshm (native)": ("#c0392b", "o"),
    "ndshm.share": ("#e67e22", "o"),
    "ndshm convert": ("#c0392b", "o"),
    "numpy.loadtxt": ("#2c3e50", "s"),
    "pandas c": ("#2980b9", "^"),
    "pandas pyarrow": ("#7fb3d5", "^"),
    "pyarrow.csv": ("#16a085", "v"),
    "polars": ("#8e44ad", "D"),
    "pickle": ("#2c3e50", "s"),
    "stdlib": ("#2980b9", "^"),  # multiprocessing.shared_memory + (name, shape, dtype) through a Queue
    "SharedArray": ("#8e44ad", "D"),
}


def newest_results() -> Path:
    folders = sorted(p.parent for p in RESULTS.glob("*/sizes.json"))
    if not folders:
        raise SystemExit(f"no sizes.json under {RESULTS}: run python bench/bench_sizes.py first")
    return folders[-1]


def _caption(figure, run: dict, folder: Path, what: str) -> None:
    m = run["machine"]
    text = (f"{what}. {folder.name}: {m['cores']} cores {m['cpu']}, {m['memory_gib']:g} GiB, Python "
            f"{m['python']}, numpy {m['numpy']}, commit {m['commit']}; `{run['command']}`")  # fmt: skip
    figure.text(0.01, 0.01, text, fontsize=7, color="#555555", wrap=True)


def _lines(axes, xs: list[float], series: dict[str, list[float]], xlabel: str, ylabel: str) -> None:
    for name, ys in series.items():
        colour, marker = STYLE.get(name, ("#7f8c8d", "x"))
        strong = name.startswith("ndshm")
        axes.plot(xs, ys, marker=marker, color=colour, label=name, linewidth=2.4 if strong else 1.2,
                  markersize=6 if strong else 4)  # fmt: skip
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, which="both", linewidth=0.3, alpha=0.6)
    axes.legend(fontsize=8, frameon=False)


def _size_label(label: str, nbytes: int) -> str:
    return f"{label}\n({nbytes / 1e3:.0f} KB)" if nbytes < 1e6 else label


def loading(run: dict, folder: Path, out: Path) -> Path:
    load = run["results"]["load"]
    labels = list(load)
    sizes = [load[k]["bytes"] / 1e6 for k in labels]
    readers = list(next(iter(load.values()))["readers"])
    series = {r: [load[k]["readers"][r]["median_s"] for k in labels] for r in readers}
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8), gridspec_kw={"width_ratios": [1.15, 1]})
    _lines(left, sizes, series, "file size (five-column coverage text)", "time to a numpy array, s")
    left.set_xticks(sizes, [_size_label(k, load[k]["bytes"]) for k in labels])
    left.set_title("Time by file size (median; lower is better)", fontsize=11)
    # How many times numpy.loadtxt's time each reader takes less, per size
    numpy_s = series["numpy.loadtxt"]
    others = [r for r in readers if r != "numpy.loadtxt"]
    width = 0.8 / len(others)
    for i, name in enumerate(others):
        colour, _ = STYLE.get(name, ("#7f8c8d", "x"))
        ratios = [n / t for n, t in zip(numpy_s, series[name], strict=True)]
        xs = [k + (i - (len(others) - 1) / 2) * width for k in range(len(labels))]
        bars = right.bar(xs, ratios, width, color=colour, label=name)
        if name.startswith("ndshm"):
            right.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    right.axhline(1, color="#2c3e50", linewidth=1)
    right.set_xticks(range(len(labels)), [_size_label(k, load[k]["bytes"]) for k in labels])
    right.set_ylabel("speed vs numpy.loadtxt (x; 1 = numpy)")
    right.set_title("Speed relative to numpy.loadtxt (higher is better)", fontsize=11)
    right.grid(True, axis="y", linewidth=0.3, alpha=0.6)
    right.legend(fontsize=7, frameon=False)
    _caption(figure, run, folder, "Each reader's result is numpy.loadtxt's array; page cache warm")
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    path = out / "loading.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def handover(run: dict, folder: Path, out: Path) -> Path:
    hand = run["results"]["handover"]
    labels = list(hand)
    mib = [float(k.split()[0]) for k in labels]
    series = {m: [hand[k][m]["median_s"] for k in labels] for m in next(iter(hand.values()))}
    figure, axes = plt.subplots(figsize=(7.5, 5))
    _lines(axes, mib, series, "array size, MiB (structured coverage rows)", "child -> parent hand-over, s")
    axes.set_xticks(mib, labels)
    axes.set_title("Handing an array to another process (median; lower is better)")
    _caption(figure, run, folder, "From the child's last write to the parent holding the array")
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    path = out / "handover.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def convert(run: dict, folder: Path, out: Path) -> Path | None:
    """bench_convert.py's three sizes: each run's median seconds, on a log scale."""
    r = run["results"]
    if not {"small", "medium", "large"} <= r.keys():
        return None
    groups = {"2,000 rows": r["small"], "2 x 40 MB": r["medium"], "2 x 1 GB": r["large"]}
    bars = {  # label -> (key in a group's results, colour)
        "python + imports alone": ("import", "#95a5a6"),
        "ndshm convert": ("ndshm convert", "#c0392b"),
        "limit: max(loadtxt alone, dd)": ("limit", "#f5b041"),
        "baseline, fsynced": ("baseline, fsynced", "#2c3e50"),
        "baseline, no fsync": ("baseline, no fsync", "#7f8c8d"),
    }
    small = r["small"]
    values = {
        "2,000 rows": {"import": small["import"]["median_s"], "ndshm convert": small["convert"]["median_s"]}
    }
    for label in ("2 x 40 MB", "2 x 1 GB"):
        g = groups[label]
        values[label] = {
            k: g[k]["median_s"] for k in ("ndshm convert", "baseline, fsynced", "baseline, no fsync")
        }
        if "limit_s" in g:
            values[label]["limit"] = g["limit_s"]
    figure, axes = plt.subplots(figsize=(8.5, 5))
    width = 0.8 / len(bars)
    for i, (name, (key, colour)) in enumerate(bars.items()):
        xs, ys = [], []
        for k, label in enumerate(groups):
            if key in values[label]:
                xs.append(k + (i - (len(bars) - 1) / 2) * width)
                ys.append(values[label][key])
        drawn = axes.bar(xs, ys, width, color=colour, label=name)
        axes.bar_label(drawn, fmt="%.2f", fontsize=7, padding=1)
    axes.set_yscale("log")
    axes.set_xticks(range(len(groups)), list(groups))
    axes.set_ylabel("end to end, s (log scale)")
    axes.set_title("Converting text files to one HDF5 file (median; lower is better)")
    axes.grid(True, axis="y", which="both", linewidth=0.3, alpha=0.6)
    axes.legend(fontsize=8, frameon=False, loc="upper left")
    _caption(figure, run, folder, "Whole commands, coverage text in, uncompressed HDF5 out")
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    path = out / "convert.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args(argv)
    folder = args.results or newest_results()
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = json.loads((folder / "sizes.json").read_text())
    made = [loading(sizes, folder, args.out), handover(sizes, folder, args.out)]
    if (folder / "convert.json").exists():
        path = convert(json.loads((folder / "convert.json").read_text()), folder, args.out)
        made += [path] if path else []
    for path in made:
        print(path)
    return made


if __name__ == "__main__":
    main()
