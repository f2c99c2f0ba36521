"""numpy's own specification of loadtxt, its test module, run against ndshm.loadtxt.

The installed numpy's numpy/lib/tests/test_loadtxt.py is copied at test time (never vendored) beside a
conftest that puts ndshm.loadtxt in numpy.loadtxt's place before the module is imported, and run by
pytest in a process of its own. Only the deliberate differences below (README.md, "Loading text") may
fail, five at most.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# test id -> why ndshm differs on purpose
DELIBERATE: dict[str, str] = {}

CONFTEST = """import numpy
import ndshm
numpy.loadtxt = ndshm.loadtxt
"""


@pytest.mark.slow
def test_numpy_s_own_loadtxt_tests_pass_against_ndshm(tmp_path):
    source = Path(np.__file__).parent / "lib" / "tests" / "test_loadtxt.py"
    assert source.is_file(), f"numpy {np.__version__} ships no {source}"
    (tmp_path / "test_loadtxt.py").write_text(source.read_text())
    (tmp_path / "conftest.py").write_text(CONFTEST)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "-o", "addopts=",
         "-W", "default", "test_loadtxt.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    summary = result.stdout.strip().splitlines()[-1]
    failed = set(re.findall(r"^FAILED test_loadtxt\.py::(\S+)", result.stdout, re.MULTILINE))
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert failed <= DELIBERATE.keys(), f"{summary}\n{result.stdout[-6000:]}"
    assert len(failed) <= 5 and passed >= 290, summary
    assert "error" not in summary, result.stdout[-6000:]
