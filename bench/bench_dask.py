"""to_hdf5 on a 2-worker Dask LocalCluster vs the local process pool, same 2 cores, same inputs.

Run: python bench/bench_dask.py [--reps 3] [--data DIR]   (after bench_loadtxt.py made the 1 GB file)
Two 1 GB five-column files, uncompressed output, page cache warm. Each run is a fresh process; the
time is that of the to_hdf5 call (the cluster is started before it, as users have one running),
the peak memory that of every process of the run (cluster included; see _common.run_measured). The
"two nodes" run gives each worker a node id of its own, so every row is fetched over TCP (for
information: the issue sets no target for it). Writes bench/results/<date>-<machine>/dask.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import h5py

import ndshm
from _common import publish, run_measured, run_table, summary, two_coverage_inputs

RUNS = {
    "local process pool": "local",
    "Dask LocalCluster, 2 workers x 1 thread": "dask",
    "Dask, 2 workers as two nodes (rows fetched)": "fetch",
}


def one(kind: str, output: str, inputs: list[str]) -> None:
    """One run, in this process: prints {"seconds": ...} of the to_hdf5 call."""
    options = {"format": "coverage5", "overwrite": True, "progress": False}
    if kind == "local":
        t0 = time.perf_counter()
        ndshm.to_hdf5(inputs, output, **options)
        print(json.dumps({"seconds": time.perf_counter() - t0}))
        return
    from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster

    if kind == "dask":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0", host="127.0.0.1")
    else:
        worker = {"nthreads": 1, "host": "127.0.0.1", "dashboard_address": None}
        cluster = SpecCluster(
            scheduler={"cls": Scheduler, "options": {"dashboard_address": ":0", "host": "127.0.0.1"}},
            workers={n: {"cls": Nanny, "options": {**worker, "env": {"NDSHM_NODE_ID": n}}} for n in "ab"},
        )
    with cluster, Client(cluster) as client:
        t0 = time.perf_counter()
        ndshm.to_hdf5(inputs, output, executor=client, **options)
        print(json.dumps({"seconds": time.perf_counter() - t0}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path("/tmp/ndshm-bench"))
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--one", choices=sorted(RUNS.values()), help=argparse.SUPPRESS)
    parser.add_argument("--inputs", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = args.data / "dask-out.h5"
    if args.one:
        one(args.one, str(out), args.inputs)
        return
    inputs = two_coverage_inputs(args.data, args.size_mb)
    source = Path(inputs[0])
    text_bytes = 2 * source.stat().st_size
    results: dict = {"text_bytes": text_bytes}
    samples: dict[str, dict[str, list]] = {name: {"s": [], "peak": []} for name in RUNS}
    for _ in range(args.reps):  # interleaved, so that drift on the VM hits every kind alike
        for name, kind in RUNS.items():
            command = [sys.executable, __file__, "--data", str(args.data), "--one", kind, "--inputs", *inputs]
            _, peak, output = run_measured(command)
            samples[name]["s"].append(json.loads(output.splitlines()[-1])["seconds"])
            samples[name]["peak"].append(peak)
    with h5py.File(out) as h5:
        output_bytes = sum(h5[k].nbytes for k in h5)
    out.unlink()
    for name, got in samples.items():
        results[name] = summary(got["s"], got["peak"], text_bytes, output_bytes)
    local, dask = results["local process pool"], results["Dask LocalCluster, 2 workers x 1 thread"]
    results["time_ratio"] = dask["median_s"] / local["median_s"]
    results["peak_ratio"] = dask["peak_mib"] / local["peak_mib"]

    title = f"## 2 x {source.stat().st_size / 1e9:.2f} GB five-column files -> one HDF5 file, 2 cores"
    lines = run_table(title, "run (time: the to_hdf5 call)", list(RUNS), results)
    lines += ["", f"Dask / local: time {results['time_ratio']:.2f}x (target <= 1.5x), "
              f"peak memory {results['peak_ratio']:.2f}x (target <= 1.3x)"]  # fmt: skip
    publish("dask", "bench_dask.py", sys.argv[1:], results, lines)


if __name__ == "__main__":
    main()
