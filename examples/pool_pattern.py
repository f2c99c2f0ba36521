"""A Pool loads text files in parallel; the arrays come back as return values, without copies.

Run: python examples/pool_pattern.py [FILE ...]   (without files it writes two small demo files)
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import tempfile
from pathlib import Path

import numpy as np

import ndshm
from queue_pattern import demo_files


def load(path: str) -> np.ndarray:
    return ndshm.loadtxt(path, **ndshm.PRESETS["coverage5"])  # returned as a handle, no copy


def main(paths: list[str]) -> list[np.ndarray]:
    with mp.Pool(2) as pool:
        return pool.map(load, paths)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        files = sys.argv[1:] or demo_files(Path(folder))
        for path, array in zip(files, main(files), strict=True):
            print(
                f"{Path(path).name}: {array.shape[0]} rows, shared={ndshm.is_shared(array)}, "
                f"sum(c)={int(array['c'].sum())}"
            )
