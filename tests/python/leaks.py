"""What a leak looks like from outside: processes, mappings and descriptors found through /proc."""

from __future__ import annotations

import os
import select
from pathlib import Path


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def memfd_holders(session: str) -> dict[int, list[str]]:
    """Processes that map or hold a descriptor of any segment of session, with what they hold."""
    needle = f"memfd:ndshm:{session}:"
    found: dict[int, list[str]] = {}
    for pid in _pids():
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
            held = [line.split()[-2] for line in maps.splitlines() if needle in line]
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except FileNotFoundError:  # closed meanwhile (in this process: iterdir's own)
                    continue
                if needle in target:
                    held.append(target)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if held:
            found[pid] = held
    return found


def broker_pids(session: str) -> list[int]:
    """Running (not zombie) broker processes of session."""
    pids = []
    for pid in _pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if argv and argv[0].endswith(b"ndshm-broker") and session.encode() in argv:
            pids.append(pid)
    return pids


# multiprocessing's own helpers live as long as the interpreter that started them, by design.
_HELPERS = (b"multiprocessing.resource_tracker", b"multiprocessing.forkserver")


def children(parent: int | None = None) -> list[int]:
    """Live child processes of parent (default: this process), multiprocessing's helpers aside."""
    parent = os.getpid() if parent is None else parent
    result = []
    for pid in _pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z" and not any(h in cmdline for h in _HELPERS):
            result.append(pid)
    return result


def wait_exit(pid: int, timeout: float) -> bool:
    """Waits (on a pidfd, not by polling) until pid exits; False if it is still running after timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def open_fds() -> set[str]:
    """This process's descriptors to segments and files (pipes and sockets belong to multiprocessing
    helpers that outlive a test; ndshm's own socket is checked by disconnecting and watching the broker)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        target = _target(fd)
        if not target.startswith(("pipe:", "socket:", "anon_inode:[pidfd]", "?", "/dev/")):
            found.add(f"{fd}->{target}")
    return found


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        return "?"
