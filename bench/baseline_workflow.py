"""The users' workflow before ndshm, kept as the baseline for bench_convert.py.

Workers np.loadtxt one file each, copy the array into multiprocessing.shared_memory, send
(name, shape, dtype) through a Queue and wait for "done"; the parent attaches, writes the dataset
with h5py, then answers "done" so the worker can close() and unlink(). With --fsync the output and its
directory are fsynced at the end, as durable as ndshm convert's output (which is fsynced before it is
linked into place).

Run: python bench/baseline_workflow.py [--fsync] OUTPUT.h5 INPUT...
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
from multiprocessing import shared_memory
from pathlib import Path

import h5py
import numpy as np

COVERAGE = np.dtype([("chr", "S10"), ("pos", "<i4"), ("pct", "<f4"), ("c", "<i4"), ("t", "<i4")])


def worker(path: str, out_q: mp.Queue, in_q: mp.Queue) -> None:
    data = np.loadtxt(path, dtype=COVERAGE, delimiter="\t")
    shm = shared_memory.SharedMemory(create=True, size=data.nbytes)
    np.ndarray(data.shape, data.dtype, buffer=shm.buf)[:] = data
    out_q.put((path, shm.name, data.shape, data.dtype.descr))
    in_q.get()  # "done"
    shm.close()
    shm.unlink()


def fsync(path: str) -> None:
    """The file's data and its directory entry on disk."""
    for target, flags in ((path, os.O_RDONLY), (os.path.dirname(os.path.abspath(path)), os.O_DIRECTORY)):
        fd = os.open(target, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def main(output: str, inputs: list[str], durable: bool) -> None:
    out_q, in_q = mp.Queue(), mp.Queue()
    procs = [mp.Process(target=worker, args=(p, out_q, in_q)) for p in inputs]
    for p in procs:
        p.start()
    with h5py.File(output, "w") as h5:
        for _ in inputs:
            path, name, shape, descr = out_q.get()
            shm = shared_memory.SharedMemory(name=name)
            array = np.ndarray(shape, np.dtype([tuple(f) for f in descr]), buffer=shm.buf)
            h5.create_dataset(Path(path).name, data=array)
            del array
            shm.close()
            in_q.put("done")
    for p in procs:
        p.join()
    if durable:
        fsync(output)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fsync", action="store_true", help="fsync the output and its directory at the end")
    parser.add_argument("output")
    parser.add_argument("inputs", nargs="+")
    args = parser.parse_args()
    main(args.output, args.inputs, args.fsync)
