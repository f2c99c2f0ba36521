"""Where ndshm.loadtxt's time goes on a plain file: open + row count (TextJob.open), allocation, and
parse (including the output's page faults), for 1 and 2 threads. One thread counts no rows first: it
parses them as it finds them into shared memory that grows.

Run: python bench/loadtxt_phases.py [FILE] [--reps 3]   (default FILE: bench_loadtxt.py's 1 GB coverage
file). Prints each repetition; the figures in the closing notes come from runs of this script.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import cache_as_read
from ndshm import _core
from ndshm._array import _new
from ndshm._loadtxt import _fields

# the bench file's names are chr1..chr22: S5 (the preset's chr S measures them; this times the parse alone)
COVERAGE = np.dtype([("chr", "S5"), ("pos", "<i4"), ("pct", "<f4"), ("c", "<i4"), ("t", "<i4")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", nargs="?", default="/tmp/ndshm-bench/coverage-1000000000.tsv")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    fields = _fields(COVERAGE)
    cache_as_read(args.file)  # page cache warm, as read from disk (as in bench_loadtxt.py)
    for _ in range(args.reps):
        for threads in (1, 2):
            t0 = time.perf_counter()
            job = _core.TextJob.open(args.file, "\t", "#", "", 0, -1, [], False, threads, True)
            t1 = time.perf_counter()
            if job.streamed:  # one thread: rows parsed as found, into memory that grows (no count first)
                t2 = t1
                out, _, _ = job.parse_new(fields, COVERAGE.itemsize, True, "", "", ",)")
            else:
                out = _new((job.rows,), COVERAGE, populate=False)
                t2 = time.perf_counter()
                job.parse(fields, out.__array_interface__["data"][0], out.nbytes, COVERAGE.itemsize)
            t3 = time.perf_counter()
            opened = "first row" if job.streamed else "row count"
            print(f"threads {threads}: open + {opened} {t1 - t0:.2f} s, "
                  f"allocation {t2 - t1:.2f} s, parse + page faults {t3 - t2:.2f} s, total {t3 - t0:.2f} s",
                  flush=True)  # fmt: skip
            del out, job


if __name__ == "__main__":
    main()
