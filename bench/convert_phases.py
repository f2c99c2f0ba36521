"""Where ndshm.to_hdf5's time goes: the whole call, and the final commit (fsync, link, rename).

Run: python bench/convert_phases.py OUTPUT.h5 [INPUT...]   (default inputs: bench_loadtxt.py's 1 GB file
under two names). An OUTPUT in /dev/shm takes the disk out of the run, for comparison.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import ndshm
from _common import two_coverage_inputs
from ndshm import hdf5


def main() -> None:
    output = sys.argv[1]
    inputs = sys.argv[2:] or two_coverage_inputs(Path("/tmp/ndshm-bench"), 1000)
    stamps: dict[str, float] = {}
    commit = hdf5._UnnamedFile.commit

    def timed_commit(self) -> None:
        stamps["commit"] = time.perf_counter()
        commit(self)
        stamps["committed"] = time.perf_counter()

    hdf5._UnnamedFile.commit = timed_commit
    t0 = time.perf_counter()
    ndshm.to_hdf5(inputs, output, format="coverage5", overwrite=True, progress=False)
    t1 = time.perf_counter()
    print(f"to_hdf5 {t1 - t0:.2f} s: until the commit {stamps['commit'] - t0:.2f} s, "
          f"commit (fsync, link, rename) {stamps['committed'] - stamps['commit']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
