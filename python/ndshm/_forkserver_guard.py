"""Imported into multiprocessing's fork server by ndshm.to_hdf5 (set_forkserver_preload): the fork
server, and so the loading workers it forks, die with the run even when the run is killed with -9.

The server is told its run's pid through NDSHM_FORKSERVER_PARENT, set only while the server starts and
removed from the environment here, so that no other process sees it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
ENV = "NDSHM_FORKSERVER_PARENT"


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent exits; exit now if the parent is already gone."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _guard_from_environment() -> None:
    parent = os.environ.pop(ENV, None)
    # Only in the fork server itself (python -c "from multiprocessing.forkserver import main; ...").
    in_fork_server = sys.argv[:1] == ["-c"] and "multiprocessing.forkserver" in sys.modules
    if parent is not None and parent.isdigit() and in_fork_server:
        die_with_parent(int(parent))


_guard_from_environment()
