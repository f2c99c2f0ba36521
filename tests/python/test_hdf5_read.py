"""ndshm.read_hdf5 against h5py's own reads: every type, layout and filter, rows and fields, fill values,
damaged chunks, and files from ndshm convert against numpy.loadtxt of their inputs."""

from __future__ import annotations

import gzip
from pathlib import Path

import h5py
import numpy as np
import pytest

import ndshm
from ndshm import _core

hdf5plugin = pytest.importorskip("hdf5plugin")

COMPOUND = np.dtype([("chr", "S6"), ("pos", "<i8"), ("pct", "<f4"), ("big", ">u2"), ("pair", "<i2", (2,))])
PADDED = np.dtype({"names": ["a", "b"], "formats": ["u1", "<f8"], "offsets": [0, 8], "itemsize": 24})
DTYPES = ["i1", "<i2", "<i4", "<i8", "u1", "<u2", "<u4", "<u8", "<f2", "<f4", "<f8", ">i4", ">f8", "<c8",
          "<c16", "?", "S7", COMPOUND, PADDED]  # fmt: skip
FILTERS = {
    "contiguous": None,
    "chunked": {},
    "gzip": {"compression": "gzip", "compression_opts": 1},
    "gzip+shuffle": {"compression": "gzip", "shuffle": True},
    "gzip+shuffle+fletcher32": {"compression": "gzip", "shuffle": True, "fletcher32": True},
    "fletcher32": {"fletcher32": True},
    "lzf": {"compression": "lzf"},
    "zstd": dict(hdf5plugin.Zstd(clevel=3)),
    "blosc": dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)),
    "scaleoffset": {"scaleoffset": 0},  # not decoded by ndshm: read by h5py
}
FAST = {1, 2, 3} | set(_core.decoded_filters())


