"""The ndshm command, run for real."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ndshm
from ndshm import _core


def _ndshm(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ndshm", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ls_shows_handle_size_dtype_shape_holders_and_age(session):
    import os

    array = ndshm.zeros((1000, 3), "<f4")
    named = ndshm.SharedMemory("kept", create=True, size=4096)
    out = _ndshm("ls", "--session", session)
    lines = out.splitlines()
    header = ["SEGMENT", "SIZE", "DTYPE", "SHAPE", "HOLDERS", "PROGRAM", "AGE", "STATE"]
    assert lines[0].split() == header
    row = next(line for line in lines if ndshm.segment_of(array).name in line)
    assert "11.7 KiB" in row and "<f4" in row and "(1000, 3)" in row and str(os.getpid()) in row
    assert _core.program_id() in row  # the creating program
    assert any(f"{session}:kept" in line and "named" in line for line in lines)
    assert session in _ndshm("ls")  # every session of the user by default
    named.close()
    named.unlink()
    del array
    assert _ndshm("ls", "--session", session).strip() == "no live segments"


def test_gc_reclaims_what_no_process_maps(session):
    array = ndshm.zeros(10)
    ndshm.handle(array)  # a hand-over nobody will take
    name = ndshm.segment_of(array).name
    assert "nothing to reclaim" in _ndshm("gc", "--session", session, "--min-age", "0")  # mapped
    del array
    assert name in _ndshm("ls", "--session", session)  # kept for the pending handle
    out = _ndshm("gc", "--session", session, "--min-age", "0")
    assert "reclaimed 1 segment" in out
    assert "no live segments" in _ndshm("ls", "--session", session)


def test_help_and_version():
    assert "ls" in _ndshm("--help") and "gc" in _ndshm("--help")
    assert _ndshm("--version").startswith("ndshm ")


def test_gc_program_frees_what_one_program_kept(session):
    # A program (python -c: a program of its own) keeps a name and a hand-over past its end.
    code = (
        "import ndshm; s = ndshm.SharedMemory('left', create=True, size=64, track=False)\n"
        "print(ndshm.handle(ndshm.zeros(3), persist=True)); print(ndshm._core.program_id())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text, program = result.stdout.split()
    assert program != _core.program_id()
    mine = ndshm.zeros(5)  # this program's: spared
    ndshm.handle(mine)
    rows = [line for line in _ndshm("ls", "--session", session).splitlines() if program in line]
    assert len(rows) == 2 and all(line.endswith("kept") for line in rows)
    assert "nothing to reclaim" in _ndshm("gc", "--session", session, "--program", _core.program_id())
    assert "reclaimed 2 segment" in _ndshm("gc", "--session", session, "--program", program)
    with pytest.raises(ndshm.SegmentNotFoundError):
        ndshm.attach(text)
    del mine
    assert "reclaimed 1 segment" in _ndshm("gc", "--session", session, "--min-age", "0")
