"""Which program this process belongs to (docs/design.md, "Programs"). Names and handles in flight
belong to a program and go when its last process has gone: multiprocessing's children (fork, spawn,
forkserver) join their parent's program; any other program started from it (``subprocess``, exec)
founds its own, as ``multiprocessing.shared_memory``'s users expect of a ``python -c`` child.

A process that imports ndshm exports ``NDSHM_PROGRAM=<program id>@<its pid>``. A process started with
it joins that program only if it and every process between it and the exporter were started by
multiprocessing (their command lines are multiprocessing's spawn or fork-server ones; a fork keeps
its parent's command line; a fork()ed child of a process that imported ndshm keeps its program in
memory and exports it again).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import _core

ENV = "NDSHM_PROGRAM"
_STARTED_BY_MULTIPROCESSING = (
    b"from multiprocessing.spawn import spawn_main",
    b"from multiprocessing.forkserver import main",
)


def _by_multiprocessing(pid: int) -> bool:
    """pid runs a command line of multiprocessing's: python [flags] -c 'from multiprocessing...'."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if b"-c" not in argv:
        return False
    at = argv.index(b"-c") + 1
    return at < len(argv) and argv[at].startswith(_STARTED_BY_MULTIPROCESSING)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _inherited(value: str) -> str | None:
    """The program id in value if this process descends from its exporter through multiprocessing only."""
    program, _, exporter = value.rpartition("@")
    if not program or not exporter.isdigit():
        return None
    pid = os.getpid()
    for _ in range(256):
        if pid == int(exporter):
            return program
        if pid <= 1 or not _by_multiprocessing(pid):
            return None
        pid = _parent(pid)
    return None


def _export() -> None:
    os.environ[ENV] = f"{_core.program_id()}@{os.getpid()}"


def join() -> None:
    """Joins the inherited program if multiprocessing started this process; exports the program
    (again in each fork()ed child, whose own children then see it as their exporter)."""
    value = os.environ.get(ENV)
    program = _inherited(value) if value else None
    if program is not None:
        _core.set_program_id(program)
    _export()
    os.register_at_fork(after_in_child=_export)
