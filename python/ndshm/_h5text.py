"""The text side of read_hdf5 for the command line: `ndshm cat` (rows as text) and `ndshm ls-h5`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, TextIO

import numpy as np

from .hdf5_read import read_hdf5

__all__ = ["cat", "describe_file"]

BLOCK_BYTES = 16 << 20  # rows read back and printed at a time: memory stays small whatever the dataset
SEPARATORS = {"tsv": "\t", "csv": ","}
FILTER_NAMES = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset",
                32000: "lzf", 32001: "blosc", 32004: "lz4", 32008: "bitshuffle", 32015: "zstd",
                32026: "blosc2"}  # fmt: skip


def _columns(block: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """(name, 1-d or 2-d column) of each printed column: compound fields in order, subarrays and
    the dimensions after rows flattened, one column each."""
    rows = block.shape[0]
    if block.dtype.names is None:
        flat = block.reshape(rows, -1) if block.ndim > 1 else block.reshape(rows, 1)
        for k in range(flat.shape[1]):
            yield (f"{k}" if flat.shape[1] > 1 else "value"), flat[:, k]
        return
    for name in block.dtype.names:
        field = block[name]
        flat = field.reshape(rows, -1)
        for k in range(flat.shape[1]):
            yield (name if flat.shape[1] == 1 else f"{name}[{k}]"), flat[:, k]


def _text(column: np.ndarray) -> list[str]:
    """Each value as text: numbers in their shortest round-trip form, strings as ASCII (other bytes
    escaped), booleans as 0/1 (what numpy.loadtxt reads back)."""
    kind = column.dtype.kind
    if kind == "S":
        return [v.decode("ascii", "backslashreplace") for v in column.tolist()]
    if kind == "b":
        return ["1" if v else "0" for v in column.tolist()]
    if kind in "iu":
        return [str(v) for v in column.tolist()]
    if kind in "fc":
        return column.astype(str).tolist()  # NumPy's shortest repr for the type (float32 too)
    return [str(v) for v in column.tolist()]


def _quote(cell: str, separator: str) -> str:
    if separator == "," and any(c in cell for c in ',"\n'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def cat(path: str | os.PathLike, dataset: str, out: TextIO, *, rows: slice | None = None,
        format: str = "tsv", header: bool = False) -> int:  # fmt: skip
    """Writes rows of dataset to out as text, one line a row; returns the rows written."""
    import h5py

    separator = SEPARATORS[format]
    with h5py.File(path, "r") as h5:
        if dataset not in h5 or not isinstance(h5[dataset], h5py.Dataset):
            raise KeyError(f"{path} has no dataset {dataset!r}")
        shape, dtype = h5[dataset].shape, h5[dataset].dtype
    if not shape:
        raise ValueError(f"{path}:{dataset} is a scalar dataset: it has no rows")
    begin, end, _ = (rows or slice(None)).indices(shape[0])
    row_bytes = max(1, dtype.itemsize * int(np.prod(shape[1:])))
    step = max(1, BLOCK_BYTES // row_bytes)
    written = 0
    for first in range(begin, max(begin, end), step):
        block = read_hdf5(path, dataset, rows=slice(first, min(first + step, end)))
        columns = list(_columns(block))
        if header and first == begin:
            out.write(separator.join(_quote(name, separator) for name, _ in columns) + "\n")
        texts = [_text(column) for _, column in columns]
        if separator == ",":
            texts = [[_quote(c, separator) for c in t] for t in texts]
        out.write("".join(separator.join(cells) + "\n" for cells in zip(*texts, strict=True)))
        written += len(block)
        del block
    return written


def describe_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """One entry per dataset: name, rows, shape, dtype, storage (contiguous, or chunks and filters),
    and the source file convert recorded."""
    import h5py

    entries: list[dict[str, Any]] = []
    with h5py.File(path, "r") as h5:

        def visit(name: str, item: Any) -> None:
            if not isinstance(item, h5py.Dataset):
                return
            plist = item.id.get_create_plist()
            codes = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
            filters = "+".join(FILTER_NAMES.get(code, f"filter{code}") for code in codes)
            storage = "contiguous" if item.chunks is None else f"chunks {item.chunks[0]} {filters}".rstrip()
            source = item.attrs.get("source")
            entries.append(
                {
                    "name": "/" + name,
                    "rows": item.shape[0] if item.shape else None,
                    "shape": item.shape,
                    "dtype": item.dtype,
                    "storage": storage,
                    "source": source.decode() if isinstance(source, bytes) else source,
                }
            )

        h5.visititems(visit)
    return entries
