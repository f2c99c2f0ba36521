"""ndshm.loadtxt: numpy.loadtxt's results, parsed by the C++ core on all cores straight into the array."""

from __future__ import annotations

import bz2
import io
import lzma
import math
import operator
import os
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import _core
from ._array import _descr, _new

__all__ = ["TruncationWarning", "loadtxt"]


class TruncationWarning(UserWarning):
    """ndshm.loadtxt cut text to an ``S`` field's width, as numpy.loadtxt does (``truncate=None``)."""


TruncationWarning.__module__ = "ndshm"


# numpy's own, taken at import: code that puts ndshm.loadtxt in numpy.loadtxt's place (numpy's test
# suite run against ndshm, tests/python/test_numpy_suite.py) still falls back to numpy's parser
_NUMPY_LOADTXT = np.loadtxt
_KINDS = {"i": 0, "u": 1, "f": 2, "b": 3, "S": 4}
_BIG_ENDIAN_HOST = np.little_endian is False


def _fields(dtype: np.dtype, labels: list[str] | None = None) -> list[tuple[int, int, int, bool, str]] | None:
    """One (kind, size, offset, big_endian, type name) per column of dtype, or None if the C++
    parser does not handle it (numpy does, more slowly). labels, if given, gets each one's field name."""
    fields: list[tuple[int, int, int, bool, str]] = []

    def walk(dt: np.dtype, offset: int, label: str = "") -> bool:
        if dt.names is not None:
            return all(
                walk(dt.fields[n][0], offset + dt.fields[n][1], f"{label}.{n}".lstrip(".")) for n in dt.names
            )
        if dt.subdtype is not None:
            base, shape = dt.subdtype
            return all(
                walk(base, offset + k * base.itemsize, f"{label}[{k}]") for k in range(math.prod(shape))
            )
        if labels is not None:
            labels.append(label)
        kind = dt.kind
        if kind not in _KINDS or dt.itemsize == 0:
            return False
        if kind == "f" and dt.itemsize not in (4, 8):
            return False
        big = dt.byteorder == ">" or (dt.byteorder == "=" and _BIG_ENDIAN_HOST)
        name = f"S{dt.itemsize}" if kind == "S" else dt.name
        fields.append((_KINDS[kind], dt.itemsize, offset, big, name))
        return True

    return fields if walk(dtype, 0) else None


def _unsized(dtype: np.dtype) -> list[int] | None:
    """The top-level fields of a structured dtype that are ``S`` without a size ([0] for a plain
    ``S`` dtype), whose widths are found from the data; None if there is none."""
    if dtype.names is None:
        return [0] if dtype.kind == "S" and dtype.itemsize == 0 else None
    found = [
        i
        for i, n in enumerate(dtype.names)
        if dtype.fields[n][0].kind == "S" and dtype.fields[n][0].itemsize == 0
    ]
    return found or None


def _sized(dtype: np.dtype, unsized: list[int], widths: list[int]) -> np.dtype:
    """dtype with its unsized S fields widths[k] bytes wide (at least 1)."""
    if dtype.names is None:
        return np.dtype(f"S{max(widths[0], 1)}")
    width = dict(zip(unsized, widths, strict=True))
    return np.dtype(
        [
            (n, f"S{max(width[i], 1)}" if i in width else dtype.fields[n][0])
            for i, n in enumerate(dtype.names)
        ],
        align=dtype.isalignedstruct,
    )


def _truncation_note(report: tuple, labels: list[str], structured: bool) -> str:
    """The TruncationWarning's text for a report of TextJob.parse."""
    values, file, line, column, text, field, widths = report
    if structured:
        needed: dict[str, int] = {}
        for label, width in zip(labels, widths, strict=True):
            if width:
                needed[label] = max(needed.get(label, 0), width)
        holds = ", ".join(f"{label} S{w}" for label, w in needed.items())
        what = f"the {labels[field]!r} field"
    else:
        holds, what = f"S{max(widths)}", "the S field"
    return (
        f"{file}:{line}:{column}: {text!r} was cut to {what}'s width, as numpy does; {values} value(s) "
        f"cut in all; {holds} would hold them all (truncate=True: cut silently, False: an error)"
    )


def _one_char(value: Any) -> str | None:
    """'' for None, the character for a one-character string, None for anything else."""
    if value is None:
        return ""
    if isinstance(value, str) and len(value) == 1:
        return value
    return None


def _comment(comments: Any) -> str | None:
    if isinstance(comments, (list, tuple)) and len(comments) == 1:
        comments = comments[0]
    return _one_char(comments)


