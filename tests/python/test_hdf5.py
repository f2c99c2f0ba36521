"""ndshm convert / to_hdf5: round trips through stock h5py and h5dump, atomic output, interruptions."""

from __future__ import annotations

import gzip
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import real_files
import workers
from leaks import broker_pids, memfd_holders, wait_exit

import ndshm
from ndshm import _core
from ndshm.hdf5 import parse_dtype_spec

SAMPLES = {
    "coverage5": lambda i: f"chr{i % 22 + 1}\t{1000 + i}\t{i % 10000 / 100:.2f}\t{i % 60}\t{i % 13}\n",
    "bismark-cov": lambda i: f"chr{i % 3}\t{i}\t{i}\t{i % 100}.0\t{i % 7}\t{i % 5}\n",
    "bismark-cytosine": lambda i: f"chr1\t{i}\t{'+-'[i % 2]}\t{i % 9}\t{i % 4}\tCG\tCGA\n",
    "bedgraph": lambda i: f"chr2\t{i * 10}\t{i * 10 + 10}\t{i / 8}\n",
}


def _files(folder: Path, preset: str, counts=(3000, 5000, 1)) -> list[Path]:
    paths = []
    for k, n in enumerate(counts):
        text = "".join(SAMPLES[preset](i + 100 * k) for i in range(n))
        path = folder / f"part{k}.{preset}{'.gz' if k == 1 else ''}"
        path.write_bytes(gzip.compress(text.encode()) if k == 1 else text.encode())
        paths.append(path)
    return paths


