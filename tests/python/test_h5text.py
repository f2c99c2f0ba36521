"""ndshm cat and ndshm ls-h5: rows of HDF5 datasets as text that numpy.loadtxt reads back exactly, and a
file's datasets listed."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

import ndshm

RECORDS = np.dtype([("chr", "S6"), ("pos", "<i4"), ("pct", "<f4"), ("big", ">f8"), ("ok", "?")])


def _ndshm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ndshm", *map(str, args)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.fixture
def h5file(tmp_path):
    path = tmp_path / "f.h5"
    rng = np.random.default_rng(3)
    records = np.zeros(5000, RECORDS)
    records["chr"] = [f"chr{i % 22}".encode() for i in range(5000)]
    records["pos"] = np.arange(5000) * 3 - 100
    records["pct"] = rng.random(5000, np.float32) * 100
    records["big"] = rng.standard_normal(5000) * 1e300
    records["ok"] = np.arange(5000) % 3 == 0
    with h5py.File(path, "w") as h5:
        h5.create_dataset("records", data=records, chunks=(333,), compression="gzip", shuffle=True)
        h5.create_dataset("matrix", data=rng.standard_normal((40, 3)))
        h5.create_dataset("odd", data=np.array([b"a,b", b'say "hi"', b"\xff"], "S9"))
        h5["records"].attrs["source"] = "/data/sample0.cov"
        h5.create_group("g").create_dataset("counts", data=np.arange(7, dtype="<u2"), chunks=(2,))
    return path, records


def test_cat_prints_rows_that_loadtxt_reads_back_exactly(h5file):
    path, records = h5file
    result = _ndshm("cat", path, "records")
    assert result.returncode == 0, result.stderr
    back = np.loadtxt(result.stdout.splitlines(), dtype=RECORDS, delimiter="\t",
                      converters={4: lambda s: s == "1"})  # fmt: skip
    assert back.tobytes() == records.tobytes()
    matrix = _ndshm("cat", path, "matrix", "--rows", "5:9", "--format", "csv")
    with h5py.File(path) as h5:
        np.testing.assert_array_equal(
            np.loadtxt(matrix.stdout.splitlines(), delimiter=","), h5["matrix"][5:9]
        )


def test_cat_rows_header_and_csv_quoting(h5file):
    path, records = h5file
    lines = _ndshm("cat", path, "records", "--rows=-3:", "--header").stdout.splitlines()
    assert lines[0] == "chr\tpos\tpct\tbig\tok"
    assert [line.split("\t")[1] for line in lines[1:]] == [str(p) for p in records["pos"][-3:]]
    assert _ndshm("cat", path, "odd", "--format", "csv").stdout.splitlines() == [
        '"a,b"',
        '"say ""hi"""',
        "\\xff",
    ]
    assert _ndshm("cat", path, "g/counts", "--rows", "2:4").stdout == "2\n3\n"


def test_cat_reads_big_datasets_in_blocks(h5file, monkeypatch, tmp_path):
    from io import StringIO

    from ndshm import _h5text

    path, records = h5file
    monkeypatch.setattr(_h5text, "BLOCK_BYTES", 1000)  # 50 rows a block
    out = StringIO()
    assert _h5text.cat(path, "records", out, rows=slice(10, 4000)) == 3990
    assert out.getvalue() == _ndshm("cat", path, "records", "--rows", "10:4000").stdout


def test_cat_errors_name_what_is_wrong(h5file):
    path, _ = h5file
    missing = _ndshm("cat", path, "nope")
    assert missing.returncode == 1 and f"{path} has no dataset 'nope'" in missing.stderr
    bad = _ndshm("cat", path, "records", "--rows", "five")
    assert bad.returncode == 2 and "rows must be A:B" in bad.stderr
    absent = _ndshm("cat", path.with_name("absent.h5"), "records")
    assert absent.returncode == 1 and "absent.h5" in absent.stderr


def test_cat_into_a_closed_pipe_stops_quietly(h5file):
    """As `ndshm cat ... | head -1` once head has exited: the pipe's reader is gone before the rows come."""
    path, _ = h5file
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        command = [sys.executable, "-m", "ndshm", "cat", str(path), "records"]
        result = subprocess.run(command, stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)
    assert result.returncode == 141  # as a tool that SIGPIPE ended
    assert result.stderr == b""


def test_ls_h5_lists_datasets_rows_dtypes_and_sources(h5file):
    path, _ = h5file
    result = _ndshm("ls-h5", path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["DATASET", "ROWS", "SHAPE", "DTYPE", "STORAGE", "SOURCE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == ["/g/counts", "/matrix", "/odd", "/records"]
    assert rows["/records"][1:] == ["5000", "(5000,)", "chr:S6,pos:i4,pct:f4,big:>f8,ok:b1", "chunks", "333",
                                    "shuffle+deflate", "/data/sample0.cov"]  # fmt: skip
    assert rows["/matrix"][1:] == ["40", "(40,", "3)", "<f8", "contiguous", "-"]
    assert _ndshm("ls-h5", path.with_name("absent.h5")).returncode == 1


def test_ls_h5_of_a_converted_file(tmp_path):
    text = tmp_path / "s.cov"
    text.write_text("".join(f"chr1\t{i}\t50.0\t1\t1\n" for i in range(100)))
    out = ndshm.to_hdf5([text], tmp_path / "o.h5", format="coverage5", progress=False)
    lines = _ndshm("ls-h5", out).stdout.splitlines()
    assert lines[1].split()[0:2] == ["/s.cov", "100"] and lines[1].endswith(str(text.resolve()))