def _usecols(usecols: Any) -> list[int] | None:
    if usecols is None:
        return []
    if isinstance(usecols, (int, np.integer)):
        return [operator.index(usecols)]
    try:
        return [operator.index(c) for c in usecols]
    except TypeError:
        return None


def _measured(dtype: np.dtype, unsized: list[int] | None, columns: list[int]) -> list[int]:
    """The text columns whose longest value the plan finds: those of the unsized S fields."""
    if not unsized:
        return []
    if dtype.names is None:
        return list(columns) if columns else [_core.ALL_COLUMNS]
    return [columns[i] if i < len(columns) else i for i in unsized]  # (usecols too short: an error later)


def _job(fname: Any, grammar: tuple, measure: list[int]) -> tuple[Any, Any]:
    """(a TextJob for fname, its rows planned or streamed: see TextJob.open, or None if ndshm's parser
    cannot read this input as numpy would; what numpy reads instead of fname, which may be used up)."""
    if isinstance(fname, (str, os.PathLike)):
        path = os.fspath(fname)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if path.endswith(".bz2"):
            with bz2.open(path, "rb") as f:
                return _core.TextJob.from_bytes(f.read(), path, *grammar, measure), fname
        if path.endswith(".xz"):
            with lzma.open(path, "rb") as f:
                return _core.TextJob.from_bytes(f.read(), path, *grammar, measure), fname
        return _core.TextJob.open(path, *grammar, measure=measure), fname
    if hasattr(fname, "read"):
        data = fname.read()
        name = str(getattr(fname, "name", "<file>"))
        again = io.StringIO(data) if isinstance(data, str) else io.BytesIO(data)
    elif isinstance(fname, Iterable) and not isinstance(fname, (bytes, bytearray)):
        lines = again = list(fname)
        if not all(isinstance(line, (str, bytes)) for line in lines):
            return None, again  # numpy words the refusal
        ends = [line.rstrip(b"\r\n" if isinstance(line, bytes) else "\r\n") for line in lines]
        if any(("\n" in e or "\r" in e) if isinstance(e, str) else (b"\n" in e or b"\r" in e) for e in ends):
            return None, again  # a line end within a line: numpy's (quoted: kept; else an error)
        if any(isinstance(line, bytes) for line in lines):
            data = b"\n".join(e if isinstance(e, bytes) else e.encode() for e in ends)
        else:
            data = "\n".join(ends)
        name = "<lines>"
    else:
        return None, fname
    if not data.isascii():  # numpy decodes text: its strings, spaces and digits are Unicode's
        return None, again
    if isinstance(data, str):
        data = data.encode("ascii")
    return _core.TextJob.from_bytes(bytes(data), name, *grammar, measure), again


def _ensure_ndmin(arr: np.ndarray, ndmin: int) -> np.ndarray:
    # As numpy's _ensure_ndmin_ndarray: squeeze, then add dimensions up to ndmin.
    if arr.ndim > ndmin:
        arr = np.squeeze(arr)
    if arr.ndim < ndmin:
        arr = np.atleast_1d(arr) if ndmin == 1 else np.atleast_2d(arr).T
    return arr


def _own_parser(dtype, comments, delimiter, converters, skiprows, usecols, max_rows, quotechar, like):
    """(delimiter, comment, quote, columns, fields) for ndshm's parser, or None when numpy's must do
    the job."""
    delimiter_char = _one_char(delimiter)
    comment = _comment(comments)
    quote = _one_char(quotechar)
    columns = _usecols(usecols)
    dtype = np.dtype(dtype)
    unsized = _unsized(dtype)  # (their widths come from the plan: see loadtxt)
    fields = _fields(_sized(dtype, unsized, [1] * len(unsized)) if unsized else dtype)
    fast = (
        converters is None
        and like is None
        and fields is not None
        and delimiter_char is not None
        and comment is not None
        and quote is not None
        and columns is not None
        and (usecols is None or len(columns) > 0)  # (usecols=[]: no column, numpy's own)
        # ASCII (ndshm's parser takes one byte) and not NUL (its "runs of whitespace")
        and (delimiter_char + comment + quote).isascii()
        and delimiter_char != "\0"
        and delimiter_char not in ("\n", "\r")
        and quote not in ("\n", "\r")
        and not (delimiter_char == "" and any(c.isspace() for c in comment + quote))
        # grammars numpy refuses (TypeError) go to numpy, which words the refusal
        and (not comment or comment not in (delimiter_char, quote, "\n", "\r"))
        and not (delimiter_char == "" and comment and comment in " \t\f\v")
        and (not quote or quote != delimiter_char)
        and isinstance(skiprows, (int, np.integer))
        and skiprows >= 0
        and (max_rows is None or (isinstance(max_rows, (int, np.integer)) and max_rows >= 0))
    )
    return (delimiter_char, comment, quote, columns, fields) if fast else None


