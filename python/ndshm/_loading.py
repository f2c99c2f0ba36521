"""Loading for ndshm.to_hdf5: which runner loads the inputs, the windows a large input is loaded in, and
the pipeline that keeps loads ahead of the single writer.

Runners: in this process on ndshm.loadtxt's C++ threads (the default on one node), in worker processes
(loads numpy's parser must do, or workers= asked for), or on an executor (any concurrent.futures
executor; a dask.distributed Client through ndshm.cluster, which plugs in here). Each has submit(path,
options) -> future, take(future) -> Loaded, cancel(futures), close() and `slots`, the loads that run at
once.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._loadtxt import loadtxt, native, splittable


def load(path: str, options: dict) -> np.ndarray:
    """One input (or window) as to_hdf5 writes it: rows stay a dimension even for one-row files
    (records: 1-d; plain numbers: rows x columns). In a worker process the array comes back as an
    ndshm handle, never by value."""
    structured = np.dtype(options.get("dtype", float)).names is not None
    return loadtxt(path, ndmin=1 if structured else 2, **options)


class Loaded:
    """One loaded input as the writer sees it: its shape, dtype and rows in blocks. Here the whole
    array is mapped in this process; ndshm.cluster adds one whose rows are fetched from another node."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape, self.dtype = array.shape, array.dtype

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) pieces of at most `rows` rows, in order (here: one piece)."""
        yield 0, self.array

    def close(self) -> None:
        self.array = None  # the last reference to the rows in this process


class ThreadRunner:
    """Loads in this process, one input (or window) at a time on a thread of its own, with all of
    ndshm.loadtxt's C++ threads (the GIL released while they parse): the writer writes input k while
    k+1 loads. The rows are private memory, so no broker, fork server or worker process is started."""

    slots = 1  # one load ahead of the writer: it already has every core

    def __init__(self, threads: int | None) -> None:
        self.threads = threads or os.cpu_count() or 1
        self.pool = cf.ThreadPoolExecutor(1, thread_name_prefix="ndshm-load")

    def submit(self, path: Path, options: dict) -> cf.Future:
        return self.pool.submit(load, str(path), {**options, "threads": self.threads, "shared": False})

    def take(self, future: cf.Future) -> Loaded:
        return Loaded(future.result())

    def cancel(self, futures: Iterable[Any]) -> None:
        for future in futures:
            future.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)  # a load in flight ends first (one window)


class ProcessRunner:
    """Loads inputs in worker processes of a concurrent.futures executor; the arrays come back as
    ndshm handles. Without an executor: a process pool of its own (forkserver)."""

    def __init__(self, executor: cf.Executor | None, workers: int, threads: int | None) -> None:
        self.own = executor is None
        self.slots = workers  # loads that run at once
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        if executor is None:
            import multiprocessing as mp

            from ._forkserver_guard import die_with_parent

            # forkserver: workers do not inherit this process's threads or open HDF5 state. The fork
            # server and the workers die with this process, whatever kills it (see _forkserver_guard).
            context = mp.get_context("forkserver")
            context.set_forkserver_preload(["ndshm._forkserver_guard", "ndshm"])
            executor = cf.ProcessPoolExecutor(
                workers, mp_context=context, initializer=die_with_parent, initargs=(_forkserver_pid(),)
            )
        self.executor = executor

    def submit(self, path: Path, options: dict) -> cf.Future:
        return self.executor.submit(load, str(path), {**options, "threads": self.threads})

    def take(self, future: cf.Future) -> Loaded:
        return Loaded(future.result())

    def cancel(self, futures: Iterable[Any]) -> None:
        for future in futures:
            future.cancel()

    def close(self) -> None:
        if self.own:
            self.executor.shutdown(wait=True, cancel_futures=True)


def _forkserver_pid() -> int:
    """Starts the fork server if needed (telling it whose death to follow) and returns its pid, the
    parent of every worker."""
    from multiprocessing import forkserver

    from . import _forkserver_guard as guard

    os.environ[guard.ENV] = str(os.getpid())
    try:
        forkserver.ensure_running()
    finally:
        os.environ.pop(guard.ENV, None)
    return forkserver._forkserver._forkserver_pid  # noqa: SLF001


def runner_for(executor: Any, workers: int | None, threads: int | None, options: dict, inputs: int):
    """The runner for a run: the executor's (Dask through ndshm.cluster); worker processes when asked
    for (workers=) or when numpy's parser must load (it holds the GIL, which the writer needs); else
    this process's threads."""
    cores = os.cpu_count() or 1
    if executor is not None:
        if "distributed" in sys.modules:  # a Dask client can only come from an imported distributed
            from .cluster import dask_runner

            runner = dask_runner(executor, threads)
            if runner is not None:
                return runner
        return ProcessRunner(executor, workers or max(1, min(inputs, cores)), threads)
    if workers is None and native(options):
        return ThreadRunner(threads)
    return ProcessRunner(None, workers or max(1, min(inputs, cores)), threads)


def windows(path: Path, options: dict, window: int) -> list[tuple[int, int] | None]:
    """Byte ranges to load path in (ndshm.loadtxt's byte_range), or [None]: the whole file at once."""
    size = path.stat().st_size
    if size <= window or not splittable(path, options):
        return [None]
    return [(b, b + window if b + window < size else -1) for b in range(0, size, window)]


class Pipeline:
    """Loading jobs in input order, at most `ahead` submitted beyond the one being written, so that
    loaded rows waiting for the writer are bounded."""

    def __init__(self, runner, jobs: Iterable[tuple[Path, dict]], ahead: int) -> None:
        self.runner, self.jobs, self.ahead = runner, iter(jobs), ahead
        self.pending: deque = deque()
        self._fill()

    def _fill(self) -> None:
        while len(self.pending) < self.ahead and (job := next(self.jobs, None)) is not None:
            self.pending.append(self.runner.submit(*job))

    def take(self) -> Loaded:
        future = self.pending.popleft()
        self._fill()
        return self.runner.take(future)

    def cancel(self) -> None:
        self.runner.cancel(self.pending)
        self.pending.clear()


class Windowed(Loaded):
    """An input loaded as consecutive windows: its row count is known only at the end."""

    def __init__(self, pipeline: Pipeline, count: int, window: int, path: Path,
                 advance: Callable[[int], None]) -> None:  # fmt: skip
        self.pipeline, self.remaining, self.path, self.advance = pipeline, count - 1, path, advance
        self.window = window  # bytes of text per window, for the progress bar
        self.current: Loaded | None = pipeline.take()  # the first window with rows tells their shape
        while self.current.shape[0] == 0 and self.remaining:  # (an empty one says (0, 1), as numpy)
            self.current.close()
            self.remaining -= 1
            self.current = pipeline.take()
        self.shape, self.dtype = (None, *self.current.shape[1:]), self.current.dtype

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        offset = 0
        while self.current is not None:
            window = self.current
            if window.shape[0] and (window.dtype != self.dtype or window.shape[1:] != self.shape[1:]):
                raise ValueError(f"{self.path}: rows {offset}.. are {window.dtype} x {window.shape[1:]}, "
                                 f"the first {self.dtype} x {self.shape[1:]}")  # fmt: skip
            for start, block in window.blocks(rows):
                yield offset + start, block
            block = None  # this frame's last reference to the window's rows: they go before the next load
            offset += window.shape[0]
            window.close()
            self.advance(self.window)
            self.current = None
            if self.remaining:
                self.remaining -= 1
                self.current = self.pipeline.take()

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