def _values(dtype, n: int, seed: int = 0) -> np.ndarray:
    """n values of dtype, not all alike, that compress somewhat."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 40, n * dtype.itemsize, dtype=np.uint8)
    if dtype.names is None and dtype.kind in "fc":
        return (rng.integers(-1000, 1000, n) / 8).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, n).astype(bool)
    if dtype.kind == "S":
        return np.array([f"s{i % 97}".encode() for i in range(n)], dtype)
    values = raw.view(dtype).copy()
    if dtype.names and "pct" in dtype.names:
        values["pct"] = rng.integers(0, 10000, n) / 100
        values["chr"] = [f"chr{i % 22}".encode() for i in range(n)]
    return values


def _create(h5, name, data, filters, chunks=(97,), **extra):
    kwargs = {} if filters is None else {"chunks": chunks, **filters}
    if filters and "scaleoffset" in filters and data.dtype.kind not in "iu":
        kwargs = {"chunks": chunks}
    return h5.create_dataset(name, data=data, **kwargs, **extra)


def _same(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()
    assert ndshm.is_shared(got)


def _scaleoffset_ok(dtype) -> bool:
    return np.dtype(dtype).kind in "iu" and np.dtype(dtype).byteorder != ">"


@pytest.mark.parametrize("filters", FILTERS)
def test_every_type_reads_back_as_h5py_reads_it(filters, tmp_path):
    path = tmp_path / "t.h5"
    spec = FILTERS[filters]
    with h5py.File(path, "w") as h5:
        for k, dtype in enumerate(DTYPES):
            if filters == "scaleoffset" and not _scaleoffset_ok(dtype):
                continue
            _create(h5, f"d{k}", _values(dtype, 1000, k), spec)
    with h5py.File(path) as h5:
        for name in h5:
            ds = h5[name]
            for rows in (None, slice(3, 550), slice(-10, None), slice(960, 1200), slice(5, 5)):
                _same(ndshm.read_hdf5(path, name, rows=rows), ds[rows if rows is not None else ()])


def test_several_dimensions_with_partial_edge_chunks(tmp_path):
    path = tmp_path / "m.h5"
    layouts = {"a": ((301, 17), (8, 5)), "b": ((301, 17), (10, 17)), "c": ((40, 6, 5), (3, 4, 5)),
               "d": ((40, 6, 5), (64, 8, 8)), "e": ((5, 3), (1, 1))}  # fmt: skip
    with h5py.File(path, "w") as h5:
        for name, (shape, chunks) in layouts.items():
            data = np.arange(np.prod(shape), dtype="<i4").reshape(shape)
            h5.create_dataset(
                name,
                data=data,
                chunks=chunks,
                compression="gzip",
                shuffle=True,
                maxshape=(None,) * len(shape),
            )  # (chunks larger than the data allowed)
    with h5py.File(path) as h5:
        for name in layouts:
            for rows in (None, slice(1, 4), slice(2, 37)):
                _same(ndshm.read_hdf5(path, name, rows=rows), h5[name][rows if rows is not None else ()])


@pytest.mark.parametrize("filters", ["contiguous", "gzip+shuffle", "blosc", "scaleoffset"])
def test_fields_as_h5py_gives_them(filters, tmp_path):
    path = tmp_path / "f.h5"
    dtype = COMPOUND if filters != "scaleoffset" else np.dtype([("a", "<i4"), ("b", "<i2")])
    with h5py.File(path, "w") as h5:
        _create(h5, "x", _values(dtype, 500), FILTERS[filters])
    with h5py.File(path) as h5:
        ds = h5["x"]
        for fields in [dtype.names[1], list(dtype.names[::-1]), [dtype.names[0]], dtype.names[-1]]:
            for rows in (None, slice(100, 431)):
                _same(ndshm.read_hdf5(path, "x", rows=rows, fields=fields),
                      ds.fields(fields)[rows if rows is not None else ()])  # fmt: skip
        with pytest.raises(ValueError, match=r"no field 'nope'; its fields: "):
            ndshm.read_hdf5(path, "x", fields=["nope"])


def test_unwritten_chunks_read_as_the_fill_value(tmp_path):
    path = tmp_path / "fill.h5"
    with h5py.File(path, "w") as h5:
        a = h5.create_dataset("user", (1000,), "<f8", chunks=(100,), compression="gzip", fillvalue=-7.5)
        a[250:420] = 1.0
        b = h5.create_dataset("default", (1000,), COMPOUND, chunks=(64,), compression="gzip")
        b[700:800] = _values(COMPOUND, 100)
        c = h5.create_dataset("never", (1000,), "<i4", chunks=(100,), fillvalue=9, fill_time="never")
        c[0:100] = 3
        h5.create_dataset("empty", (1000,), COMPOUND, fillvalue=np.array(_values(COMPOUND, 1)[0]))
        h5.create_dataset("none", (300,), "<i2", chunks=(7,), fillvalue=-1)
    with h5py.File(path) as h5:
        for name in h5:
            for fields in (None, ["pos"] if h5[name].dtype.names else None):
                expected = h5[name].fields(fields)[()] if fields else h5[name][()]
                _same(ndshm.read_hdf5(path, name, fields=fields, rows=slice(0, None)), expected)


def test_rows_steps_and_scalars_go_through_h5py_with_the_same_answer(tmp_path):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as h5:
        _create(h5, "x", _values("<i8", 1000), FILTERS["gzip"])
        h5.create_dataset("scalar", data=np.float64(2.5))
        h5.create_dataset("vlen", data=["a", "bcd"], dtype=h5py.string_dtype())
        h5.create_group("group")
    with h5py.File(path) as h5:
        _same(ndshm.read_hdf5(path, "x", rows=slice(3, 900, 7)), h5["x"][3:900:7])
        _same(ndshm.read_hdf5(path, "x", rows=(10, 20)), h5["x"][10:20])
        _same(ndshm.read_hdf5(path, "scalar"), h5["scalar"][...])
    with pytest.raises(ValueError, match="positive step"):
        ndshm.read_hdf5(path, "x", rows=slice(None, None, -1))
    with pytest.raises(ValueError, match="scalar dataset"):
        ndshm.read_hdf5(path, "scalar", rows=slice(0, 1))
    with pytest.raises(TypeError, match="variable-length"):
        ndshm.read_hdf5(path, "vlen")
    with pytest.raises(TypeError, match="not a dataset"):
        ndshm.read_hdf5(path, "group")
    with pytest.raises(KeyError, match="no dataset 'missing'"):
        ndshm.read_hdf5(path, "missing")
    with pytest.raises(ValueError, match="threads"):
        ndshm.read_hdf5(path, "x", threads=0)


def test_thread_counts_and_many_chunks_agree(tmp_path):
    path = tmp_path / "many.h5"
    data = _values(COMPOUND, 200_000)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("x", data=data, chunks=(211,), compression="gzip", shuffle=True)
    for threads in (1, 2, 5):
        _same(ndshm.read_hdf5(path, "x", threads=threads), data)


def test_a_file_with_a_user_block_reads_back(tmp_path):
    path = tmp_path / "ub.h5"
    data = _values("<f8", 5000)
    with h5py.File(path, "w", userblock_size=4096) as h5:
        h5.create_dataset("c", data=data)
        h5.create_dataset("z", data=data, chunks=(300,), compression="gzip")
    for name in ("c", "z"):
        _same(ndshm.read_hdf5(path, name), data)


def _damage(path: Path, name: str, index: int) -> tuple:
    """Overwrites the first 16 bytes of stored chunk `index` of dataset name; returns its origin. (A
    chunk of 0xff bytes only would pass fletcher32: its sum of all-ones words is all ones too.)"""
    with h5py.File(path) as h5:
        info = h5[name].id.get_chunk_info(index)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset)
        f.write(b"\xff" * 16)
    return tuple(info.chunk_offset)


@pytest.mark.parametrize("filters", [f for f in FILTERS if f not in ("contiguous", "chunked")])
def test_a_damaged_chunk_names_dataset_and_chunk_and_leaves_no_segment(filters, tmp_path, session):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as h5:
        _create(h5.create_group("g"), "x", np.arange(1000, dtype="<i4") % 50, FILTERS[filters])
    origin = _damage(path, "g/x", 3)
    fast = all(code in FAST for code, *_ in _pipeline(path, "g/x"))
    if fast:
        with pytest.raises(
            ndshm.ChunkError, match=rf"bad.h5: dataset /g/x: chunk at \({origin[0]},\)"
        ) as caught:
            ndshm.read_hdf5(path, "g/x")
        assert caught.value.dataset == "/g/x" and caught.value.chunk == origin
        assert isinstance(caught.value, OSError)
    else:  # h5py's own error, with the dataset named
        with pytest.raises(OSError, match="dataset /g/x"):
            ndshm.read_hdf5(path, "g/x")
    assert _core.list_segments(session) == []
    # rows the damaged chunk does not hold still read
    with h5py.File(path) as h5:
        _same(ndshm.read_hdf5(path, "g/x", rows=slice(0, 97 * 3)), h5["g/x"][: 97 * 3])
        if fast:  # and h5py agrees that the chunk is bad
            with pytest.raises(OSError):
                h5["g/x"][()]


def _pipeline(path, name):
    with h5py.File(path) as h5:
        plist = h5[name].id.get_create_plist()
        return [plist.get_filter(i) for i in range(plist.get_nfilters())]


def test_every_filter_here_is_decoded_by_the_core():
    """The build found libdeflate, zstd, blosc and lzf (tools/test-all.sh installs them)."""
    assert set(_core.decoded_filters()) == {1, 2, 3, 32000, 32001, 32015}


@pytest.mark.parametrize("layout", ["per-file", "concat"])
@pytest.mark.parametrize("compression", [None, "gzip:1", "lzf", "zstd", "blosc"])
def test_a_converted_file_reads_back_as_loadtxt_reads_its_inputs(layout, compression, tmp_path):
    dtype = np.dtype([("chr", "S5"), ("pos", "<i4"), ("pct", "<f4"), ("c", "<i4"), ("t", "<i4")])
    paths = []
    for k, n in enumerate((4000, 70_000, 1)):
        text = "".join(f"chr{i % 22 + 1}\t{1000 + i}\t{i % 10000 / 100:.2f}\t{i % 60}\t{i % 13}\n"
                       for i in range(100 * k, 100 * k + n))  # fmt: skip
        path = tmp_path / f"part{k}.cov{'.gz' if k == 1 else ''}"
        path.write_bytes(gzip.compress(text.encode()) if k == 1 else text.encode())
        paths.append(path)
    out = ndshm.to_hdf5(paths, tmp_path / "out.h5", dtype=dtype, delimiter="\t", layout=layout,
                        compression=compression, progress=False)  # fmt: skip
    expected = [np.atleast_1d(np.loadtxt(p, dtype=dtype, delimiter="\t")) for p in paths]
    if layout == "concat":
        got = ndshm.read_hdf5(out, "data")
        _same(got, np.concatenate(expected))
        index = ndshm.read_hdf5(
            out, "index", fields=["first_row", "rows"]
        )  # its "file" field: h5py's strings
        assert index.tolist() == [(0, 4000), (4000, 70_000), (74_000, 1)]
    else:
        with h5py.File(out) as h5:
            names = list(h5)
        for name, want in zip(sorted(names), expected, strict=True):
            _same(ndshm.read_hdf5(out, name), want)
            _same(ndshm.read_hdf5(out, name, rows=slice(1, 3000), fields="pos"), want["pos"][1:3000])
