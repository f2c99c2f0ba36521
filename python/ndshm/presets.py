"""Formats users have, as loadtxt keyword sets: ``ndshm.loadtxt(path, **ndshm.PRESETS["bismark-cov"])``.

The table of presets (file layout, columns read, dtype) is in README.md, "Loading text". Chromosome
names longer than 10 bytes raise ``ParseError`` (numpy would cut them silently); pass a ``dtype`` with
a wider ``chr`` field, or ``truncate=True``, to read such files.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PRESETS"]

COVERAGE5 = np.dtype([("chr", "S10"), ("pos", "<i4"), ("pct", "<f4"), ("c", "<i4"), ("t", "<i4")])

PRESETS: dict[str, dict[str, Any]] = {
    "coverage5": {"dtype": COVERAGE5, "delimiter": "\t"},
    "bismark-cov": {"dtype": COVERAGE5, "delimiter": "\t", "usecols": (0, 1, 3, 4, 5)},
    "bismark-cytosine": {
        "dtype": np.dtype(
            [
                ("chr", "S10"),
                ("pos", "<i4"),
                ("strand", "S1"),
                ("c", "<i4"),
                ("t", "<i4"),
                ("context", "S3"),
                ("trinucleotide", "S3"),
            ]
        ),  # fmt: skip
        "delimiter": "\t",
    },
    "bedgraph": {
        "dtype": np.dtype([("chr", "S10"), ("start", "<i4"), ("end", "<i4"), ("value", "<f4")]),
        "delimiter": "\t",
    },
}
