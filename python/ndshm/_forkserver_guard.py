"""Imported into multiprocessing's fork server by ndshm.to_hdf5 (set_forkserver_preload): the fork
server, and so the loading workers it forks, die with the run even when the run is killed with -9."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent exits; exit now if the parent is already gone."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


if "NDSHM_RUN_PID" in os.environ:
    die_with_parent(int(os.environ["NDSHM_RUN_PID"]))
