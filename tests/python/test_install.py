"""The installed package runs on its own: its broker is found inside it, from any working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ndshm

_PROGRAM = """
import multiprocessing as mp, numpy as np, ndshm

def total(a):
    return float(a.sum())

if __name__ == "__main__":
    a = ndshm.zeros(1000) + 2.0
    with mp.get_context("spawn").Pool(1) as pool:
        print(pool.apply(total, (ndshm.share(a),)), ndshm.__file__)
"""


def test_the_broker_ships_inside_the_package():
    broker = Path(ndshm.__file__).with_name("ndshm-broker")
    assert broker.is_file() and os.access(broker, os.X_OK)


def test_an_installed_ndshm_works_from_any_directory_without_path(tmp_path, session):
    script = tmp_path / "program.py"
    script.write_text(_PROGRAM)
    # No PATH and no NDSHM_BROKER: the broker must be found beside the module, not looked up.
    env = {"NDSHM_SESSION": session, "HOME": str(tmp_path), "PATH": ""}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    value, module = result.stdout.split()
    assert float(value) == 2000.0
    assert Path(module) == Path(ndshm.__file__)  # the installed package, not a source tree
