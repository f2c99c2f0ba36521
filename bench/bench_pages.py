"""Small pages vs huge pages for fresh shared memory: what each costs, with memory freed just before
and after the machine has been idle.

Run: python bench/bench_pages.py [--reps 3] [--rounds 2] [--idle 8] [--data DIR]
Each measure runs in fresh processes, with NDSHM_HUGE_PAGES=0 (small pages; NUMPY_MADVISE_HUGEPAGE=0
for numpy), =1 (a huge page wherever the kernel gives one) and unset (paced, the default) in turn,
--rounds times; a process makes --reps measures, each after a
pause: 0 s (the previous measure's memory was just freed) or --idle seconds. The first measure of a
process is reported apart, since no memory was freed before it. Measures, on 888 MiB (the coverage
file's array): ndshm.empty; a child attaching such an array and summing it; ndshm.loadtxt of the 1 GB
coverage file on 2 threads (bench_loadtxt.py generates it); np.ones, for numpy's own huge pages.
Writes bench/results/<date>-<machine>/pages.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import median, publish, warm

NBYTES = 888 << 20


def child_sum(a) -> float:
    t0 = time.perf_counter()
    float(a.sum())
    return time.perf_counter() - t0


def measure(what: str, reps: int, pause: float, path: Path) -> list[float]:
    """In a process of its own (--measure): reps measures of `what`, each after `pause` seconds."""
    import multiprocessing as mp

    import numpy as np

    import ndshm

    pool = mp.get_context("forkserver").Pool(1) if what == "attach" else None
    if pool is not None:
        pool.apply(time.sleep, (0,))
    if what == "loadtxt":
        warm(path)
    times = []
    for _ in range(reps):
        time.sleep(pause)
        t0 = time.perf_counter()
        if what == "empty":
            a = ndshm.empty(NBYTES // 8, np.float64)
        elif what == "numpy":
            a = np.ones(NBYTES // 8)
        elif what == "loadtxt":
            a = ndshm.loadtxt(path, dtype=ndshm.PRESETS["coverage5"]["dtype"], delimiter="\t", threads=2)
        else:
            a = ndshm.empty(NBYTES // 8, np.float64)
            a[:] = 1
            t0 = time.perf_counter()
            pool.apply(child_sum, (a,))  # timed: the child's attach, page faults and sum
        times.append(time.perf_counter() - t0)
        del a
    if pool is not None:
        pool.close()
        pool.join()
    return times


MEASURES = {
    "empty": "ndshm.empty",
    "attach": "child attaches and sums",
    "loadtxt": "ndshm.loadtxt, 2 threads",
    "numpy": "np.ones (numpy's pages)",
}


MODES = {"small": "0", "huge": "1", "paced": ""}  # NDSHM_HUGE_PAGES for each column (paced: the default)


def run(what: str, mode: str, reps: int, pause: float, path: Path) -> list[float]:
    env = dict(os.environ)
    env["NDSHM_HUGE_PAGES"] = MODES[mode]
    if mode == "small":
        env["NUMPY_MADVISE_HUGEPAGE"] = "0"
    args = [sys.executable, __file__, "--measure", what, "--reps", str(reps), "--idle", str(pause),
            "--data", str(path.parent)]  # fmt: skip
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True, timeout=600).stdout
    return [float(x) for x in out.split()]


def span(values: list[float]) -> str:
    return f"{median(values):.3f} ({min(values):.3f}-{max(values):.3f})" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle", type=float, default=8.0)
    parser.add_argument("--data", type=Path, default=Path("/tmp/ndshm-bench"))
    parser.add_argument("--measure", choices=MEASURES, help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    path = args.data / "coverage-1000000000.tsv"
    if args.measure:
        print(" ".join(f"{t:.4f}" for t in measure(args.measure, args.reps, args.idle, path)))
        return
    if not path.exists():
        sys.exit(f"{path} is missing: python bench/bench_loadtxt.py generates it")
    results: dict = {}
    for what in MEASURES:
        for pause in (0.0, args.idle):
            for _ in range(args.rounds):
                for mode in MODES:
                    if what == "numpy" and mode == "paced":
                        continue  # numpy's pages: small or huge only
                    times = run(what, mode, args.reps, pause, path)
                    entry = results.setdefault(what, {}).setdefault(f"pause {pause:g}", {})
                    side = entry.setdefault(mode, {"first": [], "rest": []})
                    first = 1 if pause == 0 else 0  # after a pause, the first is idle like the rest
                    side["first"] += times[:first]
                    side["rest"] += times[first:]
    lines = [
        f"Medians (min-max) in seconds, {NBYTES >> 20} MiB; reps {args.reps} x rounds {args.rounds}. "
        "NDSHM_HUGE_PAGES: small 0, huge 1, paced unset (the default).",
        "",
        "| measure | small pages | huge pages | paced (default) |",
        "|---|---|---|---|",
    ]
    states = {"first": "a process's first", "rest": "memory just freed"}
    for what, label in MEASURES.items():
        for pause, entry in results[what].items():
            kinds = ("rest", "first") if pause == "pause 0" else ("rest",)
            for kind in kinds:
                state = states[kind] if pause == "pause 0" else f"after {args.idle:g} s idle"
                cells = " | ".join(span(entry[m][kind]) if m in entry else "-" for m in MODES)
                lines.append(f"| {label}, {state} | {cells} |")
    publish("pages", "bench_pages.py", sys.argv[1:], results, lines)


if __name__ == "__main__":
    main()
