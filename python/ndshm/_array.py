"""Shared NumPy arrays: creation, handles, attaching, and pickling as a handle."""

from __future__ import annotations

import ast
import copyreg
import math
import operator
from typing import Any

import numpy as np

from . import _core

__all__ = ["attach", "empty", "handle", "is_shared", "share", "zeros", "empty_like", "segment_of"]


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.hasobject or dtype.kind == "T":
        raise TypeError(
            f"ndshm cannot share dtype {dtype}: it holds Python objects or pointers, "
            "which mean nothing in another process"
        )


def _descr(dtype: np.dtype) -> str:
    """NumPy's array-interface descr of dtype, as text that C++ can store and Python can read back."""
    descr = np.lib.format.dtype_to_descr(dtype)
    text = descr if isinstance(descr, str) else repr(descr)
    if _dtype_of(text) != dtype:
        raise TypeError(f"ndshm cannot describe dtype {dtype!r} exactly (overlapping fields?)")
    return text


def _dtype_of(descr: str) -> np.dtype:
    value = descr if not descr.startswith(("[", "(")) else ast.literal_eval(descr)
    return np.lib.format.descr_to_dtype(value)


def _shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    result = tuple(operator.index(n) for n in shape)
    if any(n < 0 for n in result):
        raise ValueError(f"negative dimensions are not allowed: {result}")
    return result


def empty(shape: Any, dtype: Any = float, order: str = "C", *, session: str | None = None) -> np.ndarray:
    """A new array in shared memory. Its memory is zero-filled (so ``empty`` and ``zeros`` agree)."""
    return _new(shape, dtype, order, session=session)


def _new(
    shape: Any,
    dtype: Any,
    order: str = "C",
    *,
    session: str | None = None,
    shared: bool = True,
    populate: bool = True,
) -> np.ndarray:
    """empty() with the knobs the loader needs: ordinary memory, or pages left for its threads to touch."""
    dtype = np.dtype(dtype)
    _check_dtype(dtype)
    shape = _shape(shape)
    if dtype.subdtype is not None:  # ('<i4', (3,)) adds dimensions, as in numpy
        dtype, shape = dtype.base, shape + dtype.shape
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F', not {order!r}")
    if not shared:
        return np.empty(shape, dtype, order)
    nbytes = math.prod(shape) * dtype.itemsize
    mapping = _core.create(nbytes, session or "", "", False, _descr(dtype), str(shape), populate)
    return np.ndarray(shape, dtype, buffer=mapping, order=order)


zeros = empty


def empty_like(prototype: np.ndarray, dtype: Any = None, *, session: str | None = None) -> np.ndarray:
    """A new shared array with the shape (and, unless given, dtype and C/F order) of prototype."""
    order = "F" if prototype.flags.f_contiguous and not prototype.flags.c_contiguous else "C"
    return empty(prototype.shape, prototype.dtype if dtype is None else dtype, order, session=session)


def share(array: Any, *, session: str | None = None) -> np.ndarray:
    """A copy of array in shared memory (one copy, made once)."""
    array = np.asanyarray(array)
    result = empty_like(array, session=session)
    np.copyto(result, array, casting="no")
    return result


def segment_of(array: np.ndarray) -> _core.Mapping | None:
    """The shared segment array lives in, or None for ordinary memory."""
    base: Any = array
    while isinstance(base, np.ndarray):
        base = base.base
    # A Mapping without a name is private memory (a .gz file loaded with shared=False).
    return base if isinstance(base, _core.Mapping) and base.name else None


def is_shared(array: Any) -> bool:
    """True if array (or the array it views) lives in ndshm shared memory."""
    return isinstance(array, np.ndarray) and segment_of(array) is not None


def _layout(array: np.ndarray, mapping: _core.Mapping, ticket: Any = 0) -> str:
    """The handle of array (a view of mapping). ticket: an int, or a callable that issues one, called
    once nothing can fail any more (a ticket issued for a handle never made would keep the memory)."""
    offset = array.__array_interface__["data"][0] - mapping.address if array.size else 0
    descr = _descr(array.dtype)
    return _core.format_handle(
        mapping.session,
        mapping.name,
        ticket() if callable(ticket) else ticket,
        offset,
        array.dtype.itemsize,
        list(array.shape),
        list(array.strides),
        descr,
    )


def handle(array: np.ndarray, *, persist: bool = False) -> str:
    """A short string that ``attach`` turns back into this array (or view) in any process of the user.

    Each handle keeps the memory alive until one ``attach`` of it, even if every process that maps
    the array exits first, for as long as this program runs (its last process gone, plus the broker's
    linger: ``NDSHM_BROKER_LINGER``). ``persist=True``: until that ``attach`` or ``ndshm gc``,
    whatever this program does (a hand-over to a program started later)."""
    mapping = segment_of(array) if isinstance(array, np.ndarray) else None
    if mapping is None:
        raise ValueError("array is not in ndshm shared memory; ndshm.share(array) copies it there")
    return _layout(array, mapping, lambda: _core.issue_ticket(mapping, persist))


def attach(handle: str, readonly: bool = False) -> np.ndarray:
    """The array a handle describes, mapped without copying. Raises SegmentNotFoundError if freed."""
    return _attach(handle, readonly, redeem=True)


def _attach(handle: str, readonly: bool, *, redeem: bool) -> np.ndarray:
    """attach(); redeem=False for a handle that was made without a ticket (its array is kept alive
    elsewhere until this attach, as ndshm.cluster does with Dask task results)."""
    session, name, ticket, offset, _itemsize, shape, strides, descr = _core.parse_handle(handle)
    dtype = _dtype_of(descr)
    mapping = _core.attach(session, name, not readonly, ticket if redeem else 0)
    if dtype.itemsize == 0 or 0 in shape:
        offset = 0
    # The Mapping becomes the array's .base (buffer protocol): the memory lives as long as any view.
    return np.ndarray(shape, dtype, buffer=mapping, offset=offset, strides=strides)


def _rebuild(text: str, readonly: bool) -> np.ndarray:
    return attach(text, readonly=readonly)


class _Ordinary:
    """Pickles an ordinary array exactly as NumPy would at the pickler's protocol."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __reduce_ex__(self, protocol: int) -> Any:
        return self.array.__reduce_ex__(protocol)


_first = operator.itemgetter(0)


def _reduce_ndarray(array: np.ndarray) -> Any:
    mapping = segment_of(array)
    if mapping is None:
        # copyreg reducers do not see the protocol; this indirection lets NumPy's own reducer see it
        # (keeping protocol 5's out-of-band buffers), and unpickling needs only the standard library.
        return _first, ((_Ordinary(array),),)
    return _rebuild, (handle(array), not array.flags.writeable)


# Every pickler (multiprocessing's ForkingPickler included) consults copyreg's table first.
copyreg.pickle(np.ndarray, _reduce_ndarray)
