"""ndshm.read_hdf5: an HDF5 dataset (or some of its rows or fields) read back into shared memory.

h5py finds the stored chunks (H5Dchunk_iter) and the filter pipeline; where ndshm's C++ core decodes
every filter (deflate, shuffle, fletcher32, and lzf, zstd, blosc where their libraries were found at
build time) and the file's element type is the array's byte for byte, C++ threads read and decode the
chunks straight into the shared array with the GIL released. Everything else (other filters, type
conversions, virtual or external storage, strided rows) is read by h5py into the same shared array:
one answer, h5py's, either way.
"""

from __future__ import annotations

import functools
import operator
import os
from typing import Any

import numpy as np

from . import _core
from ._array import _check_dtype, _new

__all__ = ["ChunkError", "read_hdf5"]

ChunkError = _core.ChunkError

# Filters HDF5 itself registers; any other needs hdf5plugin imported for h5py to read it.
_BUILTIN_FILTERS = {1, 2, 3, 4, 5, 6, 32000}


def read_hdf5(
    path: str | os.PathLike,
    dataset: str,
    *,
    rows: slice | tuple[int, int] | None = None,
    fields: str | list[str] | tuple[str, ...] | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Dataset `dataset` of the HDF5 file at path in shared memory, equal to h5py's
    ``ds.fields(fields)[rows]`` (dtype, shape and bytes).

    rows: a slice (or (start, stop)) of the first dimension. fields: one field of a compound type (a
    plain array, as h5py gives) or a list of them (a packed compound). threads: decoding threads
    (default: all cores). A chunk that cannot be decoded raises ChunkError naming the dataset and the
    chunk; no shared memory is left behind.
    """
    import h5py

    path = os.fspath(path)
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    with h5py.File(path, "r") as h5:
        try:
            ds = h5[dataset]
        except KeyError:
            raise KeyError(f"{path} has no dataset {dataset!r}") from None
        if not isinstance(ds, h5py.Dataset):
            raise TypeError(f"{path}:{dataset} is a {type(ds).__name__}, not a dataset")
        return _Reader(path, ds, fields).read(rows, threads or os.cpu_count() or 1)


class _Reader:
    """One dataset and the fields asked for: the output dtype and each field's bytes."""

    def __init__(self, path: str, ds: Any, fields: Any) -> None:
        self.path, self.ds, self.name = path, ds, ds.name
        base = ds.dtype
        self.extract = fields if isinstance(fields, str) else None
        self.copies: list[tuple[int, int, int]] = []  # (from, to, size) bytes of each element
        if fields is None:
            self.dtype = base
        else:
            names = [fields] if isinstance(fields, str) else list(fields)
            if base.names is None:
                raise ValueError(f"{path}:{self.name} is of type {base}, which has no fields")
            missing = [n for n in names if n not in base.names]
            if missing or not names:
                asked = ", ".join(map(repr, missing)) or "(none asked)"
                known = ", ".join(base.names)
                raise ValueError(f"{path}:{self.name} has no field {asked}; its fields: {known}")
            # packed, in the order asked: what h5py's ds.fields(names) gives
            self.dtype = np.dtype([(n, base.fields[n][0]) for n in names])
            self.copies = [
                (base.fields[n][1], self.dtype.fields[n][1], base.fields[n][0].itemsize) for n in names
            ]
        if self.dtype.hasobject:
            raise TypeError(f"{path}:{self.name} holds variable-length data ({self.dtype}); only fixed-size "
                            "types can live in shared memory (pick other fields)")  # fmt: skip
        self.dtype = _plain(self.dtype)
        _check_dtype(self.dtype)

    def read(self, rows: Any, threads: int) -> np.ndarray:
        ds = self.ds
        shape = ds.shape
        if shape is None:
            raise ValueError(f"{self.path}:{self.name} has no dataspace (an empty attribute-like dataset)")
        if not shape:
            if rows is not None:
                raise ValueError(f"{self.path}:{self.name} is a scalar dataset: it has no rows")
            return self._finish(self._through_h5py((), ()))
        begin, end, step = _rows(rows, shape[0], f"{self.path}:{self.name}")
        count = len(range(begin, end, step))
        out_shape = (count, *shape[1:])
        if step != 1 or not self._fast():
            return self._finish(self._through_h5py(out_shape, np.s_[begin:end:step]))
        out = _new(out_shape, self.dtype)  # every page allocated now, on all cores (huge where it can)
        try:
            if out.nbytes:
                self._decode(out, begin, end, threads)
        except ChunkError as error:
            # the segment goes now, not with the traceback's frames (raised outside: no context kept)
            error.__traceback__ = None
            del out
            failure = self._chunk_error(error)
        else:
            return self._finish(out)
        raise failure

    def _finish(self, out: np.ndarray) -> np.ndarray:
        return out[self.extract] if self.extract is not None else out

    # -- the fast path -------------------------------------------------------------------------------
    def _fast(self) -> bool:
        """True if the C++ core reads this dataset as h5py would: an element type stored as NumPy holds
        it, contiguous or chunked storage in this file, filters it decodes."""
        import h5py

        ds, plist = self.ds, self.ds.id.get_create_plist()
        if ds.dtype.hasobject:  # variable-length members: their bytes in the file are heap references
            return False
        try:
            if h5py.h5t.py_create(ds.dtype) != ds.id.get_type():
                return False
        except TypeError:
            return False
        if plist.get_external_count():
            return False
        layout = plist.get_layout()
        if layout == h5py.h5d.CONTIGUOUS:
            return not self.pipeline
        return layout == h5py.h5d.CHUNKED and all(f[0] in _decoded() for f in self.pipeline)

    @functools.cached_property
    def pipeline(self) -> list[tuple[int, list[int]]]:
        return filter_pipeline(self.ds)

    def _decode(self, out: np.ndarray, begin: int, end: int, threads: int) -> None:
        import h5py

        ds = self.ds
        address, nbytes = out.__array_interface__["data"][0], out.nbytes
        itemsize = ds.dtype.itemsize
        out_itemsize = self.dtype.itemsize if self.copies else 0
        shape = list(ds.shape)
        if ds.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS:
            offset = ds.id.get_offset()
            if offset is None:  # never written: all fill value
                self._fill(out)
                return
            _core.read_contiguous(self.path, offset, shape, itemsize, begin, end, self.copies, out_itemsize,
                                  address, nbytes, threads)  # fmt: skip
            return
        self.chunks = chunks = _stored_chunks(ds)
        grid = 1
        for extent, size in zip(ds.shape, ds.chunks, strict=True):
            grid *= -(-extent // size)
        if len(chunks) < grid:  # some chunks never written: their elements read as the fill value
            self._fill(out)
        offsets = [c.byte_offset for c in chunks]
        sizes = [c.size for c in chunks]
        masks = [c.filter_mask for c in chunks]
        origins = [x for c in chunks for x in c.chunk_offset]
        _core.read_chunked(self.path, shape, list(ds.chunks), itemsize, begin, end, self.pipeline,
                           offsets, sizes, masks, origins, self.copies, out_itemsize, address, nbytes,
                           threads)  # fmt: skip

    def _fill(self, out: np.ndarray) -> None:
        """Sets out to the fill value HDF5 reads where nothing was written (zeros, as h5py's own
        buffer, where HDF5 writes none)."""
        import h5py

        plist = self.ds.id.get_create_plist()
        if plist.get_fill_time() == h5py.h5d.FILL_TIME_NEVER:
            value = np.zeros((), self.ds.dtype)
        else:
            value = np.array(self.ds.fillvalue, self.ds.dtype)
        if self.copies:
            value = np.array(tuple(value[n] for n in self.dtype.names), self.dtype)
        if value.tobytes().strip(b"\0"):
            out[...] = value

    def _chunk_error(self, error: Any) -> ChunkError:
        chunk = self.chunks[error.chunk]
        message = (f"{self.path}: dataset {self.name}: chunk at {tuple(chunk.chunk_offset)} (file offset "
                   f"{chunk.byte_offset}, {chunk.size} bytes): {error.reason}")  # fmt: skip
        result = ChunkError(message)
        result.dataset, result.chunk, result.reason = self.name, tuple(chunk.chunk_offset), error.reason
        return result

    # -- everything else -----------------------------------------------------------------------------
    def _through_h5py(self, shape: tuple, selection: Any) -> np.ndarray:
        """h5py reads into the shared array (HDF5 converts to its compound type, field by name)."""
        if any(f[0] not in _BUILTIN_FILTERS for f in self.pipeline):
            _import_plugins()
        out = _new(shape, self.dtype)
        try:
            if out.size:
                self.ds.read_direct(out, source_sel=selection if shape else None)
        except OSError as error:
            error.__traceback__ = None  # its frames hold the array: the segment goes now
            del out
            failure = OSError(f"{self.path}: dataset {self.name}: {error}")
        else:
            return out
        raise failure


def filter_pipeline(ds: Any) -> list[tuple[int, list[int]]]:
    """The filters of an h5py dataset, first applied first: (filter id, its client data values)."""
    plist = ds.id.get_create_plist()
    filters = map(plist.get_filter, range(plist.get_nfilters()))
    return [(code, list(values)) for code, _flags, values, _name in filters]


def _plain(dtype: np.dtype) -> np.dtype:
    """dtype without h5py's metadata (string encodings, enum names), which NumPy's descr cannot hold."""
    if dtype.names is not None:
        fields = [dtype.fields[n] for n in dtype.names]
        return np.dtype({"names": list(dtype.names), "formats": [_plain(f[0]) for f in fields],
                         "offsets": [f[1] for f in fields], "itemsize": dtype.itemsize})  # fmt: skip
    if dtype.subdtype is not None:
        return np.dtype((_plain(dtype.subdtype[0]), dtype.subdtype[1]))
    return np.dtype(dtype.str) if dtype.metadata else dtype


def _rows(rows: Any, count: int, where: str) -> tuple[int, int, int]:
    """(begin, end, step) of a rows argument over count rows."""
    if rows is None:
        return 0, count, 1
    if isinstance(rows, tuple) and len(rows) == 2:
        rows = slice(*rows)
    if not isinstance(rows, slice):
        raise TypeError(f"rows must be a slice or (start, stop), not {rows!r}")
    if rows.step is not None and operator.index(rows.step) <= 0:
        raise ValueError(f"{where}: rows need a positive step, not {rows.step}")
    return rows.indices(count)


def _stored_chunks(ds: Any) -> list[Any]:
    """Every stored chunk of ds (StoreInfo: chunk_offset, filter_mask, byte_offset, size)."""
    chunks: list[Any] = []
    try:
        ds.id.chunk_iter(chunks.append)  # HDF5 >= 1.12.3 / 1.14: one pass over the index
    except (AttributeError, NotImplementedError):
        chunks = [ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks())]
    return [c for c in chunks if c.byte_offset is not None]


@functools.cache
def _decoded() -> frozenset[int]:
    return frozenset(_core.decoded_filters())


@functools.cache
def _import_plugins() -> None:
    """hdf5plugin registers zstd, blosc and others with h5py's libhdf5, when installed."""
    try:
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass
