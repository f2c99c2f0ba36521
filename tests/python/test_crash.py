"""kill -9 of any process of a running pipeline at random points leaves nothing behind."""

from __future__ import annotations

import gzip
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from leaks import broker_pids, memfd_holders, wait_exit

SCENARIO = Path(__file__).with_name("crash_scenario.py")
ROUNDS = int(os.environ.get("NDSHM_CRASH_ROUNDS", "200"))
TARGETS = ["producer", "consumer", "parent", "broker"]


def _round(k: int, rng: random.Random) -> None:
    session = f"crash-{os.getpid()}-{k}"
    env = dict(os.environ, NDSHM_SESSION=session, NDSHM_BROKER_LINGER="0.2")
    proc = subprocess.Popen(
        [sys.executable, str(SCENARIO)],
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        parent, producer, consumer, broker = map(int, proc.stdout.readline().split())
        pids = {"parent": parent, "producer": producer, "consumer": consumer, "broker": broker}
        # The random point: after 0-30 arrays went round the pipeline (events, not sleeps).
        proc.stdout.read(rng.randrange(31))
        target = TARGETS[k % len(TARGETS)]
        os.kill(pids[target], signal.SIGKILL)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # then the rest of the program (the broker is not in it)
        proc.wait()
        proc.stdout.close()
    for pid in (producer, consumer):
        assert wait_exit(pid, timeout=10)
    for pid in broker_pids(session) + [broker]:
        assert wait_exit(pid, timeout=10), f"round {k}: broker {pid} outlived its program"
    # A process the group kill caught while a client started a new broker (posix_spawn's child shares
    # the client's memory until its exec) lets go as it exits: wait for that (pidfd), then check.
    for pid in memfd_holders(session):
        assert wait_exit(pid, timeout=10), f"round {k} ({target}): {_described(pid)} holds memory, lives on"
    assert memfd_holders(session) == {}, f"round {k} ({target}): memory still held"
    assert not any(name.startswith("ndshm") for name in os.listdir("/dev/shm"))


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
def test_kill_9_anywhere_leaves_nothing_behind():
    rng = random.Random(20261125)
    for k in range(ROUNDS):
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