COMPRESSED = (".gz", ".bz2", ".xz")  # suffixes of inputs that are decompressed first


def _ranges_work(fname: Any, parts: tuple | None, max_rows: int | None) -> bool:
    """Whether byte ranges can be read: an uncompressed file's path, ndshm's parser, no quoting (a
    quoted field may hold a newline) and no max_rows (which counts over the whole file)."""
    plain = isinstance(fname, (str, os.PathLike)) and not os.fspath(fname).endswith(COMPRESSED)
    return plain and parts is not None and not parts[2] and max_rows is None


def _parser_for(options: dict) -> tuple | None:
    """_own_parser for loadtxt's keywords as a dict."""
    get = options.get
    return _own_parser(get("dtype", float), get("comments", "#"), get("delimiter"), get("converters"),
                       get("skiprows", 0), get("usecols"), get("max_rows"), get("quotechar"),
                       get("like"))  # fmt: skip


def native(options: dict) -> bool:
    """Whether loadtxt(path, **options) parses with ndshm's C++ threads (the GIL released), not numpy's."""
    return _parser_for(options) is not None


def splittable(fname: Any, options: dict) -> bool:
    """Whether loadtxt(fname, byte_range=..., **options) can read fname in ranges."""
    return _ranges_work(fname, _parser_for(options), options.get("max_rows"))


def string_widths(paths: list[str], options: dict) -> list[int] | None:
    """The longest value of each unsized S field of options["dtype"] over every file (a width pass:
    the rows planned, none parsed), or None when there is no such field or numpy's parser would read
    the files. For inputs written to one dataset, which needs its width before the first write: each
    file is planned as loadtxt plans it (all cores; a .gz file inflated), no row parsed."""
    get = options.get
    dtype = np.dtype(get("dtype", float))
    unsized = _unsized(dtype)
    parts = _own_parser(dtype, get("comments", "#"), get("delimiter"), get("converters"), get("skiprows", 0),
                        get("usecols"), get("max_rows"), get("quotechar"), get("like"))  # fmt: skip
    if not unsized or parts is None:
        return None
    delimiter_char, comment, quote, columns, _ = parts
    max_rows = get("max_rows")
    grammar = (
        delimiter_char,
        comment,
        quote,
        int(get("skiprows", 0)),
        -1 if max_rows is None else int(max_rows),
        columns,
        False,
        0,
        False,
    )
    found = [_job(p, grammar, _measured(dtype, unsized, columns))[0].widths for p in paths]  # on all cores
    if dtype.names is None:
        return [max((max(w, default=0) for w in found), default=0)]
    return [max(w[k] for w in found) for k in range(len(unsized))] if found else [0] * len(unsized)


def with_widths(options: dict, widths: list[int] | None) -> dict:
    """options with the unsized S fields of their dtype given widths (string_widths's)."""
    if widths is None:
        return options
    dtype = np.dtype(options["dtype"])
    return {**options, "dtype": _sized(dtype, _unsized(dtype), widths)}


