"""Shared arrays crossing processes through every multiprocessing channel and start method."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import programs
import pytest
import workers

import ndshm
from ndshm import _core

START_METHODS = ["fork", "spawn", "forkserver"]
pytestmark = pytest.mark.parametrize("method", START_METHODS)


def test_queue_consumer_attaches_after_producer_exited(method):
    ctx = mp.get_context(method)
    queue = ctx.Queue()
    producer = ctx.Process(target=workers.produce, args=(queue, 100_000, 1))
    producer.start()
    producer.join()  # gone before anyone attached: its pending handle keeps the memory alive
    assert producer.exitcode == 0
    pid, array = queue.get()
    assert pid == producer.pid and ndshm.is_shared(array)
    assert array.dtype == workers.COVERAGE
    np.testing.assert_array_equal(array, workers.coverage_rows(100_000, 1))
    queue.close()
    queue.join_thread()


def test_pipe(method):
    ctx = mp.get_context(method)
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=workers.produce_pipe, args=(sender, 1000, 2))
    child.start()
    sender.close()
    array = receiver.recv()
    child.join()
    receiver.close()
    np.testing.assert_array_equal(array, workers.coverage_rows(1000, 2))


def test_pool_map_and_imap_share_arguments_and_results_without_copies(method):
    data = ndshm.share(workers.coverage_rows(10_000, 3))
    before = data["c"].copy()
    chunks = [data[i : i + 2500] for i in range(0, 10_000, 2500)]
    with mp.get_context(method).Pool(2) as pool:
        results = pool.map(workers.bump_and_make, chunks)
        names = list(pool.imap(workers.segment_name, [data, data[::7]]))
    np.testing.assert_array_equal(data["c"], before + 1)  # the workers wrote into our memory
    assert names == [ndshm.segment_of(data).name] * 2
    assert all(ndshm.is_shared(r) for r in results)
    np.testing.assert_array_equal(np.concatenate(results), data["pos"])


def test_process_pool_executor(method):
    data = ndshm.share(workers.coverage_rows(5000, 4))
    with ProcessPoolExecutor(2, mp_context=mp.get_context(method)) as pool:
        results = list(pool.map(workers.bump_and_make, [data[:2500], data[2500:]]))
    assert (data["c"] == workers.coverage_rows(5000, 4)["c"] + 1).all()
    np.testing.assert_array_equal(np.concatenate(results), data["pos"])


def test_children_are_this_program_and_their_names_live_while_it_runs(method, session, monkeypatch):
    monkeypatch.setenv("NDSHM_BROKER_LINGER", "0.3")
    resident = ndshm.zeros(1)  # this program stays connected
    with mp.get_context(method).Pool(1) as pool:
        program = pool.apply(workers.leave_named, ("from-child", session))
    assert program == _core.program_id()
    entry = next(s for s in _core.list_segments(session) if s["name"] == "from-child")
    assert entry["program"] == program and entry["holders"] == []
    # A program of its own, killed after the child exited: once its name has gone (the linger has
    # passed for it), the child's name, this program's, is still there.
    name, other = programs.killed_program_name()
    assert other != program
    programs.wait_gone(name)
    kept = ndshm.SharedMemory("from-child")
    kept.close()
    kept.unlink()
    del resident
