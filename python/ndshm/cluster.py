"""ndshm on a Dask cluster: ``to_hdf5(..., executor=client)`` and ``ndshm convert --scheduler ADDRESS``.

Each input is parsed by one Dask task (C++ threads inside the worker) into ndshm shared memory on that
worker's node. The task returns a `Piece`: a handle, the node's identity, the worker's address, shape and
dtype; never the array. The worker keeps the array (`_held`) for exactly as long as Dask keeps the task's
result, so the memory goes when the writer releases the future, when the client or the scheduler goes
away (Dask releases the key; a worker that loses its scheduler closes), or with the worker's process;
at the latest when the run ends (the writer then tells every worker to drop the run's arrays).

The writer (the client process) then either
* attaches the handle, with zero copies, when the piece lives on its own node, or
* fetches the rows from the worker that holds them, in pieces of about 32 MiB (the worker's "run"
  handler over a direct connection, so a busy worker answers at once and the bytes do not pass through
  the scheduler), one piece ahead of the HDF5 writes; bytes cross once.

A worker killed while parsing: Dask runs the task again. A worker that dies or retires after its task,
before its rows were taken: the writer submits that input again (up to RETRIES times, then an error).
"""

from __future__ import annotations

import asyncio
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
from ._loading import Loaded, load

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

    def setup(self, worker: Any) -> None:
        self.worker = worker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        # Told after the transition: the task's real state decides (a release asked of a running
        # task leaves it "cancelled", still running, and it may be wanted again).
        task = self.worker.state.tasks.get(key)
        if task is None or task.state in ("released", "forgotten", "error"):
            _forget([key])

    def teardown(self, worker: Any) -> None:
        with _held_lock:
            _held.clear()


def dask_runner(executor: Any, threads: int | None) -> DaskRunner | None:
    """The runner for a run on executor when it is a dask.distributed Client (or its executor), else
    None: ndshm._loading's plug-in point for Dask."""
    client = client_of(executor)
    return None if client is None else DaskRunner(client, threads)


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
    array = load(path, options)
    key = worker.get_current_task()
    with _held_lock:
        _held[key] = array
    handle = _array._layout(array, _array.segment_of(array))  # noqa: SLF001 (no ticket: _held keeps it)
    return Piece(key, handle, node_id(), worker.address, array.shape, array.dtype)


def _forget(keys: list) -> int:
    """Drops the arrays of these tasks still held; returns how many. Run on every worker when a run ends,
    and for a task whose result Dask released."""
    with _held_lock:
        return sum(_held.pop(key, None) is not None for key in keys)


def _read_rows(key: Any, start: int, stop: int) -> np.ndarray:
    """Runs on the worker that holds key: a copy of rows [start, stop) in ordinary memory."""
    with _held_lock:
        array = _held.get(key)
    if array is None:
        raise LookupError(f"ndshm: the rows of task {key!r} are no longer held on this worker")
    return np.array(array[start:stop])


async def _fetch_direct(client: Any, worker: str, key: Any, start: int, stop: int) -> np.ndarray:
    """_read_rows on that worker, over a connection of our own (Client.run would route the bytes
    through the scheduler)."""
    from distributed.protocol.pickle import dumps

    response = await client.rpc(worker).run(
        function=dumps(_read_rows), args=dumps((key, start, stop)), kwargs=dumps({}), wait=True
    )
    if response.get("status") != "OK":
        raise RuntimeError(f"reading rows on {worker} failed: {response.get('exception')!r}")
    return response["result"]


