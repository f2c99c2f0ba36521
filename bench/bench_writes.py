"""Compressed chunk writes: HDF5's filter (h5py, one chunk at a time) vs ndshm's chunks encoded on all
cores and written with write_direct_chunk, as `ndshm convert --compression` writes them.

Run: python bench/bench_writes.py [--rows 12000000] [--reps 3]
Writes bench/results/<date>-<machine>/writes.{json,md}. The records of bench_readback.py (coverage5,
26 bytes a row, 1 MiB chunks); each codec's two writers alternate within each repetition, into files
flushed to the page cache inside the timing, not fsynced: with every chunk written at the end, the
parallel writer's file waited at fsync for the disk (53 MB: about 0.35 s here) while the filter's had
trickled out as it went, so an fsync timed the disk, not the compression. Medians with the range.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import h5py

from _common import median, publish
from bench_readback import make_file, read_h5py
from ndshm import hdf5

CODECS = {"gzip:1": ("gzip", 1), "zstd:3": ("zstd", 3), "blosc:lz4:5": ("blosc", ("lz4", 5)),
          "blosc:zstd:5": ("blosc", ("zstd", 5)), "lzf": ("lzf", None)}  # fmt: skip


def write(path: Path, data, codec: tuple, direct: bool) -> float:
    name, level = codec
    t0 = time.perf_counter()
    with h5py.File(path, "w") as h5:
        ds = hdf5._create(h5, "coverage", data.shape, data.dtype, name, level, resizable=False)
        if direct:
            hdf5._write(ds, data, 0, os.cpu_count() or 1)
        else:
            ds[...] = data
        h5.flush()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=12_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path("/tmp/ndshm-bench"))
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    source = args.data / f"readback-{args.rows}.h5"
    make_file(source, args.rows)
    data = read_h5py(source)
    out = args.data / "writes-out.h5"
    results = {}
    for label, codec in CODECS.items():
        times = {"h5py filter": [], "ndshm parallel chunks": []}
        for _ in range(args.reps):
            for kind in times:
                times[kind].append(write(out, data, codec, direct=kind.startswith("ndshm")))
        with h5py.File(out) as h5:  # the last file (ndshm's) reads back through stock h5py + hdf5plugin
            import hdf5plugin  # noqa: F401

            assert h5["coverage"][...].tobytes() == data.tobytes()
        size = out.stat().st_size
        base = median(times["h5py filter"])
        results[label] = {
            kind: {"median_s": median(t), "min_s": min(t), "max_s": max(t), "all_s": t,
                   "speedup_vs_h5py": base / median(t)}
            for kind, t in times.items()
        }  # fmt: skip
        results[label]["file_bytes"] = size
    out.unlink()
    lines = [f"## {data.nbytes / 1e6:.0f} MB of coverage records (1 MiB chunks), {os.cpu_count()} cores, "
             f"{args.reps} interleaved repetitions", "",
             "| codec | h5py filter s (range) | ndshm parallel s (range) | speedup | file MB |",
             "|---|---|---|---|---|"]  # fmt: skip
    for label, r in results.items():
        h, n = r["h5py filter"], r["ndshm parallel chunks"]
        lines.append(f"| {label} | {h['median_s']:.2f} ({h['min_s']:.2f}-{h['max_s']:.2f}) | "
                     f"{n['median_s']:.2f} ({n['min_s']:.2f}-{n['max_s']:.2f}) | "
                     f"{n['speedup_vs_h5py']:.2f}x | {r['file_bytes'] / 1e6:.0f} |")  # fmt: skip
    publish("writes", "bench_writes.py", sys.argv[1:], {"rows": args.rows, "codecs": results}, lines)


if __name__ == "__main__":
    main()
