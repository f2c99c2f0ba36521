"""ndshm convert vs the users' baseline workflow, and parallel gzip vs h5py's own filter.

Run: python bench/bench_convert.py [--reps 3] [--data DIR]   (after bench_loadtxt.py made the 1 GB file)
Two 1 GB five-column files (one file under two names), page cache warm, 2 cores. Peak memory is the
sum over the process tree of proportional anonymous + shared memory (smaps_rollup Pss_Anon +
Pss_Shmem), sampled every 50 ms. Writes bench/results/<date>-<machine>/convert.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

import ndshm
from _common import median, publish, run_measured, run_table, summary, two_coverage_inputs
from ndshm import hdf5

HERE = Path(__file__).resolve().parent


def bench_compression(path: Path, reps: int, folder: Path) -> dict:
    array = ndshm.loadtxt(path, **ndshm.PRESETS["coverage5"])
    chunk_rows = hdf5.CHUNK_BYTES // array.dtype.itemsize
    out = folder / "compress.h5"

    def h5py_gzip() -> float:
        t0 = time.perf_counter()
        with h5py.File(out, "w") as h5:
            h5.create_dataset("d", data=array, chunks=(chunk_rows,), compression="gzip", compression_opts=1)
        return time.perf_counter() - t0

    def ndshm_gzip() -> float:
        t0 = time.perf_counter()
        with h5py.File(out, "w") as h5, ThreadPoolExecutor(os.cpu_count()) as pool:
            dataset = hdf5._create(h5, "d", array.shape, array.dtype, "gzip", 1, resizable=False)
            hdf5._write(dataset, array, 0, "gzip", 1, pool)
        return time.perf_counter() - t0

    ours = median([ndshm_gzip() for _ in range(reps)])
    with h5py.File(out) as h5:
        assert np.array_equal(h5["d"][()], array)
    theirs = median([h5py_gzip() for _ in range(reps)])
    out.unlink()
    return {"bytes": array.nbytes, "h5py_gzip1_s": theirs, "ndshm_gzip1_s": ours, "speedup": theirs / ours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path("/tmp/ndshm-bench"))
    parser.add_argument("--size-mb", type=int, default=1000)
    args = parser.parse_args()
    inputs = two_coverage_inputs(args.data, args.size_mb)
    source = Path(inputs[0])
    text_bytes = 2 * source.stat().st_size
    out = args.data / "out.h5"
    runs = {
        "baseline (np.loadtxt + stdlib shm + h5py)": [
            sys.executable, str(HERE / "baseline_workflow.py"), str(out), *inputs
        ],
        "ndshm convert": [
            sys.executable, "-m", "ndshm", "convert", *inputs, "-o", str(out), "--format", "coverage5",
            "--overwrite", "--quiet",
        ],
    }  # fmt: skip
    results: dict = {"text_bytes": text_bytes}
    for name, command in runs.items():
        times, peaks = [], []
        for _ in range(args.reps):
            out.unlink(missing_ok=True)
            elapsed, peak, _ = run_measured(command)
            times.append(elapsed)
            peaks.append(peak)
        with h5py.File(out) as h5:
            output_bytes = sum(h5[k].nbytes for k in h5)
        results[name] = summary(times, peaks, text_bytes, output_bytes)
    out.unlink(missing_ok=True)
    base = results["baseline (np.loadtxt + stdlib shm + h5py)"]["median_s"]
    results["speedup"] = base / results["ndshm convert"]["median_s"]
    results["compression"] = bench_compression(source, args.reps, args.data)

    title = f"## 2 x {source.stat().st_size / 1e9:.2f} GB five-column files -> one HDF5 file"
    lines = run_table(title, "workflow", list(runs), results)
    c = results["compression"]
    lines += ["", f"ndshm convert vs baseline: {results['speedup']:.1f}x", "",
              f"## gzip level 1 write of {c['bytes'] / 2**20:.0f} MiB (1 MiB chunks)", "",
              f"h5py's filter {c['h5py_gzip1_s']:.2f} s, ndshm parallel chunks {c['ndshm_gzip1_s']:.2f} s: "
              f"{c['speedup']:.2f}x"]  # fmt: skip
    publish("convert", "bench_convert.py", sys.argv[1:], results, lines)


if __name__ == "__main__":
    main()
