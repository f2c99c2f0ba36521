"""Every test runs in a session of its own and must leave nothing behind (checked after each test)."""

from __future__ import annotations

import gc
import itertools
import os

import pytest
from hypothesis import settings
from leaks import broker_pids, children, memfd_holders, open_fds, wait_exit

from ndshm import _core

_counter = itertools.count()

# CI runs the same examples every time (a red run must be reproducible); local runs explore anew.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def session(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh ndshm session for the test; afterwards: no segment, broker, child or descriptor left."""
    name = f"t{os.getpid()}-{next(_counter)}"
    monkeypatch.setenv("NDSHM_SESSION", name)
    fds_before = open_fds()
    yield name
    gc.collect()
    leftover = _core.list_segments(name)
    pid = _core.broker_pid(name)
    _core.disconnect(name)
    problems = []
    if leftover:
        problems.append(f"segments still registered: {leftover}")
    if pid and not wait_exit(pid, timeout=15):
        problems.append(f"broker {pid} did not exit after its last client left")
    if holders := memfd_holders(name):
        problems.append(f"processes still map segments: {holders}")
    if brokers := broker_pids(name):
        problems.append(f"broker processes left: {brokers}")
    if kids := children():
        problems.append(f"child processes left: {kids}")
    new_fds = open_fds() - fds_before
    if new_fds:
        problems.append(f"descriptors left open: {sorted(new_fds)}")
    assert not problems, "leak after test: " + "; ".join(problems)
