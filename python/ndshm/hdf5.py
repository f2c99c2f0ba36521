"""ndshm.to_hdf5: many text files in, one HDF5 file out; loaded in parallel, written atomically.

HDF5 is reached only through h5py (one copy of libhdf5 in the process: h5py #2453, #1541). The output
is built in an unnamed file (O_TMPFILE) in the target's directory and linked into place only when
complete, so an interrupted run (Ctrl-C, kill, kill -9, a parse error, a full disk) leaves the target
as it was and no temporary file behind.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from ._loading import Loaded, Pipeline, Windowed, runner_for, windows
from ._loadtxt import COMPRESSED, string_widths, with_widths
from .hdf5_read import filter_pipeline
from .presets import PRESETS

__all__ = ["parse_dtype_spec", "to_hdf5"]

CHUNK_BYTES = 1 << 20  # 1 MiB chunks: HDF5's advice is 10 KiB-1 MiB; larger chunks compress faster
BLOCK_BYTES = 32 << 20  # rows fetched from another node come in pieces of about this size
# A plain input larger than this is loaded in windows of this many bytes of text, appended to its dataset
# as they come: memory stays about two windows' rows (workers + 1 with processes) whatever the input's size.
WINDOW_BYTES = 256 << 20


def parse_dtype_spec(spec: str) -> np.dtype:
    """'chr:S10,pos:i4,pct:f4' -> a structured dtype; a bare type ('f8') -> that dtype."""
    if ":" not in spec:
        return np.dtype(spec)
    fields = []
    for part in spec.split(","):
        name, _, kind = part.strip().partition(":")
        if not name or not kind:
            raise ValueError(f"bad field {part!r} in dtype spec {spec!r}: use name:type, e.g. pos:i4")
        fields.append((name, kind))
    return np.dtype(fields)


def _dataset_names(paths: Sequence[Path]) -> tuple[list[str], list[str]]:
    """One dataset name per input (file name without text/compression suffixes); collisions renamed."""
    names, notes, seen = [], [], set()
    for path in paths:
        base = path.name
        for suffix in COMPRESSED:
            base = base.removesuffix(suffix)
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", base) or "data"
        name, k = base, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        if name != base:
            notes.append(f"{path}: dataset name {base!r} taken, written as {name!r}")
        seen.add(name)
        names.append(name)
    return names, notes


BLOSC_CODECS = ("blosclz", "lz4", "lz4hc", "zlib", "zstd")


def _compression(spec: str | None) -> tuple[str | None, Any]:
    """(filter, its settings) from none, gzip[:0-9], lzf, zstd[:1-22] or blosc[:codec[:0-9]]."""
    if spec in (None, "none"):
        return None, None
    name, _, level = spec.partition(":")
    try:
        if name == "gzip" and (not level or 0 <= int(level) <= 9):
            return "gzip", int(level) if level else 4
        if name == "lzf" and not level:
            return "lzf", None
        if name == "zstd" and (not level or 1 <= int(level) <= 22):
            settings: Any = int(level) if level else 3
        elif name == "blosc":
            codec, _, clevel = level.partition(":")
            settings = (codec or "lz4", int(clevel) if clevel else 5)
            if settings[0] not in BLOSC_CODECS or not 0 <= settings[1] <= 9:
                raise ValueError
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"compression {spec!r} is not supported: use none, gzip[:0-9], lzf, zstd[:1-22] "
                         f"or blosc[:{'|'.join(BLOSC_CODECS)}[:0-9]]") from None  # fmt: skip
    _plugin_filter(name, settings)  # hdf5plugin present: say so now, before any work
    return name, settings


def _plugin_filter(name: str, settings: Any) -> dict[str, Any]:
    """h5py dataset keywords for a filter that hdf5plugin registers (readers import hdf5plugin too)."""
    try:
        import hdf5plugin
    except ImportError:
        raise ValueError(f"compression {name} needs hdf5plugin: pip install 'ndshm[compress]'") from None
    if name == "zstd":
        return dict(hdf5plugin.Zstd(clevel=settings))
    codec, level = settings
    return dict(hdf5plugin.Blosc(cname=codec, clevel=level, shuffle=hdf5plugin.Blosc.SHUFFLE))


def _write_chunks(dataset, array: np.ndarray, start: int, filters: list, threads: int) -> None:
    """Whole chunks encoded on all cores by ndshm's core (its threads, the GIL released) and written as
    they are: HDF5's own filters run one chunk at a time. gzip level 1, 888 MiB: 17.4 s through HDF5's
    filter, 10.1 s compressed in parallel (bench/bench_convert.py, when zlib ran in Python threads)."""
    rows = dataset.chunks[0]
    if start % rows or tuple(dataset.chunks[1:]) != tuple(dataset.shape[1:]):
        raise AssertionError("chunk-aligned writes of chunks spanning the rows only")
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    chunk_bytes = rows * array.dtype.itemsize * int(np.prod(array.shape[1:]))
    tail = (0,) * (array.ndim - 1)
    for k, (stored, mask) in enumerate(_core.encode_chunks(filters, data, chunk_bytes, threads)):
        dataset.id.write_direct_chunk((start + k * rows, *tail), stored, filter_mask=mask)


def _attributes(path: Path, rows: int, dtype: np.dtype, options: dict) -> dict[str, Any]:
    stat = path.stat()
    shown = {k: (v.descr if isinstance(v, np.dtype) else v) for k, v in options.items()}
    return {
        "source": str(path.resolve()),
        "source_size": stat.st_size,
        "source_mtime": stat.st_mtime,
        "rows": rows,
        "dtype": str(dtype.descr if dtype.names else dtype.str),
        "loadtxt_options": json.dumps(shown, default=str),
        "ndshm_version": _version(),
    }


@functools.cache
def _sync_file_range() -> Any:
    """libc's sync_file_range (Linux), looked up once."""
    import ctypes

    function = ctypes.CDLL(None, use_errno=True).sync_file_range
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return function


