"""Formats users have, as loadtxt keyword sets: ``ndshm.loadtxt(path, **ndshm.PRESETS["bismark-cov"])``.

The table of presets (file layout, columns read, dtype) is in README.md, "Loading text". Names are
``S`` without a size: each load gives ``chr`` the width of its longest name (``chrUn_gl000220``,
``HLA-DRB1*15:01:01:01``), found while its rows are planned; contexts stay ``S3``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PRESETS"]

COVERAGE5 = np.dtype([("chr", "S"), ("pos", "<i4"), ("pct", "<f4"), ("c", "<i4"), ("t", "<i4")])

PRESETS: dict[str, dict[str, Any]] = {
    "coverage5": {"dtype": COVERAGE5, "delimiter": "\t"},
    "bismark-cov": {"dtype": COVERAGE5, "delimiter": "\t", "usecols": (0, 1, 3, 4, 5)},
    "bismark-cytosine": {
        "dtype": np.dtype(
            [
                ("chr", "S"),
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
        "dtype": np.dtype([("chr", "S"), ("start", "<i4"), ("end", "<i4"), ("value", "<f4")]),
        "delimiter": "\t",
    },
}
