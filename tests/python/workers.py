"""Functions that run in child processes (importable by every start method)."""

from __future__ import annotations

import os

import numpy as np

import ndshm

COVERAGE = ndshm.PRESETS["coverage5"]["dtype"]


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
