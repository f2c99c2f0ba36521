"""kill -9 of any process of a running pipeline at random points leaves nothing behind, and while
another program runs in the session, nothing but what that program maps."""

from __future__ import annotations

import gzip
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from leaks import broker_pids, memfd_holders, wait_exit

import ndshm
from ndshm import _core

SCENARIO = Path(__file__).with_name("crash_scenario.py")
ROUNDS = int(os.environ.get("NDSHM_CRASH_ROUNDS", "200"))
TARGETS = ["producer", "consumer", "parent", "broker"]
# Rounds with a resident program: it needs the broker, so one of the killed program's processes dies.
PROGRAM_TARGETS = ["producer", "consumer", "parent"]
LINGER = "0.2"


def _round(k: int, rng: random.Random) -> None:
    """Odd rounds: this process is a resident program in the session (it starts the broker, keeps an
    array and maps the killed program's named segment) while the scenario's program is killed."""
    session = f"crash-{os.getpid()}-{k}"
    resident = k % 2 == 1
    env = dict(os.environ, NDSHM_SESSION=session, NDSHM_BROKER_LINGER=LINGER)
    held = ndshm.zeros(100, session=session) if resident else None
    proc = subprocess.Popen(
        [sys.executable, str(SCENARIO)],
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        *numbers, named = proc.stdout.readline().split()
        parent, producer, consumer, broker = map(int, numbers)
        pids = {"parent": parent, "producer": producer, "consumer": consumer, "broker": broker}
        # The random point: after 0-30 arrays went round the pipeline (events, not sleeps).
        proc.stdout.read(rng.randrange(31))
        mapped = ndshm.SharedMemory(named.decode(), session=session) if resident else None
        target = PROGRAM_TARGETS[k // 2 % 3] if resident else TARGETS[k // 2 % 4]
        os.kill(pids[target], signal.SIGKILL)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # then the rest of the program (the broker is not in it)
        proc.wait()
        proc.stdout.close()
    for pid in (producer, consumer):
        assert wait_exit(pid, timeout=10)
    if resident:
        _resident_outlives(f"round {k} ({target})", session, broker, held, mapped)
        del held, mapped
        _core.disconnect(session)
    for pid in broker_pids(session) + [broker]:
        assert wait_exit(pid, timeout=10), f"round {k}: broker {pid} outlived its program"
    # A process the group kill caught while a client started a new broker (posix_spawn's child shares
    # the client's memory until its exec) lets go as it exits: wait for that (pidfd), then check.
    for pid in memfd_holders(session):
        assert wait_exit(pid, timeout=10), f"round {k} ({target}): {_described(pid)} holds memory, lives on"
    assert memfd_holders(session) == {}, f"round {k} ({target}): memory still held"
    assert not any(name.startswith("ndshm") for name in os.listdir("/dev/shm"))


def _resident_outlives(where: str, session: str, broker: int, held, mapped) -> None:
    """The killed program's names and handles in flight go after the linger, while this program and
    what it maps stay: the broker is the same, only this process maps the session's memory, and the
    broker keeps a descriptor of our array alone."""
    me = os.getpid()

    def left() -> list[dict]:
        return [s for s in _core.list_segments(session) if s["holders"] != [me] or s["named"] or s["tickets"]]

    deadline = time.monotonic() + 20
    while left() and time.monotonic() < deadline:  # each try is a request: the broker's answer
        pass
    assert not left(), f"{where}: the killed program left {left()}"
    assert _core.broker_pid(session) == broker, f"{where}: the broker did not serve on"
    assert [s["holders"] for s in _core.list_segments(session)] == [[me]]  # our array only
    with pytest.raises(FileNotFoundError):
        ndshm.SharedMemory(mapped.name, session=session)  # its name went with it
    assert bytes(mapped.buf[:5]) == b"named" and held.sum() == 0  # what we map is intact
    for pid in memfd_holders(session):
        assert pid in (me, broker) or wait_exit(pid, timeout=10), f"{where}: {_described(pid)} holds memory"
    holders = memfd_holders(session)
    assert set(holders) == {me, broker} and len(holders[broker]) == 1, f"{where}: {holders}"  # our array


def _described(pid: int) -> str:
    """pid, its command line and state, for a failure message."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return f"process {pid} (gone)"
    state = [line for line in status if line.startswith(("State:", "PPid:"))]
    return f"process {pid} ({cmdline.strip()}; {', '.join(state)})"


@pytest.mark.slow
def test_kill_9_anywhere_leaves_nothing_behind(monkeypatch):
    monkeypatch.setenv("NDSHM_BROKER_LINGER", LINGER)  # the linger of the brokers this process starts
    rng = random.Random(20261125)
    for k in range(ROUNDS):
        _round(k, rng)


def test_kill_9_of_a_program_while_another_runs_leaves_only_what_that_one_maps(monkeypatch):
    monkeypatch.setenv("NDSHM_BROKER_LINGER", LINGER)
    rng = random.Random(20261204)
    for k in (1, 3, 5):  # resident rounds, one for each target
        _round(k, rng)


def test_kill_9_while_a_gz_file_grows_its_segment_leaves_nothing(tmp_path):
    """A .gz file is parsed into a segment that grows, unknown to any broker until complete: SIGKILL
    of the loading process while it grows (seen in its /proc maps: an event, not a sleep) leaves no
    memory held and no broker behind."""
    session = f"crash-gz-{os.getpid()}"
    block = "".join(f"chr{i % 22}\t{i}\t{i % 100}.5\t{i % 50}\t{i % 9}\n" for i in range(100_000))
    path = tmp_path / "big.tsv.gz"
    path.write_bytes(gzip.compress((block * 40).encode(), 1))  # 100 MB of text: about a second of parsing
    code = (
        "import sys, ndshm\n"
        "print('go', flush=True)\n"
        "ndshm.loadtxt(sys.argv[1], **ndshm.PRESETS['coverage5'])\n"
    )
    env = dict(os.environ, NDSHM_SESSION=session, NDSHM_BROKER_LINGER="0.2")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline() == b"go\n"
        growing = f"memfd:ndshm:{session}:growing"
        while proc.poll() is None:
            try:
                if growing in Path(f"/proc/{proc.pid}/maps").read_text():
                    break
            except (FileNotFoundError, ProcessLookupError):
                break
        assert proc.poll() is None, "the load ended before its segment was seen growing"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    for pid in broker_pids(session):  # none was needed while the segment grew
        assert wait_exit(pid, timeout=10)
    assert memfd_holders(session) == {}
