"""Reading an HDF5 dataset back: ndshm.read_hdf5 vs h5py's own read, and N workers' memory over one
read-back vs N h5py readers.

Run: python bench/bench_readback.py [--rows 12000000] [--reps 5] [--workers 4]
Writes bench/results/<date>-<machine>/readback.{json,md}. The dataset: five-column coverage records
(coverage5 records, chr S10: 26 bytes a row) in 1 MiB chunks at gzip level 1, as `ndshm convert
--compression gzip:1` writes them. Page cache warm; the readers alternate within each repetition
(h5py, the zlib stand-in, read_hdf5); medians with the range.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

import ndshm
from _common import _pss, _tree_and_brokers, median, publish, warm

# The coverage5 preset with a fixed chr width (the preset's S takes each file's longest name)
COVERAGE = np.dtype([("chr", "S10"), ("pos", "<i4"), ("pct", "<f4"), ("c", "<i4"), ("t", "<i4")])
CHUNK_ROWS = (1 << 20) // COVERAGE.itemsize  # ndshm.hdf5.CHUNK_BYTES: what convert writes


def make_file(path: Path, rows: int) -> None:
    """Coverage-like records (chromosomes in blocks, positions rising, small counts), chunked as convert
    writes them."""
    if path.exists():
        return
    rng = np.random.default_rng(1)
    data = np.empty(rows, COVERAGE)
    data["chr"] = np.char.add(b"chr", (np.arange(rows) * 22 // rows + 1).astype("S2"))
    data["pos"] = np.cumsum(rng.integers(1, 200, rows, dtype=np.int32))
    data["c"] = rng.poisson(6, rows)
    data["t"] = rng.poisson(4, rows)
    total = np.maximum(data["c"] + data["t"], 1)
    data["pct"] = np.round(data["c"] / total * 100, 2)
    tmp = path.with_suffix(".tmp")
    with h5py.File(tmp, "w") as h5:
        h5.create_dataset("coverage", data=data, chunks=(CHUNK_ROWS,), compression="gzip", compression_opts=1)
    tmp.rename(path)


def read_h5py(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as h5:
        return h5["coverage"][...]


def read_zlib_threads(path: Path, threads: int = 2) -> np.ndarray:
    """The pure-Python stand-in: raw chunks (read_direct_chunk) inflated by zlib in threads."""
    with h5py.File(path, "r") as h5:
        ds = h5["coverage"]
        out = np.empty(ds.shape, ds.dtype)
        raw = out.view(np.uint8)
        rows = ds.chunks[0]
        origins = range(0, ds.shape[0], rows)
        stored = [ds.id.read_direct_chunk((o,))[1] for o in origins]

    def inflate(k: int) -> None:
        data = zlib.decompress(stored[k])
        begin = k * rows * COVERAGE.itemsize
        end = min(begin + len(data), raw.size)
        raw[begin:end] = np.frombuffer(data, np.uint8, end - begin)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(inflate, range(len(stored))))
    return out


def read_ndshm(path: Path, threads: int = 2) -> np.ndarray:
    return ndshm.read_hdf5(path, "coverage", threads=threads)


def bench_speed(path: Path, reps: int) -> dict:
    expected = read_h5py(path)
    readers = {
        "h5py": read_h5py,
        "zlib in 2 threads (Python)": read_zlib_threads,
        "ndshm.read_hdf5": read_ndshm,
    }
    for name, reader in readers.items():  # each checked once, and warmed up
        got = reader(path)
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), name
        del got
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(reps):
        for name, reader in readers.items():
            t0 = time.perf_counter()
            array = reader(path)
            times[name].append(time.perf_counter() - t0)
            del array
    nbytes = expected.nbytes
    base = median(times["h5py"])
    return {name: {"median_s": median(t), "min_s": min(t), "max_s": max(t), "all_s": t,
                   "gb_per_s": nbytes / median(t) / 1e9, "speedup_vs_h5py": base / median(t),
                   "speedup_range": [max(times["h5py"]) / max(t), min(times["h5py"]) / min(t)]}
            for name, t in times.items()}  # fmt: skip


# ---------------------------------------------------------------- N workers: memory
def _worker_shared(text: str, ready, release) -> None:
    array = ndshm.attach(text, readonly=True)
    float(array["pct"].mean())  # every page of the field touched
    array["c"].sum()
    ready.release()
    release.wait()


def _worker_h5py(path: str, ready, release) -> None:
    with h5py.File(path, "r") as h5:
        array = h5["coverage"][...]
    float(array["pct"].mean())
    array["c"].sum()
    ready.release()
    release.wait()


def _pss_of(root: int) -> int:
    return sum(_pss(p) for p in _tree_and_brokers(root))


def bench_memory(path: Path, workers: int) -> dict:
    import os

    ctx = mp.get_context("forkserver")
    results = {}
    for mode in ("h5py readers", "ndshm.read_hdf5 shared"):
        ready, release = ctx.Semaphore(0), ctx.Event()
        before = _pss_of(os.getpid())
        array = read_ndshm(path) if mode.startswith("ndshm") else None
        procs = []
        for _ in range(workers):
            if array is not None:
                p = ctx.Process(target=_worker_shared, args=(ndshm.handle(array), ready, release))
            else:
                p = ctx.Process(target=_worker_h5py, args=(str(path), ready, release))
            p.start()
            procs.append(p)
        for _ in procs:
            ready.acquire()
        held = _pss_of(os.getpid())
        workers_pss = [_pss(p.pid) for p in procs]
        release.set()
        for p in procs:
            p.join()
        del array
        results[mode] = {
            "pss_all_mib": (held - before) / 2**20,
            "pss_per_worker_mib": [w / 2**20 for w in workers_pss],
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=12_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--data", type=Path, default=Path("/tmp/ndshm-bench"))
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    path = args.data / f"readback-{args.rows}.h5"
    make_file(path, args.rows)
    warm(path)
    nbytes = args.rows * COVERAGE.itemsize
    speed = bench_speed(path, args.reps)
    memory = bench_memory(path, args.workers)
    results = {"rows": args.rows, "dataset_bytes": nbytes, "file_bytes": path.stat().st_size,
               "speed": speed, "memory": memory}  # fmt: skip
    file_mb = path.stat().st_size / 1e6
    lines = [f"## {nbytes / 1e6:.0f} MB coverage dataset, gzip-1 chunks of 1 MiB ({file_mb:.0f} MB file), "
             f"2 cores, {args.reps} interleaved repetitions", "",
             "| reader | median s | range s | GB/s | vs h5py (range) |", "|---|---|---|---|---|"]  # fmt: skip
    for name, r in speed.items():
        lo, hi = sorted(r["speedup_range"])
        lines.append(f"| {name} | {r['median_s']:.3f} | {r['min_s']:.3f}-{r['max_s']:.3f} | "
                     f"{r['gb_per_s']:.3f} | {r['speedup_vs_h5py']:.2f}x ({lo:.2f}-{hi:.2f}) |")  # fmt: skip
    lines += ["", f"## {args.workers} workers holding the dataset (PSS: Pss_Anon + Pss_Shmem)", "",
              "| mode | PSS of all processes MiB | per worker MiB |", "|---|---|---|"]  # fmt: skip
    for name, r in memory.items():
        per = ", ".join(f"{w:.0f}" for w in r["pss_per_worker_mib"])
        lines.append(f"| {name} | {r['pss_all_mib']:.0f} | {per} |")
    publish("readback", "bench_readback.py", sys.argv[1:], results, lines)


if __name__ == "__main__":
    main()
