"""ndshm.SharedMemory behaves as multiprocessing.shared_memory.SharedMemory, minus its traps."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import programs
import pytest
import workers

import ndshm


def test_create_attach_close_unlink():
    shm = ndshm.SharedMemory(create=True, size=1000)
    assert shm.name.startswith("psm_") and shm.size == 1000 and len(shm.buf) == 1000
    shm.buf[:3] = b"abc"
    other = ndshm.SharedMemory(shm.name)
    assert bytes(other.buf[:3]) == b"abc" and other.size == 1000  # exact size, not page-rounded
    clone = pickle.loads(pickle.dumps(shm))
    assert clone.name == shm.name and bytes(clone.buf[:3]) == b"abc"
    for s in (other, clone, shm):
        s.close()
    assert shm.buf is None
    shm.unlink()
    with pytest.raises(FileNotFoundError):
        ndshm.SharedMemory(shm.name)
    with pytest.raises(ndshm.SegmentNotFoundError):
        shm.unlink()


def test_named_creation_conflicts_and_size_checks():
    shm = ndshm.SharedMemory("/my_block", create=True, size=10)
    assert shm.name == "my_block"
    with pytest.raises(FileExistsError):
        ndshm.SharedMemory("my_block", create=True, size=10)
    with pytest.raises(ValueError):
        ndshm.SharedMemory(create=True, size=0)
    with pytest.raises(ValueError):
        ndshm.SharedMemory()
    shm.close()
    shm.unlink()


def test_arrays_over_buf_stay_valid_after_close_and_unlink():
    # The stdlib lets close() unmap memory that numpy arrays still point at; here they keep it alive.
    shm = ndshm.SharedMemory(create=True, size=80)
    array = np.ndarray((10,), "<f8", buffer=shm.buf)
    array[:] = 7
    shm.close()
    shm.unlink()
    del shm
    assert array.sum() == 70


def test_stdlib_pattern_with_the_import_changed_runs_without_warnings(session, tmp_path):
    # The users' stdlib pattern, verbatim but for the import: no resource_tracker warning, no error.
    script = textwrap.dedent(
        """
        import multiprocessing as mp
        import numpy as np
        from ndshm import SharedMemory

        def child(q_out, q_in):
            data = np.arange(100_000, dtype="<f8")
            shm = SharedMemory(create=True, size=data.nbytes)
            np.ndarray(data.shape, data.dtype, buffer=shm.buf)[:] = data
            q_out.put((shm.name, data.shape, data.dtype.str))
            assert q_in.get() == "done"
            shm.close()
            shm.unlink()

        if __name__ == "__main__":
            for method in ("fork", "spawn", "forkserver"):
                ctx = mp.get_context(method)
                q_out, q_in = ctx.Queue(), ctx.Queue()
                p = ctx.Process(target=child, args=(q_out, q_in))
                p.start()
                name, shape, dtype = q_out.get()
                shm = SharedMemory(name=name)
                a = np.ndarray(shape, dtype, buffer=shm.buf)
                total = float(a.sum())
                del a
                shm.close()
                q_in.put("done")
                p.join()
                assert p.exitcode == 0 and total == 4999950000.0, (p.exitcode, total)
            print("ok")
        """
    )
    path = tmp_path / "pattern.py"  # spawn and forkserver re-import __main__ from a file
    path.write_text(script)
    result = subprocess.run(
        [sys.executable, "-W", "error", str(path)], capture_output=True, text=True, timeout=120
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


def test_a_killed_programs_name_goes_while_this_program_runs(session, monkeypatch):
    # CPython's test_shared_memory_cleaned_after_process_termination, with this program resident: a
    # python -c child (a program of its own) creates a segment and is killed; its name goes after
    # the linger although this program keeps the broker running.
    monkeypatch.setenv("NDSHM_BROKER_LINGER", "0.5")
    resident = ndshm.SharedMemory(create=True, size=10)  # starts the broker with our linger
    name, program = programs.killed_program_name()
    assert program != ndshm._core.program_id()
    attached = ndshm.SharedMemory(name)  # within the linger: still there; this program maps it now
    programs.wait_gone(name)
    assert bytes(attached.buf[:4]) == b"left"  # what this program maps stays valid
    assert [s["name"] for s in ndshm._core.list_segments(session)] == [resident.name]
    attached.close()
    resident.close()
    resident.unlink()


def test_track_false_keeps_a_name_for_a_program_started_later(session, monkeypatch):
    monkeypatch.setenv("NDSHM_BROKER_LINGER", "0.2")
    code = (
        "import os, signal, ndshm\n"
        "s = ndshm.SharedMemory('handover', create=True, size=8, track=False)\n"
        "s.buf[:5] = b'kept!'\n"
        "t = ndshm.SharedMemory('dropped', create=True, size=8)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == -9
    programs.wait_gone("dropped")  # no client left: the broker stays only for the kept name
    later = ndshm.SharedMemory("handover")
    assert bytes(later.buf[:5]) == b"kept!"
    later.close()
    later.unlink()


def test_a_persistent_handle_outlives_its_killed_program(session, monkeypatch):
    monkeypatch.setenv("NDSHM_BROKER_LINGER", "0.2")
    code = (
        "import os, signal, sys, ndshm\n"
        "a = ndshm.share(ndshm.zeros(5) + 7)\n"
        "print(ndshm.handle(a, persist=True), ndshm.handle(a), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == -9
    kept, dropped = result.stdout.split()
    # The program's own ticket goes after the linger; the persistent one keeps the array meanwhile.
    deadline = time.monotonic() + 20
    while ndshm._core.list_segments(session)[0]["tickets"] == 2 and time.monotonic() < deadline:
        pass
    assert ndshm._core.list_segments(session)[0]["tickets"] == 1
    np.testing.assert_array_equal(ndshm.attach(kept), np.full(5, 7.0))
    with pytest.raises(ndshm.SegmentNotFoundError):
        ndshm.attach(dropped)  # the persistent ticket was redeemed: nothing holds it now


# CPython's own tests of SharedMemory: every test method of the installed interpreter's
# test._test_multiprocessing._TestSharedMemory, run with multiprocessing.shared_memory.SharedMemory
# replaced by ndshm's (ShareableList and SharedMemoryManager use it too then). Programs that a test
# starts with sys.executable -c get the same substitution (_substituting_python).
try:
    from test import _test_multiprocessing as _cpython
except ImportError as error:  # the test package is not installed with every Python
    _cpython = None
    _CPYTHON_MISSING = f"this Python has no test._test_multiprocessing ({error})"

_CPYTHON_TESTS = (
    sorted(m for m in dir(_cpython._TestSharedMemory) if m.startswith("test_")) if _cpython else []
)
# Run, and fail only where they inspect the stdlib's resource tracker (which ndshm does not have): the
# first's last check expects the killed child's tracker to warn of a leaked segment; the second (3.13+,
# gh-82300) expects a process that attached with track=True to have the creator's segment deleted at its
# exit, with that warning, which ndshm never does (an attach does not make a process the memory's owner).
_TRACKER_CHECKS = {
    "test_shared_memory_cleaned_after_process_termination": "resource_tracker: There appear to be 1 leaked",
    "test_shared_memory_tracking": "resource_tracker: There appear to be 1 leaked",
}
_SUBSTITUTED = {"fork": workers.ForkProcess, "spawn": workers.SpawnProcess}
_SUBSTITUTED["forkserver"] = workers.ForkserverProcess
_MANAGERS = {m for m in _CPYTHON_TESTS if "SharedMemoryManager" in m or "SharedMemoryServer" in m}


def _cpython_cases():
    for name in _CPYTHON_TESTS:
        # Only this one starts processes through self.Process: under every start method.
        methods = _SUBSTITUTED if name == "test_shared_memory_across_processes" else ["fork"]
        for method in methods:
            yield pytest.param(name, method, id=f"{name}-{method}")


def _substituting_python(tmp_path) -> str:
    """An executable that runs sys.executable with its arguments, the code of its -c run after
    workers.substitute_shared_memory() (found through sys.path: -E and -I ignore PYTHONPATH)."""
    prelude = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import workers; workers.substitute_shared_memory()\n"
    )
    path = tmp_path / "python-substituted"
    path.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "argv = sys.argv[1:]\n"
        "at = argv.index('-c') + 1\n"
        f"argv[at] = {prelude!r} + argv[at]\n"
        f"os.execv({sys.executable!r}, [{sys.executable!r}, *argv])\n"
    )
    path.chmod(0o755)
    return str(path)


@pytest.mark.skipif(_cpython is None, reason=_CPYTHON_MISSING if _cpython is None else "")
@pytest.mark.parametrize(("name", "method"), list(_cpython_cases()))
def test_cpython_shared_memory_tests_pass_against_ndshm(name, method, monkeypatch, tmp_path):
    import multiprocessing.shared_memory
    import unittest

    if name in _MANAGERS and mp.get_start_method() != "fork":
        pytest.skip(
            "the manager's server process starts by the default start method, without the substitution"
        )
    monkeypatch.setenv("NDSHM_BROKER_LINGER", "0.5")  # a killed child's names go 0.5 s after it
    monkeypatch.setattr(multiprocessing.shared_memory, "SharedMemory", ndshm.SharedMemory)
    monkeypatch.setattr(sys, "executable", _substituting_python(tmp_path))
    case = type(
        "NdshmSharedMemory",
        (_cpython._TestSharedMemory, unittest.TestCase),
        {"TYPE": "processes", "Process": _SUBSTITUTED[method]},
    )(name)
    result = unittest.TestResult()
    # A run started in the background by a script (`cmd &`) inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler, which ..._SharedMemoryServer_ignores_sigint expects.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        case.run(result)
    finally:
        signal.signal(signal.SIGINT, previous)
    problems = [text for _, text in result.errors + result.failures]
    assert not result.skipped, result.skipped
    if name in _TRACKER_CHECKS:
        assert len(problems) == 1 and _TRACKER_CHECKS[name] in problems[0], problems
        assert "was leaked" not in problems[0]
    else:
        assert not problems, "\n".join(problems)
