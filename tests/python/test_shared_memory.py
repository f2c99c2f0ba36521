"""ndshm.SharedMemory behaves as multiprocessing.shared_memory.SharedMemory, minus its traps."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

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
    code = (
        "import sys, ndshm\n"
        "s = ndshm.SharedMemory(create=True, size=10)\n"
        "print(s.name, flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        name = child.stdout.readline().strip()
        child.kill()
    assert child.returncode == -9
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the broker's answer is the event: no sleep
        try:
            ndshm.SharedMemory(name).close()
        except FileNotFoundError:
            break
    else:
        pytest.fail(f"{name} outlived its killed program by 20 s")
    assert [s["name"] for s in ndshm._core.list_segments(session)] == [resident.name]
    resident.close()
    resident.unlink()
