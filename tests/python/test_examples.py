"""The example programs run as a user runs them: no warning, no error, right data, nothing left."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ndshm

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("script", ["queue_pattern.py", "pool_pattern.py"])
def test_python_examples_run_cleanly(script, session):
    result = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / script)],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no resource_tracker warning, no traceback
    lines = result.stdout.splitlines()
    assert lines == [
        "sample0.cov: 5000 rows, shared=True, sum(c)=14995",
        "sample1.cov: 5000 rows, shared=True, sum(c)=14995",
    ]


@pytest.fixture(scope="session")
def cpp_example() -> Path:
    """The C++ example, built with CMake into the test build tree (as tools/test-all.sh does)."""
    build = ROOT / "build" / "cpp-tests"
    if not (build / "CMakeCache.txt").exists():
        subprocess.run(
            ["cmake", "-S", str(ROOT), "-B", str(build), "-DNDSHM_BUILD_TESTS=ON"],
            check=True,
            capture_output=True,
        )
    subprocess.run(
        ["cmake", "--build", str(build), "--target", "cpp_share_example", "ndshm-broker"],
        check=True,
        capture_output=True,
    )
    return build / "cpp_share_example"


def _run(program: Path, *args: str) -> str:
    env = dict(os.environ, NDSHM_BROKER=str(Path(ndshm.__file__).with_name("ndshm-broker")))
    result = subprocess.run([str(program), *args], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_python_attaches_arrays_a_cpp_program_made_and_left(cpp_example):
    values_handle, records_handle = _run(cpp_example, "make", "1000").splitlines()
    values = ndshm.attach(values_handle)  # the C++ process has exited already
    np.testing.assert_array_equal(values, np.arange(1000) * 0.5)
    records = ndshm.attach(records_handle)
    assert records.dtype == np.dtype([("chr", "S10"), ("pos", "<i4")])
    assert records[0].tolist() == (b"chr1", 1000) and records[999].tolist() == (b"chr10", 1999)


def test_a_cpp_program_attaches_and_writes_an_array_python_made(cpp_example):
    values = ndshm.share(np.arange(100, dtype="<f8"))
    total = _run(cpp_example, "negate", ndshm.handle(values))
    assert float(total) == 4950.0
    np.testing.assert_array_equal(values, -np.arange(100))  # written in place by C++


def test_convert_demo_runs_the_main_job(session):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "convert_demo.py"), "20000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("$ ndshm convert sample0.cov sample1.cov -o coverage.h5")
    assert "sample0.cov: 20000 rows of [('chr', 'S5')" in result.stdout  # chr1..chr22
    assert "sample1.cov: 20000 rows" in result.stdout


def test_readback_pool_workers_share_one_copy(session):
    rows = 200_000
    result = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / "readback_pool.py"), str(rows)],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("$ ndshm convert sample0.cov sample1.cov -o coverage.h5")
    assert lines[1] == f"read back: {rows} rows, {rows * 21 / 2**20:.1f} MiB, shared=True"
    # the means, from numpy.loadtxt of the same inputs
    import importlib.util
    import tempfile

    spec = importlib.util.spec_from_file_location("readback_pool", EXAMPLES / "readback_pool.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    with tempfile.TemporaryDirectory() as folder:
        dtype = ndshm.hdf5.parse_dtype_spec(example.DTYPE)
        data = np.concatenate([np.loadtxt(p, dtype=dtype, delimiter="\t")
                               for p in example.demo_inputs(Path(folder), rows)])  # fmt: skip
    expected = [f"chr{k}: mean methylation {data['pct'][data['chr'] == f'chr{k}'.encode()].mean():.3f}%"
                for k in range(1, 23)]  # fmt: skip
    assert lines[2:24] == expected
    shared, private = (float(x) for x in re.findall(r"([\d.]+) MiB", lines[24]))
    assert shared < 0.75 * private  # two workers over one copy, against a copy each
