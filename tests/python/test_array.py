"""Shared arrays in one process: dtypes, layouts, handles, read-only views, errors, scale, threads."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import workers

import ndshm
from ndshm import _core

DTYPES = [
    "?", "i1", "<i2", ">i2", "<i4", ">i4", "<i8", ">u8", "u1", "<f2", "<f4", ">f4", "<f8", ">f8",
    "<c8", ">c16", "<M8[ns]", ">m8[s]", "S1", "S10", "<U7", ">U3", "V5",
    [("chr", "S10"), ("pos", "<i4"), ("pct", "<f4"), ("c", "<i4"), ("t", "<i4")],
    [("a", ">i2"), ("nested", [("x", "<f8"), ("y", "S3", (2,))]), ("grid", "<u2", (2, 3))],
    np.dtype({"names": ["a", "b"], "formats": ["u1", "<f8"], "offsets": [0, 8], "itemsize": 24}),
    np.dtype([("a", "u1"), ("b", "<i8")], align=True),
]  # fmt: skip


def _filled(shape, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    raw = np.random.default_rng(7).integers(0, 256, size=int(np.prod(shape)) * dtype.itemsize)
    data = raw.astype(np.uint8).view(dtype) if dtype.itemsize else np.empty(0, dtype)
    return data.reshape(shape) if dtype.itemsize else np.empty(shape, dtype)


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert type(b) is np.ndarray
    assert a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides
    assert _bytes(a) == _bytes(b)


def _bytes(a: np.ndarray) -> bytes:
    # Field by field (padding bytes are not data), bit for bit (NaN payloads included). Not by copyto into a
    # zeroed array: numpy 2.5 copies an aligned struct's padding along, and a dtype's aligned flag differs
    # between an array and its attached twin (a handle's descr does not carry it; the dtypes compare equal).
    if a.dtype.names is None:
        return np.ascontiguousarray(a).tobytes()
    return b"".join(_bytes(a[name]) for name in a.dtype.names)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_dtype_round_trips_by_handle_and_pickle(dtype):
    source = _filled((6, 4), dtype)
    shared = ndshm.share(source)
    assert ndshm.is_shared(shared) and type(shared) is np.ndarray
    _same(source, shared)
    _same(shared, ndshm.attach(ndshm.handle(shared)))
    _same(shared, pickle.loads(pickle.dumps(shared)))


VIEWS = {
    "whole": lambda a: a,
    "rows": lambda a: a[2:5],
    "step": lambda a: a[::3, 1::2],
    "reversed": lambda a: a[::-1, ::-2],
    "transposed": lambda a: a.T,
    "element": lambda a: a[3, 2, ...],
    "empty": lambda a: a[4:4],
    "field": lambda a: a["pos"],
    "column-of-field": lambda a: a["pos"][:, 1],
}


@pytest.mark.parametrize("view", VIEWS, ids=str)
def test_views_keep_shape_strides_and_offset(view):
    base = ndshm.share(_filled((8, 5), DTYPES[23]))
    original = VIEWS[view](base)
    for copy in (ndshm.attach(ndshm.handle(original)), pickle.loads(pickle.dumps(original))):
        _same(original, copy)
        if original.size:
            assert copy.__array_interface__["data"][0] - ndshm.segment_of(copy).address == (
                original.__array_interface__["data"][0] - ndshm.segment_of(original).address
            )


def test_fortran_order_and_zero_dim_and_zero_size():
    f = ndshm.share(np.asfortranarray(np.arange(12.0).reshape(3, 4)))
    assert f.flags.f_contiguous and not f.flags.c_contiguous
    _same(f, pickle.loads(pickle.dumps(f)))
    sub = ndshm.empty((2, 3), ("<i4", (4,)))  # a top-level subarray dtype adds dimensions, as in numpy
    assert sub.shape == np.empty((2, 3), ("<i4", (4,))).shape == (2, 3, 4)
    for shape in [(), (0,), (3, 0, 2)]:
        a = ndshm.empty(shape, "<i8")
        _same(a, ndshm.attach(ndshm.handle(a)))


def test_empty_is_zero_filled_and_base_keeps_memory_alive():
    a = ndshm.empty(1000, "<i8")
    assert not a.any()
    assert isinstance(a.base, _core.Mapping)
    view = a[10:20]
    name = a.base.name
    del a
    view[:] = 5  # the mapping outlives the array it was made for
    assert [s["name"] for s in _core.list_segments(_core.default_session())] == [name]
    del view
    assert _core.list_segments(_core.default_session()) == []


def test_object_dtypes_are_refused():
    with pytest.raises(TypeError, match="Python objects"):
        ndshm.empty(3, object)
    with pytest.raises(TypeError, match="Python objects"):
        ndshm.share(np.array([("a", 1)], dtype=[("o", "O"), ("i", "i4")]))


def test_handle_is_small_whatever_the_size():
    big = ndshm.empty((64, 1024, 1024), "u1")  # 64 MiB
    for view in (big, big[::2, 5]):
        data = pickle.dumps(view)
        assert len(data) < 1024
        pickle.loads(data)  # every pickle is a pending hand-over until it is loaded


def test_ordinary_arrays_pickle_as_numpy_does_at_every_protocol():
    a = np.arange(10.0)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        b = pickle.loads(pickle.dumps(a, protocol=protocol))
        assert not ndshm.is_shared(b) and np.array_equal(a, b)
    buffers = []
    data = pickle.dumps(a, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1  # out-of-band path kept
    assert np.array_equal(pickle.loads(data, buffers=buffers), a)


def test_readonly_attach_refuses_writes_and_writable_ones_share_writes():
    a = ndshm.zeros(4, "<f8")
    ro = ndshm.attach(ndshm.handle(a), readonly=True)
    rw = ndshm.attach(ndshm.handle(a))
    with pytest.raises(ValueError, match="read-only"):
        ro[0] = 1
    with pytest.raises(ValueError):
        ro.flags.writeable = True
    rw[1] = 2.5
    a[2] = 3.5
    assert ro.tolist() == [0, 2.5, 3.5, 0] == a.tolist()
    # A read-only array pickles as read-only.
    assert not pickle.loads(pickle.dumps(ro)).flags.writeable


def test_freed_and_unknown_handles_raise_segment_not_found():
    a = ndshm.empty(10)
    text = ndshm.handle(a)
    ndshm.attach(text)  # redeems the ticket
    del a
    with pytest.raises(ndshm.SegmentNotFoundError, match="no segment") as info:
        ndshm.attach(text)
    assert isinstance(info.value, FileNotFoundError) and info.value.errno == 2
    assert text.split(":")[2] in str(info.value)
    with pytest.raises(ValueError, match="malformed handle"):
        ndshm.attach("ndshm2:default:x:0")
    with pytest.raises(ValueError, match="not in ndshm shared memory"):
        ndshm.handle(np.zeros(3))


def test_out_of_memory_raises_before_touching_pages():
    with pytest.raises(MemoryError):
        ndshm.empty(1 << 50, "u1")  # 1 PiB


@pytest.mark.skipif(not workers.huge_pages_expected(), reason="no huge pages for shared memory here")
def test_large_arrays_get_huge_pages_in_every_process_unless_turned_off(monkeypatch):
    monkeypatch.setenv("NDSHM_HUGE_PAGES", "1")  # unpaced: a huge page wherever the kernel gives one
    a = ndshm.empty((8 << 20) + 3, np.uint8)  # four whole 2 MiB ranges, then 3 bytes on small pages
    assert a.__array_interface__["data"][0] % (2 << 20) == 0
    assert workers.huge_kib(a) == 8 << 10
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        assert pool.submit(workers.huge_kib, a).result() == 8 << 10  # mapped there by huge pages too
    code = "import ndshm, workers; print(workers.huge_kib(ndshm.empty((8 << 20) + 3, 'u1')))"
    off = {**os.environ, "NDSHM_HUGE_PAGES": "0"}
    here = Path(__file__).parent
    run = subprocess.run([sys.executable, "-c", code], env=off, cwd=here, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0"


def test_ten_thousand_live_arrays_do_not_hold_descriptors():
    import os

    fds = len(os.listdir("/proc/self/fd"))
    arrays = [ndshm.empty(8, "<i8") for _ in range(10_000)]
    for i, a in enumerate(arrays):
        a[:] = i
    assert len(os.listdir("/proc/self/fd")) <= fds + 2  # the broker connection
    assert len(_core.list_segments(_core.default_session())) == 10_000
    sample = arrays[9_999]
    assert ndshm.attach(ndshm.handle(sample))[0] == 9_999
    del arrays, sample, a
    assert _core.list_segments(_core.default_session()) == []


def test_threads_create_attach_and_free_concurrently():
    errors = []

    def work(seed: int) -> None:
        try:
            for i in range(200):
                a = ndshm.empty(100 + i, "<i4")
                a[:] = seed
                b = pickle.loads(pickle.dumps(a[::2]))
                assert (b == seed).all()
                del a, b
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