def loadtxt(
    fname: Any,
    dtype: Any = float,
    comments: Any = "#",
    delimiter: str | None = None,
    converters: Any = None,
    skiprows: int = 0,
    usecols: Any = None,
    unpack: bool = False,
    ndmin: int = 0,
    encoding: str | None = None,
    max_rows: int | None = None,
    *,
    quotechar: str | None = None,
    like: Any = None,
    threads: int | None = None,
    shared: bool = True,
    truncate: bool | None = None,
    byte_range: tuple[int, int] | None = None,
) -> Any:
    """numpy.loadtxt's results, bit for bit, parsed on ``threads`` cores (default: all) into shared memory.

    With ``shared=True`` the array lives in ndshm shared memory and crosses processes as a handle;
    ``shared=False`` gives ordinary memory. Bad input raises ``ndshm.ParseError`` (a ``ValueError``)
    naming file, line and column. Text longer than its ``S`` field is cut as numpy cuts it; with
    ``truncate=None`` (the default) one ``ndshm.TruncationWarning`` per call names the first cut
    value (file, line, column), how many were cut and the width that holds them all;
    ``truncate=True`` cuts silently, ``truncate=False`` raises ``ParseError`` instead. An ``S``
    field given without a size (``("chr", "S")``) gets the width of its longest value, found while
    the rows are planned (ndshm's own: numpy gives ``b''`` for such fields of a structure; a plain
    ``dtype="S"`` gets the longest value in both). ``converters``, multi-character comments and
    dtypes other than bool/int/uint/float32/float64/bytes (and structures of them) take numpy's
    own, slower parser, then one copy into shared memory.

    ``byte_range=(begin, end)`` (ndshm's own): only the lines of a plain file that start within bytes
    [begin, end) (end -1: to the end); every line belongs to exactly one of a file's adjacent ranges,
    so workers can split a file. ``skiprows`` counts from the top of the file (a range that starts
    there); errors name the line in the whole file.
    """
    if ndmin not in (0, 1, 2):
        raise ValueError(f"Illegal value of ndmin keyword: {ndmin}")
    dtype = np.dtype(dtype)
    unsized = _unsized(dtype)
    parts = _own_parser(dtype, comments, delimiter, converters, skiprows, usecols, max_rows, quotechar, like)
    fast = parts is not None
    delimiter_char, comment, quote, columns, fields = parts or (None,) * 5
    job, again = None, fname  # again: what numpy reads if it must (fname may be used up by then)
    if byte_range is not None:
        begin, end = (operator.index(x) for x in byte_range)
        if begin < 0:
            raise ValueError(f"byte_range begins at {begin}: give a byte offset from 0 on")
        if not _ranges_work(fname, parts, max_rows):
            raise ValueError("byte_range needs an uncompressed file's path and ndshm's own parser: no "
                             "converters, quotechar or max_rows, one-character comments, numbers and bytes "
                             "fields")  # fmt: skip
        # skiprows counts from the top of the file: only lines before the range can use some up
        skiprows = skiprows if begin == 0 else max(0, skiprows - _lines_before(fname, begin, skiprows))
    if fast:
        # one_pass: on one thread, rows are parsed as found into shared memory that grows (no count
        # first); private results are ordinary numpy memory, so their rows are counted first
        grammar = (delimiter_char, comment, quote, int(skiprows),
                   -1 if max_rows is None else int(max_rows), columns, truncate is None or bool(truncate),
                   0 if threads is None else int(threads), bool(shared))  # fmt: skip
        measure = _measured(dtype, unsized, columns)
        if byte_range is None:
            job, again = _job(fname, grammar, measure)
        else:
            job = _core.TextJob.open(
                os.fspath(fname), *grammar, begin, end if end >= 0 else 2**64 - 1, measure
            )
    if job is None and unsized and isinstance(fname, (str, os.PathLike)) and not callable(converters):
        # numpy's parser reads these rows (converters, say); the unsized S fields' widths still come
        # from a plan of the text, when ndshm's grammar reads it and no converter changes their text
        planned = _own_parser(dtype, comments, delimiter, None, skiprows, usecols, max_rows, quotechar, None)
        if planned is not None and byte_range is None:
            measure = _measured(dtype, unsized, planned[3])
            if not set(converters or ()) & set(measure):
                grammar = (*planned[:3], int(skiprows), -1 if max_rows is None else int(max_rows), planned[3],
                           True, 0 if threads is None else int(threads), False)  # fmt: skip
                widths = _job(fname, grammar, measure)[0].widths
                dtype = _sized(dtype, unsized, [max(widths, default=0)] if dtype.names is None else widths)
    numpy_args = (comments, delimiter, converters, skiprows, usecols, unpack, ndmin, encoding, max_rows,
                  quotechar, shared)  # fmt: skip
    if job is None:
        return _numpy_fallback(again, dtype, *numpy_args)

    if unsized:
        widths = job.widths
        dtype = _sized(dtype, unsized, [max(widths, default=0)] if dtype.names is None else widths)
        fields = _fields(dtype)
    structured = dtype.names is not None
    # A streamed job (.gz, or text one thread parses in one pass into shared memory) knows its first
    # row's columns now and its row count once parsed.
    has_rows = (job.columns and max_rows != 0) if job.streamed else job.rows
    if structured:
        width = len(fields)
        if columns:
            if len(columns) != width:
                raise ValueError(f"usecols names {len(columns)} columns but the dtype requires {width}")
        elif has_rows and job.columns != width:
            raise _core.ParseError(
                f"the dtype passed requires {width} columns but {job.columns} were found in the first row; "
                "use `usecols` to select a subset"
            )
        shape: tuple[int, ...] = (job.rows or 0,)
        row_fields = fields
    else:
        width = len(columns) if columns else (job.columns if has_rows else 1)  # numpy: 1 when empty
        shape = (job.rows or 0, width)
        step = dtype.itemsize
        row_fields = [
            (k, size, i * step, big, name) for i in range(width) for k, size, _, big, name in fields
        ]
    row_stride = dtype.itemsize * (1 if structured else width)
    out = None
    try:
        if job.streamed:  # one pass into a segment that grows; on error, nothing is left of it
            listed = "".join(f", {n}" for n in shape[1:]) + ("," if len(shape) == 1 else "") + ")"
            descr = _descr(dtype) if shared else ""  # listings only; private memory is not listed
            mapping, rows, cut = job.parse_new(row_fields, row_stride, shared, "", descr, listed)
            out = np.ndarray((rows, *shape[1:]), dtype, buffer=mapping)
        else:
            out = _new(shape, dtype, shared=shared, populate=False)  # each parsing thread touches its rows
            cut = job.parse(row_fields, out.__array_interface__["data"][0], out.nbytes, row_stride)
    except _core.ParseError as error:
        out = None  # a failed load leaves no segment behind
        if byte_range is None and _numpy_reads_it(error):
            del job
            try:
                return _numpy_fallback(again, dtype, *numpy_args)
            except ValueError:
                if isinstance(error, _core.OtherGrammar):
                    raise  # numpy's own refusal
                raise error from None  # refused by numpy too: ndshm's error says where
        if byte_range is None or begin == 0:
            raise
        raise _in_whole_file(error, os.fspath(fname), begin) from None
    except BaseException:
        out = None
        raise
    del job
    if cut is not None and truncate is None:
        labels: list[str] = []
        _fields(dtype, labels)
        row_labels = labels if structured else [""] * len(row_fields)
        if byte_range is not None and begin != 0:
            cut = (*cut[:2], cut[2] + _lines_before(os.fspath(fname), begin), *cut[3:])
        warnings.warn(_truncation_note(cut, row_labels, structured), TruncationWarning, stacklevel=2)
    arr = _ensure_ndmin(out, ndmin)
    if arr.shape and arr.shape[0] == 0 and byte_range is None:
        warnings.warn(f'loadtxt: input contained no data: "{fname}"', category=UserWarning, stacklevel=2)
    if unpack:
        return [arr[name] for name in dtype.names] if structured else arr.T
    return arr


