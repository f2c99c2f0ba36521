"""ndshm on a Dask cluster: ``to_hdf5(..., executor=client)`` and ``ndshm convert --scheduler ADDRESS``.

Each input is parsed by one Dask task (C++ threads inside the worker) into ndshm shared memory on that
worker's node. The task returns a `Piece`: a handle, the node's identity, the worker's address, shape and
dtype; never the array. The worker keeps the array (`_held`) for exactly as long as Dask keeps the task's
result, so the memory goes when the writer releases the future, when the client or the scheduler goes
away (Dask releases the key; a worker that loses its scheduler closes), or with the worker's process.

The writer (the client process) then either
* attaches the handle, with zero copies, when the piece lives on its own node, or
* fetches the rows from the worker that holds them, in pieces of about 32 MiB (``Client.run`` on that
  worker, so a busy worker answers at once), one piece ahead of the HDF5 writes; bytes cross once.

If a worker dies before its rows were taken, Dask computes the task again and the writer starts that
input again (up to RETRIES times).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _array
from .hdf5 import Loaded, _load

__all__ = ["Piece", "SharedResults", "node_id"]

RETRIES = 3
log = logging.getLogger(__name__)

# Arrays whose Piece is a task result in this worker, by task key.
_held: dict[Any, np.ndarray] = {}
_held_lock = threading.Lock()


def node_id() -> str:
    """Which processes can attach each other's segments: the same kernel (boot id), network namespace
    (brokers listen on abstract sockets) and user. $NDSHM_NODE_ID overrides it (tests use it to make
    two workers on one machine behave as two nodes)."""
    override = os.environ.get("NDSHM_NODE_ID")
    if override:
        return override
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return f"{boot}:{os.stat('/proc/self/ns/net').st_ino}:{os.getuid()}"


@dataclass(frozen=True)
class Piece:
    """What a loading task returns: enough to attach the array on its node or to fetch it elsewhere."""

    key: Any
    handle: str
    node: str
    worker: str
    shape: tuple[int, ...]
    dtype: np.dtype


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # dask is optional: without it there is no cluster to run on
    WorkerPlugin = object  # type: ignore[assignment,misc]


class SharedResults(WorkerPlugin):  # type: ignore[misc,valid-type]
    """Drops a worker's reference to a loaded array when Dask releases the task's result."""

    name = "ndshm"
    idempotent = True  # registering it again (another run on the same cluster) keeps the first

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish in ("released", "forgotten", "error"):
            with _held_lock:
                _held.pop(key, None)

    def teardown(self, worker: Any) -> None:
        with _held_lock:
            _held.clear()


def client_of(executor: Any):
    """The distributed.Client behind executor (a Client or client.get_executor()), or None."""
    from distributed import Client
    from distributed.cfexecutor import ClientExecutor

    if isinstance(executor, Client):
        return executor
    if isinstance(executor, ClientExecutor):
        return executor._client  # noqa: SLF001
    return None


def _load_on_worker(path: str, options: dict, workers_per_host: dict[str, int]) -> Piece:
    from distributed import get_worker

    worker = get_worker()
    if options.get("threads") is None:  # the node's cores, shared among its workers
        options = {**options, "threads": max(1, (os.cpu_count() or 1) // workers_per_host.get(worker.ip, 1))}
    array = _load(path, options)
    key = worker.get_current_task()
    with _held_lock:
        _held[key] = array
    handle = _array._layout(array, _array.segment_of(array))  # noqa: SLF001 (no ticket: _held keeps it)
    return Piece(key, handle, node_id(), worker.address, array.shape, array.dtype)


def _read_rows(key: Any, start: int, stop: int) -> np.ndarray:
    """Runs on the worker that holds key: a copy of rows [start, stop) in ordinary memory."""
    with _held_lock:
        array = _held.get(key)
    if array is None:
        raise LookupError(f"ndshm: the rows of task {key!r} are no longer held on this worker")
    return np.array(array[start:stop])


class _Fetched(Loaded):
    """An input whose rows live on another node: fetched in pieces, one piece ahead of the writer."""

    def __init__(self, runner: DaskRunner, future: Any, piece: Piece, path: str) -> None:
        self.runner, self.future, self.piece, self.path = runner, future, piece, path
        self.shape, self.dtype = piece.shape, piece.dtype

    def _fetch(self, start: int, stop: int) -> np.ndarray:
        for attempt in range(RETRIES + 1):
            piece = self.piece
            try:
                got = self.runner.client.run(_read_rows, piece.key, start, stop, workers=[piece.worker])
                return got[piece.worker]
            except Exception as error:  # the worker died or restarted: Dask computes the task again
                if attempt == RETRIES:
                    raise RuntimeError(
                        f"{self.path}: lost the worker holding its rows {RETRIES + 1} times ({error})"
                    ) from error
                self.piece = self.runner.piece_of(self.future, self.path)
                if self.piece.shape != self.shape or self.piece.dtype != self.dtype:
                    raise RuntimeError(f"{self.path}: its rows changed when loaded again") from error
        raise AssertionError("unreachable")

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        total = self.shape[0]
        starts = range(0, total, rows)
        with ThreadPoolExecutor(1) as ahead:
            pending = [ahead.submit(self._fetch, s, min(s + rows, total)) for s in starts[:1]]
            for k, start in enumerate(starts):
                if k + 1 < len(starts):
                    nxt = starts[k + 1]
                    pending.append(ahead.submit(self._fetch, nxt, min(nxt + rows, total)))
                yield start, pending.pop(0).result()

    def close(self) -> None:
        self.runner.release(self.future)


class DaskRunner:
    """Loads inputs as tasks on a dask.distributed cluster (see the module's docstring)."""

    def __init__(self, client: Any, threads: int | None) -> None:
        self.client = client
        self.threads = threads
        client.register_plugin(SharedResults())
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        self.workers_per_host = dict(Counter(w["host"] for w in workers))
        self.here = node_id()
        self.paths: dict[Any, str] = {}

    def submit(self, path: Path, options: dict) -> Any:
        options = {**options, "threads": self.threads}
        future = self.client.submit(_load_on_worker, str(path), options, self.workers_per_host, pure=False,
                                    key=f"ndshm-load-{path.name}-{os.urandom(8).hex()}")  # fmt: skip
        self.paths[future.key] = str(path)
        return future

    def piece_of(self, future: Any, path: str) -> Piece:
        piece = future.result()
        if not isinstance(piece, Piece):
            raise TypeError(f"{path}: the loading task returned {type(piece).__name__}, not a Piece")
        return piece

    def take(self, future: Any) -> Loaded:
        path = self.paths[future.key]
        for attempt in range(RETRIES + 1):
            piece = self.piece_of(future, path)
            if piece.node != self.here:
                log.info("%s: fetching %s rows from %s (another node)", path, piece.shape[0], piece.worker)
                return _Fetched(self, future, piece, path)
            try:  # while we hold the future, its worker holds the array: no ticket needed
                array = _array._attach(piece.handle, readonly=True, redeem=False)  # noqa: SLF001
            except FileNotFoundError:  # its worker died after the task: Dask computes it again
                if attempt == RETRIES:
                    raise
                continue
            self.release(future)  # our mapping keeps the memory from now on
            log.info("%s: attached %s rows on %s (this node)", path, piece.shape[0], piece.worker)
            return Loaded(array)
        raise AssertionError("unreachable")

    def release(self, future: Any) -> None:
        future.release()

    def cancel(self, futures: Any) -> None:
        futures = list(futures)
        if futures:
            self.client.cancel(futures)

    def close(self) -> None:
        pass
