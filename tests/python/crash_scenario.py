"""A running ndshm pipeline to kill: parent -> producer -> consumer -> parent, through Queues.

Prints "<parent> <producer> <consumer> <broker> <named>" on the first line (named: a SharedMemory the
parent made and never unlinks, b"named" in its first bytes), then one "." per array the parent
receives, forever. tests/python/test_crash.py kills it with SIGKILL at random points.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys

import numpy as np

import ndshm
from ndshm import _core


def produce(out: mp.Queue) -> None:
    for i in range(sys.maxsize):
        array = ndshm.empty(1000 + i % 5000, "<i8")
        array[:] = i
        out.put(array)
        del array


def consume(inbox: mp.Queue, out: mp.Queue) -> None:
    while True:
        array = inbox.get()
        assert (array == array[0]).all()
        out.put(ndshm.share(array[::2]))
        del array


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    first, second = ctx.Queue(maxsize=4), ctx.Queue(maxsize=4)
    keep = ndshm.zeros(10)  # starts the broker before the children fork (they must reconnect)
    named = ndshm.SharedMemory(create=True, size=4096)
    named.buf[:5] = b"named"
    producer = ctx.Process(target=produce, args=(first,))
    consumer = ctx.Process(target=consume, args=(first, second))
    producer.start()
    consumer.start()
    print(
        os.getpid(),
        producer.pid,
        consumer.pid,
        _core.broker_pid(_core.default_session()),
        named.name,
        flush=True,
    )
    while True:
        result = second.get()
        assert isinstance(result, np.ndarray) and ndshm.is_shared(result)
        del result
        sys.stdout.write(".")
        sys.stdout.flush()