# numpy before 2.3 takes integers numpy 2.3 refuses: it wraps '128' to int8 -128, reads '-1' as uint8
# 255 and '1.0' as 1 (with a DeprecationWarning); ndshm.loadtxt gives the installed numpy's answer
_OLD_INTEGERS = np.lib.NumpyVersion(np.__version__) < "2.3.0"


def _numpy_reads_it(error: Exception) -> bool:
    """Whether numpy.loadtxt may read what ndshm's parser refused (then it is asked)."""
    if isinstance(error, _core.OtherGrammar):
        return True
    if not _OLD_INTEGERS:
        return False
    try:
        return np.dtype(error.expected).kind in "iub"
    except TypeError:
        return False


def _lines_before(path: Any, begin: int, enough: int | None = None) -> int:
    """Lines before the first line that starts at or after byte begin (> 0); counting may stop once
    `enough` are found."""
    before, remaining = 1, begin - 1  # that line starts after the first newline at or after begin - 1
    with open(path, "rb") as f:
        while remaining > 0 and (enough is None or before < enough):
            piece = f.read(min(remaining, 1 << 24))
            if not piece:
                break
            before += piece.count(b"\n")
            remaining -= len(piece)
    return before


def _in_whole_file(error: Exception, path: str, begin: int) -> Exception:
    """error, raised for a byte range starting at begin, with the line counted from the file's top."""
    line = error.line + _lines_before(path, begin)
    message = str(error)
    old_where, new_where = f"{error.file}:{error.line}", f"{error.file}:{line}"
    if message.startswith(old_where):
        message = new_where + message[len(old_where) :]
    shifted = _core.ParseError(message)
    for key in ("file", "column", "text", "expected"):
        setattr(shifted, key, getattr(error, key))
    shifted.line = line
    return shifted


def _numpy_fallback(fname, dtype, comments, delimiter, converters, skiprows, usecols, unpack, ndmin,
                    encoding, max_rows, quotechar, shared):  # fmt: skip
    result = _NUMPY_LOADTXT(
        fname, dtype=dtype, comments=comments, delimiter=delimiter, converters=converters,
        skiprows=skiprows, usecols=usecols, unpack=unpack, ndmin=ndmin, encoding=encoding,
        max_rows=max_rows, quotechar=quotechar,
    )  # fmt: skip
    if not shared or np.dtype(dtype).hasobject:  # (objects are Python's: they cannot be shared)
        return result
    from ._array import share

    return [share(a) for a in result] if isinstance(result, list) else share(result)
