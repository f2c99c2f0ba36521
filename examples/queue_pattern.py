"""Children load text files and hand the arrays to the parent through a Queue, without copies.

The stdlib version of this needs SharedMemory, name/shape/dtype messages, a "done" handshake and
close()/unlink() calls, and still leaks and warns. With ndshm a child just puts the array.

Run: python examples/queue_pattern.py [FILE ...]   (without files it writes two small demo files)
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import tempfile
from pathlib import Path

import numpy as np

import ndshm


def load(path: str, queue: mp.Queue) -> None:
    array = ndshm.loadtxt(path, **ndshm.PRESETS["coverage5"])  # parsed straight into shared memory
    queue.put((path, array))  # pickles as a small handle; this process may exit right away


def demo_files(folder: Path) -> list[str]:
    paths = []
    for k in range(2):
        path = folder / f"sample{k}.cov"
        rows = (f"chr{k + 1}\t{100 + i}\t{i % 100}.5\t{i % 7}\t{i % 5}\n" for i in range(5000))
        path.write_text("".join(rows))
        paths.append(str(path))
    return paths


def main(paths: list[str]) -> dict[str, np.ndarray]:
    queue: mp.Queue = mp.Queue()
    workers = [mp.Process(target=load, args=(p, queue)) for p in paths]
    for w in workers:
        w.start()
    arrays = dict(queue.get() for _ in paths)
    for w in workers:
        w.join()
    return arrays


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        files = sys.argv[1:] or demo_files(Path(folder))
        arrays = main(files)
        for path in files:
            array = arrays[path]
            print(
                f"{Path(path).name}: {array.shape[0]} rows, shared={ndshm.is_shared(array)}, "
                f"sum(c)={int(array['c'].sum())}"
            )
