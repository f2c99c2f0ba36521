"""Another program for the tests (a python -c child: a program of its own) that leaves a named
segment and is killed with SIGKILL, and a wait, on the broker's answers, for that name to go."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import ndshm

_LEAVER = (
    "import sys, ndshm\n"
    "s = ndshm.SharedMemory(create=True, size=10)\n"
    "s.buf[:4] = b'left'\n"
    "print(s.name, ndshm._core.program_id(), flush=True)\n"
    "sys.stdin.read()\n"
)


def killed_program_name() -> tuple[str, str]:
    """Runs a program that creates a named segment (not unlinked) and SIGKILLs it once it has;
    returns the segment's name and the program's id."""
    with subprocess.Popen(
        [sys.executable, "-c", _LEAVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        name, program = child.stdout.readline().split()
        child.send_signal(signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL
    return name, program


def wait_gone(name: str, timeout: float = 20) -> None:
    """Waits until SharedMemory(name) raises FileNotFoundError (each try is a request to the broker:
    no sleep); fails after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ndshm.SharedMemory(name).close()
        except FileNotFoundError:
            return
    raise AssertionError(f"{name} outlived its killed program by {timeout} s")