class _UnnamedFile:
    """An O_TMPFILE file in the target's directory, linked to the target only by commit()."""

    def __init__(self, target: Path, overwrite: bool) -> None:
        self.target = target
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
        self.fd = os.open(target.parent, os.O_TMPFILE | os.O_RDWR, 0o644)

    @property
    def path(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def open(self):
        return os.fdopen(self.fd, "w+b", closefd=False)

    def start_writeback(self) -> None:
        """Starts writing what is in the page cache to disk now, so that the final fsync (required for
        a safe rename) finds little left to do. Called after each input and each window. 2 x 1 GB of
        coverage text (bench/convert_phases.py, 2 or 3 runs each, this VM's disk varies a lot): final
        fsync 4.8 s without it, 1.6-2.0 s after each input only, 0.2-1.8 s after each 256 MiB window
        too; after each 32 MiB block instead, 1.0-2.0 s."""
        _sync_file_range()(self.fd, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE: asynchronous

    def commit(self) -> None:
        os.fsync(self.fd)
        # link to a unique name, then rename over the target: the target is replaced in one step.
        staging = self.target.with_name(f".{self.target.name}.{os.getpid()}.ndshm-tmp")
        directory = os.open(self.target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            # linkat(AT_SYMLINK_FOLLOW) through /proc gives the unnamed file a name (os.link only calls
            # linkat, rather than link, when a dir_fd is given).
            os.link(self.path, staging, src_dir_fd=directory, follow_symlinks=True)
            try:
                os.replace(staging, self.target)
            except BaseException:
                staging.unlink(missing_ok=True)
                raise
            os.fsync(directory)
        finally:
            os.close(directory)

    def close(self) -> None:
        os.close(self.fd)


def to_hdf5(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    output: str | os.PathLike,
    *,
    dtype: Any = None,
    format: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    compression: str | None = None,
    layout: str = "per-file",
    overwrite: bool = False,
    progress: bool | None = None,
    executor: cf.Executor | None = None,
    window: int = WINDOW_BYTES,
    on_note: Callable[[str], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
    **loadtxt_options: Any,
) -> Path:
    """Loads every input with ndshm.loadtxt and writes one HDF5 file.

    layout="per-file": one dataset per input, named after the file, with attributes (source path,
    size, mtime, rows, dtype, loadtxt options, ndshm version). layout="concat": dataset "data" with
    every row and dataset "index" (file, first row, rows). compression: none, gzip[:level], lzf,
    zstd[:level] or blosc[:codec[:level]] (zstd and blosc: hdf5plugin's filters, which readers import
    too); chunks compressed on all cores by ndshm's core where it was built with the codec's library.
    A plain input larger than `window` bytes is loaded in windows of that size (ndshm.loadtxt's
    byte_range) appended to its dataset as they come, so that memory holds the rows of about
    two windows (workers + 1 with workers=), whatever the input's size (.gz/.bz2/.xz inputs,
    converters, quotechar and max_rows load whole).
    Loads run in this process on ndshm.loadtxt's threads (`threads`, default all cores), one ahead
    of the writer; in `workers` worker processes (`threads` each, default cores / workers) when
    workers is given or when numpy's parser must load (e.g. converters); or on `executor`, a
    concurrent.futures executor or a dask.distributed Client. on_progress, if given, is called with
    a line as loading begins and as each input is written. The file appears at output only when
    complete. Returns output as a Path.
    """
    if window < 1:
        raise ValueError(f"window must be a positive number of bytes, not {window}")
    import h5py

    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    if not paths:
        raise ValueError("no input files")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"input {path} does not exist")
    if layout not in ("per-file", "concat"):
        raise ValueError(f"layout must be 'per-file' or 'concat', not {layout!r}")
    if format and format not in PRESETS:
        raise ValueError(f"unknown format {format!r}; presets: {', '.join(sorted(PRESETS))}")
    options = dict(PRESETS[format]) if format else {}
    if dtype is not None:
        options["dtype"] = parse_dtype_spec(dtype) if isinstance(dtype, str) else np.dtype(dtype)
    options.update(loadtxt_options)
    options.setdefault("truncate", False)  # an archive keeps every name whole, or says why not
    filter_name, level = _compression(compression)
    cores = os.cpu_count() or 1
    names, notes = _dataset_names(paths)
    for note in notes:
        (on_note or (lambda s: print(s, file=sys.stderr)))(note)
    sizes = [p.stat().st_size for p in paths]
    show = sys.stderr.isatty() if progress is None else progress

    target = Path(output)
    out = _UnnamedFile(target, overwrite)
    bar = None
    pipeline = None
    try:
        runner = runner_for(executor, workers, threads, options, len(paths))
    except BaseException:
        out.close()
        raise
    try:
        if show:
            from tqdm import tqdm

            bar = tqdm(total=sum(sizes), unit="B", unit_scale=True, desc=target.name, file=sys.stderr)
            rows_done, started = 0, time.perf_counter()
        ranges = [windows(p, options, window) for p in paths]
        # An S field without a size: each input's own widths when it is loaded whole into a dataset of
        # its own; rows written in pieces (windows, concat) need theirs before the first write.
        if layout == "concat":
            per_input = [with_widths(options, string_widths(paths, options))] * len(paths)
        else:
            per_input = [options if len(ws) == 1 else with_widths(options, string_widths([p], options))
                         for p, ws in zip(paths, ranges, strict=True)]  # fmt: skip
        jobs = ((p.resolve(), o if w is None else {**o, "byte_range": w})
                for p, ws, o in zip(paths, ranges, per_input, strict=True) for w in ws)  # fmt: skip
        # as many loads as run at once: one more held a finished window in a Dask worker and did not make
        # the local pool faster (two runs each of `bench/bench_dask.py --one dask|local`: Dask peak
        # 979-996 MiB with one more, 808 without; local 11.5-13.0 s either way)
        pipeline = Pipeline(runner, jobs, ahead=runner.slots)
        if on_progress is not None:
            on_progress(f"loading {len(paths)} input(s), {sum(sizes) / 1e6:.1f} MB of text")
        # HDF5 2.x resolves file names to real paths, which an unnamed file has not: hand it the file.
        with out.open() as handle, h5py.File(handle, "w") as h5:
            h5.attrs["ndshm_version"] = _version()
            h5.attrs["layout"] = layout
            writer = _Writer(h5, layout, len(paths), filter_name, level, options, cores)
            for k, (path, name) in enumerate(zip(paths, names, strict=True)):
                # in input order; later inputs (windows) load meanwhile
                count = len(ranges[k])
                shown = [0]  # bytes of this input already shown on the bar

                def advance(nbytes: int, shown=shown, total=sizes[k]) -> None:  # after each window
                    out.start_writeback()
                    if bar is not None:
                        nbytes = min(nbytes, total - shown[0])
                        shown[0] += nbytes
                        bar.update(nbytes)

                loaded = pipeline.take() if count == 1 else Windowed(pipeline, count, window, path, advance)
                try:
                    rows = writer.add(k, path, name, loaded)
                finally:
                    loaded.close()  # its rows go now, also when writing them failed
                if count == 1:  # (a windowed input started it after each window, the last included)
                    out.start_writeback()
                if on_progress is not None:
                    on_progress(f"wrote {name}: {rows:,} rows ({k + 1}/{len(paths)})")
                if bar is not None:  # bytes of text, MB/s and ETA from tqdm; rows/s added here
                    rows_done += rows
                    rate = rows_done / max(time.perf_counter() - started, 1e-9)
                    bar.set_postfix_str(f"{rows_done:,} rows, {rate / 1e6:.2f} M rows/s", refresh=False)
                    bar.update(sizes[k] - shown[0])
            h5.flush()
        out.commit()
    except BaseException:
        if pipeline is not None:
            pipeline.cancel()
        raise
    finally:
        if bar is not None:
            bar.close()
        runner.close()
        out.close()
    return target


class _Writer:
    """Puts each loaded input into the HDF5 file: a dataset of its own with attributes (per-file), or
    its rows appended to dataset "data" plus a row of "index" (concat)."""

    def __init__(self, h5, layout: str, count: int, filter_name, level, options: dict, threads: int) -> None:
        self.h5, self.layout, self.count, self.options = h5, layout, count, options
        self.filter_name, self.level, self.threads = filter_name, level, threads  # threads: compressing
        self.data = self.index = None
        self.offset = 0

    def add(self, k: int, path: Path, name: str, loaded: Loaded) -> int:
        """Writes input k; returns its row count. An input of unknown length (loaded in windows) goes
        to a dataset that grows as its rows come."""
        total, tail = loaded.shape[0], loaded.shape[1:]
        growing = total is None
        if self.layout == "per-file":
            dataset, first = self._dataset(name, (total or 0, *tail), loaded.dtype, resizable=growing), 0
        else:
            dataset, first = self._append(path, loaded, total or 0), self.offset
        rows = 0
        with closing(loaded.blocks(_block_rows(dataset))) as blocks:
            for start, block in blocks:
                end = first + start + len(block)
                if growing and dataset.shape[0] < end:
                    dataset.resize((end, *tail))
                _write(dataset, block, first + start, self.threads)
                rows = start + len(block)
                del block  # a window's rows may go before the next window is taken
        if self.layout == "per-file":
            for key, value in _attributes(path, rows, loaded.dtype, self.options).items():
                dataset.attrs[key] = value
        else:
            self.index[k] = (str(path), self.offset, rows)
            self.offset += rows
        return rows

    def _dataset(self, name: str, shape: tuple, dtype: np.dtype, *, resizable: bool):
        return _create(self.h5, name, shape, dtype, self.filter_name, self.level, resizable=resizable)

    def _append(self, path: Path, loaded: Loaded, rows: int):
        import h5py

        shape, dtype = (rows, *loaded.shape[1:]), loaded.dtype
        if self.data is None:
            self.data = self._dataset("data", (0, *shape[1:]), dtype, resizable=True)
            entry = np.dtype([("file", h5py.string_dtype()), ("first_row", "<i8"), ("rows", "<i8")])
            self.index = self.h5.create_dataset("index", (self.count,), entry)
        elif dtype != self.data.dtype or shape[1:] != self.data.shape[1:]:
            raise ValueError(f"{path}: rows of {dtype} x {shape[1:]} differ from the first file's "
                             f"{self.data.dtype} x {self.data.shape[1:]}")  # fmt: skip
        self.data.resize((self.offset + shape[0], *shape[1:]))
        return self.data


def _version() -> str:
    from . import __version__

    return __version__


def _create(h5, name: str, shape: tuple, dtype: np.dtype, filter_name, level, *, resizable: bool):
    """A dataset of shape (rows first): contiguous when possible, else in ~1 MiB chunks."""
    if filter_name is None and not resizable:
        return h5.create_dataset(name, shape, dtype)  # contiguous: the fastest layout to write and read
    row_bytes = max(dtype.itemsize * int(np.prod(shape[1:])), 1)
    chunk_rows = max(1, CHUNK_BYTES // row_bytes)
    if not resizable:
        chunk_rows = max(1, min(chunk_rows, shape[0]))
    kwargs: dict[str, Any] = {"chunks": (chunk_rows, *shape[1:])}
    if resizable:
        kwargs["maxshape"] = (None, *shape[1:])
    if filter_name == "gzip":
        kwargs.update(compression="gzip", compression_opts=level)
    elif filter_name == "lzf":
        kwargs.update(compression="lzf")
    elif filter_name is not None:
        kwargs.update(_plugin_filter(filter_name, level))
    return h5.create_dataset(name, shape, dtype, **kwargs)


def _block_rows(dataset) -> int:
    """Rows per block of an input whose rows arrive in pieces: about BLOCK_BYTES, whole chunks."""
    row_bytes = max(dataset.dtype.itemsize * int(np.prod(dataset.shape[1:])), 1)
    rows = max(1, BLOCK_BYTES // row_bytes)
    if dataset.chunks:
        rows = max(1, rows // dataset.chunks[0]) * dataset.chunks[0]
    return rows


def _write(dataset, array: np.ndarray, start: int, threads: int) -> None:
    """Rows at start. A dataset whose filters ndshm's core encodes (gzip, lzf, zstd, blosc, shuffle,
    fletcher32): whole chunks compressed on all cores; rows before the first chunk boundary (a window
    that ends mid-chunk) and after the last one, and every other dataset, go through HDF5's own filters."""
    if not len(array):
        return
    filters = filter_pipeline(dataset)
    if (
        dataset.chunks is None
        or not filters
        or not all(code in _core.decoded_filters() for code, _ in filters)
    ):
        dataset[start : start + len(array)] = array
        return
    rows = dataset.chunks[0]
    head = min(len(array), -start % rows)
    if head:
        dataset[start : start + head] = array[:head]
    start, rest = start + head, array[head:]
    end = start + len(rest)
    whole = len(rest) if end >= dataset.shape[0] else len(rest) - len(rest) % rows
    if whole:
        _write_chunks(dataset, rest[:whole], start, filters, threads)
    if whole < len(rest):
        dataset[start + whole : end] = rest[whole:]
