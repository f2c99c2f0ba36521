"""Across the sizes users have: loading coverage text with every reader, and handing an array over.

Run: python bench/bench_sizes.py [--reps 3] [--data DIR] [--skip-1gb]
- Loading: five-column coverage files of 2,000 rows, 40 MB and 1 GB (the 1 GB one is bench_loadtxt.py's),
  page cache warm as read from disk, every reader of bench_loadtxt.py to numpy.loadtxt's array; the readers
  take turns within each repetition (the VM drifts); medians, with min and max.
- Hand-over, child -> parent, of structured arrays from 1 MiB to 1 GiB: bench_share.py's methods.
Writes bench/results/<date>-<machine>/sizes.{json,md}; bench/report.py draws them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

import bench_loadtxt
import bench_share
import ndshm
from _common import cache_as_read, coverage_block, median, save, write_repeated
from bench_loadtxt import (
    read_ndshm,
    read_numpy,
    read_pandas,
    read_polars,
    read_pyarrow,
    timed,
)
from bench_share import bench_handover

# Every reader, ndshm's too, to the usual dtype of these files (names in S10), as users call them
COVERAGE = np.dtype([("chr", "S10"), ("pos", "<i4"), ("pct", "<f4"), ("c", "<i4"), ("t", "<i4")])
bench_loadtxt.COVERAGE = bench_share.COVERAGE = COVERAGE
bench_loadtxt.PRESET = {"dtype": COVERAGE, "delimiter": "\t"}

READERS = {
    "numpy.loadtxt": read_numpy,
    "ndshm 1 thread": read_ndshm(1),
    "ndshm 2 threads": read_ndshm(2),
    "pandas c": read_pandas("c"),
    "pandas pyarrow": read_pandas("pyarrow"),
    "pyarrow.csv": read_pyarrow,
    "polars": read_polars,
}
HANDOVER_MIB = [1, 16, 256, 1024]


def coverage_file(folder: Path, label: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if label == "1 GB":  # bench_loadtxt.py's file, byte for byte (its generator, its seed)
        path = folder / f"coverage-{10**9}.tsv"
        if not path.exists():
            write_repeated(path, coverage_block(np.random.default_rng(1), 200_000), 10**9)
        return path
    path = folder / f"coverage-{label.replace(' ', '').replace(',', '')}.tsv"
    if not path.exists():
        rng = np.random.default_rng(2)
        if label == "2,000 rows":
            path.write_text(coverage_block(rng, 2000))
        else:  # 40 MB: whole rows, without the 1 GB file's repeated block
            text, rows = [], 0
            while rows < 40 * 10**6:
                block = coverage_block(rng, 100_000)
                text.append(block)
                rows += len(block)
            path.write_text("".join(text)[: 40 * 10**6].rsplit("\n", 1)[0] + "\n")
    return path


def bench_load(path: Path, reps: int) -> dict:
    reference = ndshm.loadtxt(path, dtype=COVERAGE, delimiter="\t")
    times: dict[str, list[float]] = {name: [] for name in READERS}
    for rep in range(reps):
        order = list(READERS) if rep % 2 == 0 else list(reversed(READERS))
        for name in order:
            elapsed, got = timed(READERS[name], path, "coverage")
            assert got.dtype == reference.dtype and np.array_equal(got, reference), name
            times[name].append(elapsed)
            del got
    return {
        "bytes": path.stat().st_size,
        "rows": len(reference),
        "readers": {n: {"median_s": median(t), "min_s": min(t), "max_s": max(t)} for n, t in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3, help="repetitions at 1 GB (more for smaller files)")
    parser.add_argument("--data", type=Path, default=Path("/tmp/ndshm-bench"))
    parser.add_argument("--skip-1gb", action="store_true")
    args = parser.parse_args()
    sizes = {"2,000 rows": 7 * args.reps, "40 MB": 2 * args.reps + 1, "1 GB": args.reps}
    if args.skip_1gb:
        del sizes["1 GB"]
    load = {}
    for label, reps in sizes.items():
        path = coverage_file(args.data, label)
        cache_as_read(path)
        load[label] = bench_load(path, reps)
    handover = {f"{mib} MiB": bench_handover(mib / 1024, max(3, args.reps)) for mib in HANDOVER_MIB}

    lines = ["## Loading five-column coverage text (median s; min-max)", ""]
    lines += ["| reader | " + " | ".join(f"{k} ({v['bytes'] / 1e6:.2f} MB)" for k, v in load.items()) + " |"]
    lines += ["|---|" + "---|" * len(load)]
    for name in READERS:
        cells = [f"{v['readers'][name]['median_s']:.4f} ({v['readers'][name]['min_s']:.4f}-"
                 f"{v['readers'][name]['max_s']:.4f})" for v in load.values()]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Hand-over child -> parent (median s)", ""]
    methods = list(next(iter(handover.values())))
    lines += ["| method | " + " | ".join(handover) + " |", "|---|" + "---|" * len(handover)]
    for method in methods:
        cells = [f"{h[method]['median_s']:.4f}" for h in handover.values()]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    command = "python bench/bench_sizes.py " + " ".join(sys.argv[1:])
    print(f"\nsaved in {save('sizes', command.strip(), {'load': load, 'handover': handover}, table)}")


if __name__ == "__main__":
    os.environ.setdefault("NDSHM_SESSION", f"bench-{os.getpid()}")
    main()
