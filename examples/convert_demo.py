"""The main job end to end: generate two coverage files, convert them into one HDF5 file with
`ndshm convert`, and read it back with plain h5py.

Run: python examples/convert_demo.py [ROWS]   (default 1,000,000 rows per file, about 30 MB each)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np


def write_coverage(path: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    block = rng.integers(0, 100, size=(rows, 3))
    with open(path, "w") as f:
        for i, (pct, c, t) in enumerate(block):
            f.write(f"chr{i % 22 + 1}\t{10_000 + 7 * i}\t{pct}.{c % 100:02d}\t{c}\t{t}\n")


def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        inputs = [Path(folder) / f"sample{k}.cov" for k in range(2)]
        for seed, path in enumerate(inputs):
            write_coverage(path, rows, seed)
        output = Path(folder) / "coverage.h5"
        command = ["ndshm", "convert", *map(str, inputs), "-o", str(output), "--format", "coverage5"]
        print("$", " ".join(c if "/" not in c else Path(c).name for c in command))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", *command], check=True)
        elapsed = time.perf_counter() - t0
        text = sum(p.stat().st_size for p in inputs)
        print(f"converted {text / 1e6:.0f} MB of text in {elapsed:.2f} s ({text / elapsed / 1e6:.0f} MB/s)")
        with h5py.File(output, "r") as h5:
            for name, dataset in h5.items():
                first = dataset[0]
                print(f"{name}: {dataset.shape[0]} rows of {dataset.dtype}, first row {first}")
                print(f"  source {Path(dataset.attrs['source']).name}, {dataset.attrs['rows']} rows")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
