"""to_hdf5 / ndshm convert on a Dask cluster (LocalCluster on 127.0.0.1, real worker processes)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from leaks import broker_pids, memfd_holders, wait_exit
from test_hdf5 import _expected, _files

import ndshm
from ndshm import _core, hdf5

distributed = pytest.importorskip("distributed")
from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster  # noqa: E402

from ndshm import cluster  # noqa: E402

# dashboard_address=None binds the default :8787 (distributed 2026.8); ":0" takes a free port, so that
# suites running at once do not collide.
KW = {"threads_per_worker": 1, "processes": True, "dashboard_address": ":0", "host": "127.0.0.1"}


@pytest.fixture
def client():
    with LocalCluster(n_workers=2, **KW) as local, Client(local) as c:
        yield c


def _held(c: Client) -> dict[str, int]:
    return c.run(lambda: len(cluster._held))  # noqa: SLF001


def _datasets(path: Path) -> dict[str, tuple[np.ndarray, dict]]:
    with h5py.File(path, "r") as h5:
        return {k: (h5[k][()], dict(h5[k].attrs)) for k in h5}


def _same_file(a: Path, b: Path, *, unlike: tuple[str, ...] = ()) -> None:
    """The same datasets, bit for bit, with the same attributes (but those named in unlike)."""
    got, want = _datasets(a), _datasets(b)
    assert sorted(got) == sorted(want)
    for name, (data, attrs) in want.items():
        assert got[name][0].dtype == data.dtype and got[name][0].tobytes() == data.tobytes(), name
        shown = [{k: str(v) for k, v in d.items() if k not in unlike} for d in (got[name][1], attrs)]
        assert shown[0] == shown[1]


@pytest.mark.parametrize("layout", ["per-file", "concat"])
def test_cluster_run_equals_the_local_run_byte_for_byte(client, layout, tmp_path, caplog):
    paths = _files(tmp_path, "coverage5", counts=(30_000, 50_000, 1, 7))
    local = ndshm.to_hdf5(paths, tmp_path / "local.h5", format="coverage5", layout=layout, progress=False)
    with caplog.at_level(logging.INFO, logger="ndshm.cluster"):
        remote = ndshm.to_hdf5(paths, tmp_path / "dask.h5", format="coverage5", layout=layout,
                               executor=client, progress=False)  # fmt: skip
    assert local.read_bytes() == remote.read_bytes()  # the same file, bit for bit
    assert sum("(this node)" in r.message for r in caplog.records) == len(paths)  # zero-copy attaches
    assert _held(client) == {w: 0 for w in client.scheduler_info()["workers"]}  # workers let go


def test_windows_of_a_large_input_go_through_the_cluster_too(client, tmp_path):
    paths = _files(tmp_path, "coverage5", counts=(40_000, 5))
    local = ndshm.to_hdf5(paths, tmp_path / "local.h5", format="coverage5", progress=False)
    remote = ndshm.to_hdf5(paths, tmp_path / "dask.h5", format="coverage5", executor=client, window=200_000,
                           progress=False)  # fmt: skip
    _same_file(remote, local)


def test_a_dask_executor_and_a_plain_executor_work_too(client, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    paths = _files(tmp_path, "bedgraph")
    want = ndshm.to_hdf5(paths, tmp_path / "local.h5", format="bedgraph", progress=False)
    with client.get_executor() as executor:
        got = ndshm.to_hdf5(paths, tmp_path / "ex.h5", format="bedgraph", executor=executor, progress=False)
    _same_file(got, want)
    with ThreadPoolExecutor(2) as executor:
        got = ndshm.to_hdf5(paths, tmp_path / "th.h5", format="bedgraph", executor=executor, progress=False)
    _same_file(got, want)


def _two_nodes(session: str):
    """A cluster whose two workers act as two machines: other node ids, sessions of their own."""
    worker = {"nthreads": 1, "host": "127.0.0.1", "dashboard_address": None}
    specs = {
        name: {"cls": Nanny, "options": {**worker, "env": {"NDSHM_NODE_ID": f"node-{name}",
                                                         "NDSHM_SESSION": f"{session}-{name}"}}}
        for name in ("a", "b")
    }  # fmt: skip
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0", "host": "127.0.0.1"}}
    return SpecCluster(workers=specs, scheduler=scheduler)


@pytest.mark.parametrize("compression", [None, "gzip:1"])
def test_rows_from_another_node_are_fetched_in_pieces(compression, tmp_path, session, caplog, monkeypatch):
    monkeypatch.setattr(hdf5, "BLOCK_BYTES", 64 << 10)  # many pieces from small files
    paths = _files(tmp_path, "coverage5", counts=(90_000, 50_000, 1))
    local = ndshm.to_hdf5(paths, tmp_path / "local.h5", format="coverage5", compression=compression,
                          progress=False)  # fmt: skip
    with _two_nodes(session) as nodes, Client(nodes) as c, caplog.at_level(logging.INFO, "ndshm.cluster"):
        remote = ndshm.to_hdf5(paths, tmp_path / "dask.h5", format="coverage5", compression=compression,
                               executor=c, progress=False)  # fmt: skip
        assert _held(c) == {w: 0 for w in c.scheduler_info()["workers"]}
        for name in ("a", "b"):
            assert _core.list_segments(f"{session}-{name}") == []
        pids = c.run(os.getpid)
    _same_file(remote, local)
    assert sum("(another node)" in r.message for r in caplog.records) == len(paths)
    for pid in pids.values():
        assert wait_exit(pid, timeout=30)
    for name in ("a", "b"):
        assert not memfd_holders(f"{session}-{name}")


def _kill_once(marker: str):
    """A converter that kills its own worker process with SIGKILL the first time it runs."""

    def convert(text: str) -> float:
        if not os.path.exists(marker):
            Path(marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return float(text)

    return convert


def test_a_worker_killed_while_parsing_is_retried(client, tmp_path):
    paths = _files(tmp_path, "bedgraph", counts=(2000, 3000))
    want = ndshm.to_hdf5(paths, tmp_path / "local.h5", format="bedgraph", progress=False)
    converters = {3: _kill_once(str(tmp_path / "killed"))}
    got = ndshm.to_hdf5(paths, tmp_path / "dask.h5", format="bedgraph", converters=converters,
                        executor=client, progress=False)  # fmt: skip
    assert (tmp_path / "killed").exists()
    _same_file(got, want, unlike=("loadtxt_options",))  # the converter is named there


def test_a_worker_killed_while_holding_rows_frees_them_and_the_rows_are_loaded_again(client, tmp_path,
                                                                                      session):  # fmt: skip
    path = _files(tmp_path, "coverage5", counts=(40_000,))[0]
    runner = cluster.DaskRunner(client, threads=None)
    options = {**ndshm.PRESETS["coverage5"]}
    future = runner.submit(path, options)
    piece = future.result()
    holder = client.run(os.getpid, workers=[piece.worker])[piece.worker]
    assert memfd_holders(session).keys() - set(broker_pids(session)) == {holder}
    os.kill(holder, signal.SIGKILL)
    assert wait_exit(holder, timeout=10)
    loaded = runner.take(future)  # Dask loads it again, on a live worker
    np.testing.assert_array_equal(loaded.array, _expected(path, "coverage5"))
    loaded.close()
    assert holder not in memfd_holders(session)


def test_a_retired_worker_takes_its_rows_along_and_the_input_is_loaded_again(client, tmp_path, session,
                                                                            caplog):  # fmt: skip
    path = _files(tmp_path, "coverage5", counts=(40_000,))[0]
    runner = cluster.DaskRunner(client, threads=None)
    future = runner.submit(path, {**ndshm.PRESETS["coverage5"]})
    piece = future.result()
    client.retire_workers([piece.worker], close_workers=True)  # Dask moves the Piece, not the rows
    assert piece.worker not in client.scheduler_info()["workers"]
    with caplog.at_level(logging.WARNING, "ndshm.cluster"):
        loaded = runner.take(future)
    assert "loading it again" in caplog.text
    np.testing.assert_array_equal(loaded.array, _expected(path, "coverage5"))
    loaded.close()


def test_no_worker_is_an_error_not_a_hang(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster.DaskRunner, "NO_WORKERS_TIMEOUT", 5.0)
    paths = _files(tmp_path, "coverage5", counts=(10,))
    with LocalCluster(n_workers=0, **KW) as empty, Client(empty) as c:
        with pytest.raises(RuntimeError, match="no Dask worker for 5 s"):
            ndshm.to_hdf5(paths, tmp_path / "x.h5", format="coverage5", executor=c, progress=False)
    assert not (tmp_path / "x.h5").exists() and os.listdir(tmp_path) == [paths[0].name]


def _wait_for(condition, timeout: float = 30.0) -> bool:
    """Polls a condition another process brings about (the scheduler's bookkeeping has no event to
    wait on from outside)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