class _Fetched(Loaded):
    """An input whose rows live on another node: fetched in pieces, one piece ahead of the writer."""

    def __init__(self, runner: DaskRunner, future: Any, piece: Piece, path: str) -> None:
        self.runner, self.future, self.piece, self.path = runner, future, piece, path
        self.shape, self.dtype = piece.shape, piece.dtype
        self.closed = False

    def _fetch(self, start: int, stop: int) -> np.ndarray:
        for attempt in range(RETRIES + 1):
            piece = self.piece
            try:
                return self.runner.client.sync(_fetch_direct, self.runner.client, piece.worker, piece.key,
                                               start, stop)  # fmt: skip
            except Exception as error:  # the worker died, restarted or retired: load the input again
                if attempt == RETRIES or self.closed:
                    raise RuntimeError(
                        f"{self.path}: lost the worker holding its rows {attempt + 1} times ({error})"
                    ) from error
                self.future = self.runner.resubmit(self.future)
                self.piece = self.runner.piece_of(self.future)
                if self.piece.shape != self.shape or self.piece.dtype != self.dtype:
                    raise RuntimeError(f"{self.path}: its rows changed when loaded again") from error
        raise AssertionError("unreachable")

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        total = self.shape[0]
        starts = range(0, total, rows)
        ahead = ThreadPoolExecutor(1)
        try:
            pending = [ahead.submit(self._fetch, s, min(s + rows, total)) for s in starts[:1]]
            for k, start in enumerate(starts):
                if k + 1 < len(starts):
                    nxt = starts[k + 1]
                    pending.append(ahead.submit(self._fetch, nxt, min(nxt + rows, total)))
                yield start, pending.pop(0).result()
        finally:  # also when the writer stops early: do not wait for a fetch in flight
            self.closed = True
            ahead.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.closed = True
        self.runner.release(self.future)


class DaskRunner:
    """Loads inputs as tasks on a dask.distributed cluster (see the module's docstring)."""

    NO_WORKERS_TIMEOUT = 60.0  # seconds without any worker before a run gives up

    def __init__(self, client: Any, threads: int | None) -> None:
        self.client = client
        self.threads = threads
        client.register_plugin(SharedResults())
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        self.workers_per_host = dict(Counter(w["host"] for w in workers))
        self.slots = max(1, sum(w.get("nthreads", 1) for w in workers))  # tasks that run at once
        self.here = node_id()
        self.jobs: dict[Any, tuple[Path, dict]] = {}

    def submit(self, path: Path, options: dict) -> Any:
        options = {**options, "threads": self.threads}
        future = self.client.submit(_load_on_worker, str(path), options, self.workers_per_host, pure=False,
                                    key=f"ndshm-load-{path.name}-{os.urandom(8).hex()}")  # fmt: skip
        self.jobs[future.key] = (path, options)
        return future

    def resubmit(self, future: Any) -> Any:
        """A new task for the same input (its rows were lost with a worker that died or retired; Dask
        would not always compute the old one again: a retiring worker's results move, ours cannot)."""
        path, options = self.jobs[future.key]
        self.client.cancel([future])
        log.warning("%s: loading it again (the worker that held its rows is gone)", path)
        return self.submit(path, options)

    def piece_of(self, future: Any) -> Piece:
        path = self.jobs[future.key][0]
        idle = 0.0
        while True:
            try:
                piece = future.result(timeout=5)
                break
            except (TimeoutError, asyncio.TimeoutError):
                idle = 0.0 if self.client.scheduler_info(n_workers=1)["workers"] else idle + 5
                if idle >= self.NO_WORKERS_TIMEOUT:
                    raise RuntimeError(f"{path}: no Dask worker for {idle:.0f} s") from None
        if not isinstance(piece, Piece):
            raise TypeError(f"{path}: the loading task returned {type(piece).__name__}, not a Piece")
        return piece

    def take(self, future: Any) -> Loaded:
        path = self.jobs[future.key][0]
        for attempt in range(RETRIES + 1):
            piece = self.piece_of(future)
            if piece.node != self.here:
                log.info("%s: fetching %s rows from %s (another node)", path, piece.shape[0], piece.worker)
                return _Fetched(self, future, piece, str(path))
            try:  # while we hold the future, its worker holds the array: no ticket needed
                array = _array._attach(piece.handle, readonly=True, redeem=False)  # noqa: SLF001
            except FileNotFoundError as error:  # its worker went away after the task
                if attempt == RETRIES:
                    raise RuntimeError(
                        f"{path}: lost the worker holding its rows {attempt + 1} times"
                    ) from error
                future = self.resubmit(future)
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
        """Every task of the run was released or cancelled, but Dask tells the workers when it gets to it
        (a race a test caught: a worker still held a result after to_hdf5 returned). Tell them now, and
        wait: once the run ends, no worker holds its rows."""
        if not self.jobs:
            return
        try:
            self.client.run(_forget, list(self.jobs), on_error="ignore")
        except Exception as error:  # a cluster gone meanwhile: its workers went with their rows
            log.warning("could not tell the Dask workers to drop this run's rows: %s", error)
