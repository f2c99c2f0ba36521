"""Functions that run in child processes (importable by every start method)."""

from __future__ import annotations

import multiprocessing as mp
import os
import re

import numpy as np

import ndshm

# the usual dtype of these files
COVERAGE = np.dtype([("chr", "S10"), ("pos", "<i4"), ("pct", "<f4"), ("c", "<i4"), ("t", "<i4")])


def numpy_preset(preset: str, chr_width: int) -> dict:
    """A preset's loadtxt options for numpy.loadtxt, chr given the width ndshm finds from the data
    (numpy gives a structure's S field without a size b'')."""
    options = ndshm.PRESETS[preset]
    dtype = options["dtype"]
    sized = [(n, f"S{chr_width}" if n == "chr" else dtype.fields[n][0]) for n in dtype.names]
    return {**options, "dtype": np.dtype(sized)}


def coverage_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(n, COVERAGE)
    out["chr"] = [f"chr{k}".encode() for k in rng.integers(1, 23, n)]
    out["pos"] = rng.integers(0, 2**31 - 1, n)
    out["pct"] = rng.random(n, dtype=np.float32) * 100
    out["c"] = rng.integers(0, 100, n)
    out["t"] = rng.integers(0, 100, n)
    return out


def produce(queue, n: int, seed: int) -> None:
    """Puts one shared array and exits at once."""
    queue.put((os.getpid(), ndshm.share(coverage_rows(n, seed))))


def produce_pipe(conn, n: int, seed: int) -> None:
    conn.send(ndshm.share(coverage_rows(n, seed)))
    conn.close()


def bump_and_make(view: np.ndarray) -> np.ndarray:
    """Writes into the caller's shared view (visible only without copies) and returns a new shared array."""
    assert ndshm.is_shared(view)
    view["c"] += 1
    result = ndshm.empty(view.shape, "<i8")
    result[:] = view["pos"]
    return result


def segment_name(array: np.ndarray) -> str:
    return ndshm.segment_of(array).name


def huge_kib(array: np.ndarray) -> int:
    """KiB of the mapping that holds array (C-contiguous) mapped by huge pages in this process
    (/proc/self/smaps), after reading a byte of each of its pages: only pages read count."""
    int(array.reshape(-1).view(np.uint8)[::4096].sum())
    address = array.__array_interface__["data"][0]
    inside, kib = False, 0
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                low, high = (int(x, 16) for x in head.split("-"))
                inside = low <= address < high
            elif inside and head in ("ShmemPmdMapped:", "AnonHugePages:"):
                kib += int(line.split()[1])
    return kib


def huge_pages_expected() -> bool:
    """Whether large shared arrays get huge pages here: Linux 6.1 (MADV_COLLAPSE), THP for shmem not
    set to "deny", NDSHM_HUGE_PAGES not 0."""
    version = re.match(r"(\d+)\.(\d+)", os.uname().release)
    if version is None:
        return False
    major, minor = int(version[1]), int(version[2])
    try:
        with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled") as f:
            setting = f.read()
    except OSError:
        return False
    return (major, minor) >= (6, 1) and "[deny]" not in setting and os.environ.get("NDSHM_HUGE_PAGES") != "0"


def substitute_shared_memory() -> None:
    """multiprocessing.shared_memory.SharedMemory replaced by ndshm's, in this process: CPython's own
    tests of it (test_shared_memory.py) then run against ndshm."""
    import multiprocessing.shared_memory

    multiprocessing.shared_memory.SharedMemory = ndshm.SharedMemory


class _Substituted:
    """A multiprocessing Process whose child runs with substitute_shared_memory() (a spawn or fork
    server child imports the stdlib afresh) in the session of the test that made it (a fork server
    keeps the environment of the test that started it)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.session = os.environ.get("NDSHM_SESSION", "")

    def run(self) -> None:
        os.environ["NDSHM_SESSION"] = self.session
        substitute_shared_memory()
        super().run()


class ForkProcess(_Substituted, mp.get_context("fork").Process):
    pass


class SpawnProcess(_Substituted, mp.get_context("spawn").Process):
    pass


class ForkserverProcess(_Substituted, mp.get_context("forkserver").Process):
    pass


def leave_named(name: str, session: str) -> str:
    """Creates a named segment, leaves it (no unlink) and returns this process's program id."""
    ndshm.SharedMemory(name, create=True, size=16, session=session).close()
    from ndshm import _core

    return _core.program_id()