def _expected(path: Path, preset: str) -> np.ndarray:
    """numpy's rows of a preset file, chr as wide as its longest name (ndshm's width)."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt") as f:
        width = max(
            (len(line.split("\t")[0]) for line in f if not line.startswith(("#", "track"))), default=1
        )
    return np.atleast_1d(np.loadtxt(path, **workers.numpy_preset(preset, width)))


@pytest.mark.parametrize("preset", sorted(ndshm.PRESETS))
@pytest.mark.parametrize("layout", ["per-file", "concat"])
def test_round_trip_through_stock_h5py(preset, layout, tmp_path):
    paths = _files(tmp_path, preset)
    out = ndshm.to_hdf5(paths, tmp_path / "out.h5", format=preset, layout=layout, workers=2, progress=False)
    expected = [_expected(p, preset) for p in paths]
    with h5py.File(out, "r") as h5:
        if layout == "per-file":
            assert sorted(h5) == ["part0.coverage5", "part1.coverage5", "part2.coverage5"] or len(h5) == 3
            for path, want in zip(paths, expected, strict=True):
                name = path.name.removesuffix(".gz")
                got = h5[name][()]
                assert got.dtype == want.dtype and np.array_equal(got, want)
                attrs = h5[name].attrs
                assert attrs["rows"] == len(want) and attrs["source"] == str(path.resolve())
                assert attrs["source_size"] == path.stat().st_size and "ndshm_version" in attrs
        else:
            np.testing.assert_array_equal(h5["data"][()], np.concatenate(expected))
            index = h5["index"][()]
            assert [int(r["rows"]) for r in index] == [len(e) for e in expected]
            assert [int(r["first_row"]) for r in index] == [
                0,
                len(expected[0]),
                len(expected[0]) + len(expected[1]),
            ]


@pytest.mark.parametrize("compression", ["gzip:1", "gzip", "lzf"])
def test_compressed_output_decodes_with_standard_filters(compression, tmp_path):
    paths = _files(tmp_path, "coverage5", counts=(200_000, 70_001, 5))
    out = ndshm.to_hdf5(paths, tmp_path / "c.h5", format="coverage5", compression=compression, progress=False)
    with h5py.File(out, "r") as h5:
        for path in paths:
            dataset = h5[path.name.removesuffix(".gz")]
            assert dataset.compression == compression.partition(":")[0]
            np.testing.assert_array_equal(dataset[()], _expected(path, "coverage5"))
    dump = subprocess.run(["h5dump", "-H", str(out)], capture_output=True, text=True, check=True).stdout
    assert "H5T_COMPOUND" in dump and "H5T_STRING" in dump


@pytest.mark.parametrize("compression", ["zstd", "zstd:9", "blosc", "blosc:zstd:3"])
def test_zstd_and_blosc_decode_with_hdf5plugin(compression, tmp_path):
    hdf5plugin = pytest.importorskip("hdf5plugin")
    paths = _files(tmp_path, "coverage5", counts=(60_000, 7))
    out = ndshm.to_hdf5(paths, tmp_path / "z.h5", format="coverage5", compression=compression, progress=False)
    filter_id = {"zstd": hdf5plugin.ZSTD_ID, "blosc": hdf5plugin.BLOSC_ID}[compression.partition(":")[0]]
    with h5py.File(out, "r") as h5:
        for path in paths:
            dataset = h5[path.name.removesuffix(".gz")]
            assert str(filter_id) in dataset._filters
            np.testing.assert_array_equal(dataset[()], _expected(path, "coverage5"))
    for bad in ("zstd:0", "zstd:x", "blosc:snappy", "blosc:lz4:10", "lzf:3", "gzip:10", "brotli"):
        with pytest.raises(ValueError, match="is not supported"):
            ndshm.to_hdf5(paths, tmp_path / "bad.h5", compression=bad, progress=False)


def test_h5dump_reads_the_compound_type_field_for_field(tmp_path):
    paths = _files(tmp_path, "coverage5", counts=(3,))
    out = ndshm.to_hdf5(paths, tmp_path / "d.h5", format="coverage5", progress=False)
    dump = subprocess.run(["h5dump", str(out)], capture_output=True, text=True, check=True).stdout
    for field in (
        '"chr"',
        '"pos"',
        '"pct"',
        '"c"',
        '"t"',
        "STRPAD H5T_STR_NULLPAD",
        "H5T_STD_I32LE",
        "H5T_IEEE_F32LE",
    ):
        assert field in dump, field
    assert "STRSIZE 4;" in dump and '"chr1"' in dump  # as wide as the longest name


def test_bad_arguments_say_what_is_wrong(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("1\n")
    with pytest.raises(ValueError, match="unknown format 'nope'; presets: bedgraph"):
        ndshm.to_hdf5([path], tmp_path / "o.h5", format="nope")
    with pytest.raises(ValueError, match="compression 'snappy' is not supported"):
        ndshm.to_hdf5([path], tmp_path / "o.h5", compression="snappy")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        ndshm.to_hdf5([tmp_path / "missing.txt"], tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()


def test_dtype_spec_and_name_collisions(tmp_path):
    assert parse_dtype_spec("chr:S10,pos:i4") == np.dtype([("chr", "S10"), ("pos", "i4")])
    assert parse_dtype_spec("f8") == np.dtype("f8")
    with pytest.raises(ValueError, match="name:type"):
        parse_dtype_spec("chr:S10,pos")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "x.txt").write_text("1 2\n3 4\n")
    notes = []
    out = ndshm.to_hdf5([tmp_path / "a/x.txt", tmp_path / "b/x.txt"], tmp_path / "o.h5", dtype="f8",
                        progress=False, on_note=notes.append)  # fmt: skip
    with h5py.File(out) as h5:
        assert sorted(h5) == ["x.txt", "x.txt_2"]
    assert notes and "x.txt_2" in notes[0]


def test_refuses_to_overwrite_and_keeps_the_target_on_a_parse_error(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("1 2\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n3 x\n")
    target = tmp_path / "t.h5"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        ndshm.to_hdf5([good], target, progress=False)
    with pytest.raises(ndshm.ParseError, match=r"bad.txt:2:3"):
        ndshm.to_hdf5([good, bad], target, overwrite=True, progress=False)
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt", "t.h5"]
    ndshm.to_hdf5([good], target, overwrite=True, progress=False)
    with h5py.File(target) as h5:
        assert h5["good.txt"][()].tolist() == [[1.0, 2.0]]  # rows x columns, even for one row


@pytest.mark.parametrize("layout", ["per-file", "concat"])
@pytest.mark.parametrize("compression", [None, "gzip:1"])
def test_large_inputs_load_in_windows_and_give_the_same_file(layout, compression, tmp_path):
    paths = _files(tmp_path, "coverage5", counts=(40_000, 30_000, 25_000))  # the second (.gz): whole
    options = {"format": "coverage5", "layout": layout, "compression": compression, "progress": False}
    whole = ndshm.to_hdf5(paths, tmp_path / "whole.h5", **options)
    split = ndshm.to_hdf5(paths, tmp_path / "split.h5", window=50_000, **options)  # 7 windows of 1 MB
    with h5py.File(whole) as a, h5py.File(split) as b:
        assert sorted(a) == sorted(b)
        for name in a:
            x, y = a[name][()], b[name][()]
            assert x.dtype == y.dtype
            assert x.tolist() == y.tolist() if x.dtype.hasobject else x.tobytes() == y.tobytes()
            assert dict(a[name].attrs).keys() == dict(b[name].attrs).keys()
    if layout == "per-file":
        with h5py.File(split) as h5:
            assert h5["part0.coverage5"].attrs["rows"] == 40_000
            assert h5["part0.coverage5"].maxshape == (None,)  # grown window by window


def test_windows_without_rows_are_skipped(tmp_path):
    path = tmp_path / "gaps.txt"
    rows = [f"{i} {i + 1} {i + 2}" for i in range(30)]
    path.write_text("\n".join(["# header"] * 5 + rows[:10] + ["#" + "x" * 200] + rows[10:]) + "\n")
    for window, skiprows in ((40, 0), (50, 3), (3, 0), (50, 12)):  # a comment, skipped lines, tiny windows
        out = ndshm.to_hdf5([path], tmp_path / f"w{window}-{skiprows}.h5", window=window, skiprows=skiprows,
                            progress=False)  # fmt: skip
        with h5py.File(out) as h5:
            np.testing.assert_array_equal(h5["gaps.txt"][()], np.loadtxt(path, skiprows=skiprows, ndmin=2))


def test_a_parse_error_in_a_later_window_names_its_line_in_the_file(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("".join(f"{i} 1.5\n" if i != 9000 else "9000 oops\n" for i in range(12_000)))
    target = tmp_path / "t.h5"
    with pytest.raises(ndshm.ParseError, match=r"big.txt:9001:6: could not convert string 'oops'"):
        ndshm.to_hdf5([path], target, window=10_000, progress=False)
    assert not target.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["big.txt"]


def test_memory_holds_a_few_windows_whatever_the_input_size(tmp_path, session):
    path = tmp_path / "big.tsv"
    # 37 MB of text, 30 MB of output (chr S14)
    path.write_text(
        "".join(SAMPLES["coverage5"](i).replace("chr", "chrUn_gl0002", 1) for i in range(1_000_000))
    )
    rows_bytes = 1_000_000 * workers.numpy_preset("coverage5", 14)["dtype"].itemsize
    cap = 6 << 20  # the rows of (2 workers + 1) windows of 1 MiB of text, with room to spare
    out = tmp_path / "out.h5"
    proc = _convert([path, "-o", out, "--format", "coverage5", "--window", "1", "--workers", "2", "--quiet"])
    peak = 0
    while proc.poll() is None:  # sample the shared rows in flight (segments of the run's session)
        peak = max(peak, sum(s["size"] for s in _core.list_segments(session)))
        try:
            proc.wait(timeout=0.005)
        except subprocess.TimeoutExpired:
            pass
    assert proc.returncode == 0
    assert 0 < peak <= cap < rows_bytes / 4  # the input is more than 4x the cap
    with h5py.File(out) as h5:
        np.testing.assert_array_equal(h5["big.tsv"][()], _expected(path, "coverage5"))


def _convert(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "ndshm", "convert", *map(str, args)], **kwargs)


def test_command_line_run_writes_what_the_api_writes(tmp_path, session):
    paths = _files(tmp_path, "bismark-cov")
    out = tmp_path / "cli.h5"
    proc = _convert(
        [*paths, "-o", out, "--format", "bismark-cov", "--quiet"], stderr=subprocess.PIPE, text=True
    )
    assert proc.wait(timeout=120) == 0 and proc.stderr.read() == ""
    proc.stderr.close()
    with h5py.File(out) as h5:
        np.testing.assert_array_equal(h5["part0.bismark-cov"][()], _expected(paths[0], "bismark-cov"))
    verbose = subprocess.run([sys.executable, "-m", "ndshm", "convert", *map(str, paths), "-o", str(out),
                              "--format", "bismark-cov", "--quiet", "--overwrite", "--verbose"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    assert verbose.stderr.splitlines() == [
        "ndshm convert: loading 3 input(s), 0.1 MB of text",
        "ndshm convert: wrote part0.bismark-cov: 3,000 rows (1/3)",
        "ndshm convert: wrote part1.bismark-cov: 5,000 rows (2/3)",
        "ndshm convert: wrote part2.bismark-cov: 1 rows (3/3)",
    ]
    help_text = subprocess.run([sys.executable, "-m", "ndshm", "convert", "--help"], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
    options = "--format --dtype --delimiter --usecols --workers --threads --compression --layout --verbose"
    for option in (options + " --overwrite --quiet --skiprows --max-rows --comments --quotechar").split():
        assert option in help_text, option
    bad = tmp_path / "bad.cov"
    bad.write_text("chr1\t1\t1\t5.0\t1\t1\nchr1\tone\t1\t5.0\t1\t1\n")
    command = [sys.executable, "-m", "ndshm", "convert", str(bad), "-o", str(tmp_path / "b.h5")]
    result = subprocess.run([*command, "--format", "bismark-cov", "--quiet"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "bad.cov:2:6: could not convert string 'one' to int32 at row 1, column 2." in result.stderr
    assert not (tmp_path / "b.h5").exists()


@pytest.mark.parametrize(
    ("options", "processes"),
    [({}, False), ({"workers": 1}, True), ({"converters": {0: float}, "dtype": "f8"}, True)],
    ids=["threads", "workers", "converters"],
)
def test_loads_run_in_this_process_unless_asked_or_numpy_must_parse(options, processes, tmp_path, session):
    paths = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for k, path in enumerate(paths):
        path.write_text("".join(f"{i} {i * k}.5 {i % 7}\n" for i in range(20_000)))
    seen, before = [], set(_descendants())  # (a fork server an earlier test started lives on)

    def report(line: str) -> None:  # called as loading begins and after each input: who is loading?
        new = set(_descendants()) - before
        seen.append((line, bool(new), bool(broker_pids(session)), bool(memfd_holders(session))))

    out = ndshm.to_hdf5(paths, tmp_path / "o.h5", progress=False, on_progress=report, **options)
    assert [line.split(":")[0] for line, *_ in seen] == ["loading 2 input(s), 0.5 MB of text", "wrote a.txt",
                                                         "wrote b.txt"]  # fmt: skip
    if processes:  # worker processes, their rows handed over in shared memory
        assert all(kids for _, kids, _, _ in seen)
    else:  # ndshm.loadtxt's threads here, private memory: no worker, no fork server, no broker, no segment
        assert not any(kids or broker or shared for _, kids, broker, shared in seen)
    with h5py.File(out) as h5:
        for path in paths:
            np.testing.assert_array_equal(h5[path.name][()], np.loadtxt(path))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
@pytest.mark.parametrize("mode", [[], ["--workers", "2"]], ids=["threads", "processes"])
def test_interrupted_runs_leave_the_target_intact_and_nothing_behind(signum, mode, tmp_path, session):
    paths = _files(tmp_path, "coverage5", counts=(400_000, 400_000, 400_000))
    target = tmp_path / "t.h5"
    target.write_bytes(b"old contents")
    rng = random.Random(signum)
    rounds, handled = 6, 0  # handled: rounds the signal ended mid-run (through the command's handler, but -9)
    for round_ in range(rounds):
        env = dict(os.environ, NDSHM_SESSION=f"{session}-{round_}", NDSHM_BROKER_LINGER="0.2")
        command = [
            *paths,
            "-o",
            target,
            "--format",
            "coverage5",
            "--overwrite",
            "--quiet",
            "--verbose",
            *mode,
        ]
        proc = _convert(command, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
        # The random point, placed by the run's own progress whatever the machine's speed: right after
        # loading began, or after one of the inputs but the last was written, then up to a quarter of
        # the time the input before took (measured here, in this run).
        events = rng.randrange(len(paths))
        seen = [(proc.stderr.readline(), time.monotonic()) for _ in range(events + 1)]
        assert seen[0][0].startswith("ndshm convert: loading 3 input(s)"), seen
        assert all(line.startswith("ndshm convert: wrote part") for line, _ in seen[1:]), seen
        try:
            proc.wait(timeout=rng.uniform(0, 0.25) * (seen[-1][1] - seen[-2][1]) if events else 0)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signum)
        code = proc.wait(timeout=60)
        # Workers and the fork server exit on their own, even after kill -9 of the command.
        for pid in _pids_in_group(proc.pid) + broker_pids(env["NDSHM_SESSION"]):
            assert wait_exit(pid, timeout=30), f"process {pid} outlived the run"
        err = proc.stderr.read()
        proc.stderr.close()
        # Either the old contents, untouched, or the new file, complete (the signal may land after the
        # rename, while the workers shut down); never anything in between.
        replaced = target.read_bytes() != b"old contents"
        if replaced:
            with h5py.File(target) as h5:
                assert sorted(h5) == sorted(p.name.removesuffix(".gz") for p in paths)
                assert all(h5[name].shape == (400_000,) for name in h5)
            target.write_bytes(b"old contents")
        assert replaced or code != 0
        if code != 0 and "ndshm convert: interrupted" not in err and signum != signal.SIGKILL:
            # The signal came after the command's work, the file complete: the handler's exit, or the
            # default action once the interpreter shutting down has dropped the handlers.
            assert replaced and code in {-signum, 128 + signum, 1 if signum == signal.SIGINT else -signum}
        elif code != 0:
            expected = {signal.SIGINT: 130, signal.SIGTERM: 128 + signal.SIGTERM, signal.SIGKILL: -9}[signum]
            assert code == expected
            handled += 1
            if signum != signal.SIGKILL:
                assert ("was complete before that" if replaced else "was not written") in err
        # No temporary file, no shared memory held anywhere.
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in paths] + ["t.h5"])
        assert memfd_holders(env["NDSHM_SESSION"]) == {}
    # The signals must reach the run itself: a run that always finished first tests nothing. Each was
    # sent with an input still to write (6 of 6 here); a busy machine may let a run finish first.
    assert handled > rounds // 2, f"only {handled} of {rounds} runs were interrupted mid-run"


def _descendants() -> list[int]:
    """Live processes below this one (a fork server and its workers too)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [os.getpid()]
    while frontier:
        kids = [pid for pid, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def _pids_in_group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def test_the_fork_server_guard_stays_in_the_fork_server(tmp_path):
    # to_hdf5 tells the fork server whose death to follow; nobody else may inherit that (a process that
    # imported ndshm with it would exit at once).
    path = tmp_path / "x.txt"
    path.write_text("1 2\n")
    ndshm.to_hdf5([path], tmp_path / "x.h5", workers=1, progress=False)  # worker processes: the fork server
    assert "NDSHM_FORKSERVER_PARENT" not in os.environ
    env = dict(os.environ, NDSHM_FORKSERVER_PARENT="1")
    result = subprocess.run([sys.executable, "-c", "import ndshm; print('alive')"], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert result.stdout == "alive\n"


def _terminal() -> tuple[int, int]:
    import fcntl
    import pty
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    return primary, secondary


def test_progress_bar_on_a_terminal_only(tmp_path, session):
    paths = _files(tmp_path, "coverage5", counts=(50_000, 50_000))
    command = [sys.executable, "-m", "ndshm", "convert", *map(str, paths), "-o", str(tmp_path / "p.h5")]
    # Not a terminal: nothing on stderr.
    quiet = subprocess.run([*command, "--format", "coverage5"], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""
    # A terminal (80 columns, as a real one has): one bar with bytes, rate, rows/s and ETA.
    for window in ("256", "0.3"):  # whole inputs, then windows of 0.3 MiB: the bar ends at 100% either way
        primary, secondary = _terminal()
        proc = subprocess.Popen([*command, "--format", "coverage5", "--overwrite", "--window", window],
                                stderr=secondary)  # fmt: skip
        os.close(secondary)
        chunks = []
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not data:
                break
            chunks.append(data)
        os.close(primary)
        assert proc.wait(timeout=120) == 0
        shown = b"".join(chunks).decode(errors="replace")
        assert "p.h5" in shown and "100%" in shown and "B/s" in shown and "rows/s" in shown
        assert "101%" not in shown
    # --quiet on a terminal: nothing.
    primary, secondary = _terminal()
    proc = subprocess.Popen([*command, "--format", "coverage5", "--overwrite", "--quiet"], stderr=secondary)
    os.close(secondary)
    assert proc.wait(timeout=120) == 0
    try:
        leftover = os.read(primary, 65536)
    except OSError:
        leftover = b""
    os.close(primary)
    assert leftover == b""


def _named(names: list[str], rows: int) -> str:
    return "".join(f"{names[i % len(names)]}\t{i}\t{i % 100}.25\t{i % 7}\t{i % 5}\n" for i in range(rows))


def test_convert_keeps_every_name_whole(tmp_path):
    short, long_ = tmp_path / "short.cov", tmp_path / "long.cov.gz"
    short.write_text(_named(["chr1", "chrM"], 5000))
    long_.write_bytes(
        gzip.compress(_named(["chr2", "chrUn_gl000220", "chr1_KI270706v1_random"], 7000).encode())
    )
    big = tmp_path / "big.cov"  # loaded in windows of 20 kB: its one width must hold the name in its last
    big.write_text(_named(["chr3"], 3000) + _named(["HLA-DRB1*15:01:01:01"], 1))
    paths = [short, long_, big]
    per_file = ndshm.to_hdf5(paths, tmp_path / "p.h5", format="coverage5", window=20_000, progress=False)
    concat = ndshm.to_hdf5(
        paths, tmp_path / "c.h5", format="coverage5", layout="concat", window=20_000, progress=False
    )
    with h5py.File(per_file) as p, h5py.File(concat) as c:
        assert [p[n].dtype["chr"] for n in ("short.cov", "long.cov", "big.cov")] == ["S4", "S22", "S20"]
        assert c["data"].dtype["chr"] == "S22"
        for name, path in zip(("short.cov", "long.cov", "big.cov"), paths, strict=True):
            want = _expected(path, "coverage5")
            assert p[name][()].tolist() == want.tolist()
        assert c["data"]["chr"][-1] == b"HLA-DRB1*15:01:01:01" and c["index"].dtype.names == (
            "file",
            "first_row",
            "rows",
        )
        assert c["data"]["chr"][5002] == b"chr1_KI270706v1_random"


def test_convert_refuses_a_width_too_short_unless_told_to_cut(tmp_path):
    path = tmp_path / "x.cov"
    path.write_text(_named(["chr1", "chr2", "chrUn_KI270302v1"], 10))
    out = tmp_path / "x.h5"
    command = [
        sys.executable,
        "-m",
        "ndshm",
        "convert",
        str(path),
        "-o",
        str(out),
        "--delimiter",
        "\\t",
        "--quiet",
        "--dtype",
        "chr:S10,pos:i4,pct:f4,c:i4,t:i4",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1 and not out.exists()
    assert f"{path}:3:1: 'chrUn_KI270302v1' is longer than the S10 field: S16 holds it" in result.stderr
    assert subprocess.run([*command, "--truncate"], capture_output=True, text=True).returncode == 0
    with h5py.File(out) as h5:
        assert h5["x.cov"]["chr"][2] == b"chrUn_KI27"  # cut, as numpy cuts
    widths = [*command[:-1], "chr:S,pos:i4,pct:f4,c:i4,t:i4", "--overwrite"]
    assert subprocess.run(widths, capture_output=True, text=True).returncode == 0
    with h5py.File(out) as h5:
        assert h5["x.cov"].dtype["chr"] == "S16" and h5["x.cov"]["chr"][2] == b"chrUn_KI270302v1"


@pytest.mark.parametrize("preset", sorted(ndshm.PRESETS))
def test_real_files_of_every_preset_convert_with_every_name_whole(preset, tmp_path):
    full, short = real_files.text(preset, 300), real_files.text(preset, 300, contigs=["chr1", "chrM"])
    texts = {"a.txt": (full, "plain"), "b.txt": (short, "gz"), "c.txt": (full, "bgzf")}
    paths = [real_files.write(tmp_path / name, data, kind) for name, (data, kind) in texts.items()]
    wants = [
        real_files.expected(preset, full),
        real_files.expected(preset, short),
        real_files.expected(preset, full),
    ]
    extra = {"skiprows": 1} if preset == "bedgraph" else {}
    # windows of 16 kB: the plain input is loaded in pieces (the compressed ones whole)
    for layout in ("per-file", "concat"):
        out = ndshm.to_hdf5(paths, tmp_path / f"{layout}.h5", format=preset, layout=layout, window=16_000,
                            progress=False, **extra)  # fmt: skip
        with h5py.File(out) as h5:
            if layout == "per-file":
                assert [h5[n].dtype["chr"].itemsize for n in ("a.txt", "b.txt", "c.txt")] == [22, 4, 22]
                for name, want in zip(("a.txt", "b.txt", "c.txt"), wants, strict=True):
                    assert h5[name].dtype == want.dtype and h5[name][()].tobytes() == want.tobytes()
            else:
                wide = wants[0].dtype
                assert h5["data"].dtype == wide
                assert h5["data"][()].tobytes() == np.concatenate([w.astype(wide) for w in wants]).tobytes()
                assert [int(r) for r in h5["index"]["rows"]] == [len(w) for w in wants]


@pytest.mark.parametrize(
    "compression", ["gzip:1", "lzf", "zstd:3", "blosc", "blosc:zstd:5", "blosc:blosclz:1"]
)
def test_compressed_chunks_written_in_parallel_read_back_with_stock_filters(compression, tmp_path):
    """Whole chunks are encoded by ndshm's core; a window's rows before its first chunk boundary go
    through HDF5's filter: stock h5py with hdf5plugin reads both as numpy.loadtxt reads the input."""
    import hdf5plugin  # noqa: F401

    text = "".join(SAMPLES["coverage5"](i) for i in range(250_000))
    path = tmp_path / "big.coverage5"
    path.write_text(text)
    dtype = "chr:S5,pos:i4,pct:f4,c:i4,t:i4"
    out = ndshm.to_hdf5([path], tmp_path / "o.h5", dtype=dtype, delimiter="\t", compression=compression,
                        window=2_000_001, progress=False)  # fmt: skip
    expected = np.loadtxt(path, dtype=parse_dtype_spec(dtype), delimiter="\t")
    with h5py.File(out) as h5:
        ds = h5["big.coverage5"]
        assert ds[...].tobytes() == expected.tobytes()
        assert ds.id.get_num_chunks() == 6  # 1 MiB chunks of 21-byte rows
