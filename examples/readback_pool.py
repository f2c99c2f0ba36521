"""Convert coverage files into one HDF5 file, read its dataset back once into shared memory, and let
worker processes analyse it: per-chromosome methylation means. Every worker maps the one copy; the same
workers reading the file with h5py each hold a copy of their own (PSS from /proc/<pid>/smaps_rollup).

Run: python examples/readback_pool.py [ROWS]
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

import ndshm

DTYPE = "chr:S5,pos:i4,pct:f4,c:i4,t:i4"
WORKERS = 2


def demo_inputs(folder: Path, rows: int) -> list[Path]:
    """Two coverage files (chromosome, position, methylation %, methylated, unmethylated counts)."""
    paths = []
    for k in range(2):
        lines = []
        for i in range(rows // 2):
            c, t = (i * 7 + k) % 11, (i * 3 + k) % 5
            pct = 100 * c / (c + t) if c + t else 0
            lines.append(f"chr{i % 22 + 1}\t{1000 + i}\t{pct:.2f}\t{c}\t{t}\n")
        path = folder / f"sample{k}.cov"
        path.write_text("".join(lines))
        paths.append(path)
    return paths


def pss_bytes() -> int:
    """This process's proportional share of anonymous and shared memory."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:])
    return sum(int(fields[k].split()[0]) * 1024 for k in ("Pss_Anon", "Pss_Shmem"))


def means(coverage: np.ndarray, chromosomes: list[bytes]) -> dict[bytes, float]:
    return {c: float(coverage["pct"][coverage["chr"] == c].mean()) for c in chromosomes}


def shared_worker(coverage: np.ndarray, chromosomes: list[bytes], results) -> None:
    """coverage arrives as a handle (ndshm arrays pickle so): mapped, not copied."""
    before = pss_bytes()
    int(coverage.view(np.uint8).max())  # every page read
    grown = pss_bytes() - before
    results.put((means(coverage, chromosomes), grown))


def h5py_worker(path: str, chromosomes: list[bytes], results) -> None:
    before = pss_bytes()
    with h5py.File(path, "r") as h5:
        coverage = h5["data"][...]
    grown = pss_bytes() - before
    results.put((means(coverage, chromosomes), grown))


def run(worker, source, chromosomes: list[bytes]) -> tuple[dict[bytes, float], int]:
    """WORKERS processes, each given every WORKERS-th chromosome; their means and their memory growth."""
    ctx = mp.get_context("forkserver")
    results = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(source, chromosomes[k::WORKERS], results)) for k in range(WORKERS)
    ]
    for p in procs:
        p.start()
    found, grown = {}, 0
    for _ in procs:
        part, memory = results.get()
        found.update(part)
        grown += memory
    for p in procs:
        p.join()
    return found, grown


def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        inputs = demo_inputs(Path(folder), rows)
        output = Path(folder) / "coverage.h5"
        print(f"$ ndshm convert {' '.join(p.name for p in inputs)} -o coverage.h5 --dtype {DTYPE} "
              "--delimiter '\\t' --layout concat --compression gzip:1")  # fmt: skip
        ndshm.to_hdf5(inputs, output, dtype=DTYPE, delimiter="\t", layout="concat", compression="gzip:1",
                      progress=False)  # fmt: skip
        coverage = ndshm.read_hdf5(output, "data")  # one copy, in shared memory
        size = coverage.nbytes / 2**20
        print(f"read back: {len(coverage)} rows, {size:.1f} MiB, shared={ndshm.is_shared(coverage)}")
        chromosomes = sorted(set(coverage["chr"].tolist()), key=lambda c: int(c[3:]))
        shared, shared_memory = run(shared_worker, coverage, chromosomes)
        private, private_memory = run(h5py_worker, str(output), chromosomes)
        assert shared == private
        for c in chromosomes:
            print(f"{c.decode()}: mean methylation {shared[c]:.3f}%")
        print(f"memory the {WORKERS} workers took for the data: {shared_memory / 2**20:.1f} MiB mapping the "
              f"shared read-back, {private_memory / 2**20:.1f} MiB reading it with h5py")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400_000)