CLIENT = """
import sys
from distributed import Client
from ndshm import cluster, PRESETS
c = Client(sys.argv[1])
runner = cluster.DaskRunner(c, threads=None)
futures = [runner.submit(__import__("pathlib").Path(p), dict(PRESETS["coverage5"])) for p in sys.argv[2:]]
for f in futures:
    f.result()
print("loaded", flush=True)
sys.stdin.read()
"""


def test_memory_is_freed_when_the_client_dies(client, tmp_path, session):
    paths = _files(tmp_path, "coverage5", counts=(20_000, 30_000))
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, client.scheduler.address, *map(str, paths)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline() == "loaded\n"
    assert sum(_held(client).values()) == 2 and len(_core.list_segments(session)) == 2
    proc.kill()
    proc.wait()
    proc.stdout.close()
    proc.stdin.close()
    assert _wait_for(lambda: sum(_held(client).values()) == 0)
    assert _wait_for(lambda: not _core.list_segments(session) and not memfd_holders(session))


def test_memory_is_freed_when_the_scheduler_dies(tmp_path, session):
    paths = _files(tmp_path, "coverage5", counts=(20_000, 30_000))
    file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    scheduler = subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(file)],
                                 stderr=subprocess.DEVNULL)  # fmt: skip
    worker = subprocess.Popen([*dask, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                               "--no-dashboard", "--host", "127.0.0.1"],
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        with Client(scheduler_file=str(file), timeout=60) as c:
            c.wait_for_workers(1)
            runner = cluster.DaskRunner(c, threads=None)
            futures = [runner.submit(p, dict(ndshm.PRESETS["coverage5"])) for p in paths]
            for f in futures:
                f.result()
            assert len(_core.list_segments(session)) == 2
            scheduler.kill()
            scheduler.wait()
            # the worker notices, closes, and its process exits: the memory goes with it
            assert worker.wait(timeout=60) is not None
            del futures, f
        assert _wait_for(lambda: not _core.list_segments(session) and not memfd_holders(session))
    finally:
        for proc in (scheduler, worker):
            proc.kill()
            proc.wait()


def test_scheduler_option_of_the_command(client, tmp_path):
    paths = _files(tmp_path, "coverage5")
    want = ndshm.to_hdf5(paths, tmp_path / "local.h5", format="coverage5", progress=False)
    out = tmp_path / "cli.h5"
    command = [sys.executable, "-m", "ndshm", "convert", *map(str, paths), "-o", str(out),
               "--format", "coverage5", "--scheduler", client.scheduler.address]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    _same_file(out, want)


def test_without_dask_the_option_says_what_to_install(tmp_path):
    paths = _files(tmp_path, "coverage5", counts=(10,))
    code = ("import sys; sys.modules['distributed'] = None; from ndshm.cli import main; "
            f"sys.exit(main(['convert', {str(paths[0])!r}, '-o', {str(tmp_path / 'x.h5')!r}, "
            "'--scheduler', 'tcp://127.0.0.1:1']))")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1
    assert "pip install 'ndshm[dask]'" in run.stderr
    assert not (tmp_path / "x.h5").exists()
