"""ndshm convert at three sizes, against the users' baseline workflow and against the machine's limit.

Run: python bench/bench_convert.py [--data DIR] [--small-reps 7] [--medium-reps 5] [--large-reps 1]
                                   [--large-mb 1000] [--gzip]
Five-column coverage text (bench_loadtxt.py's rows), page cache warm, uncompressed output on DIR's file
system (default /tmp/convert-bench; the files are made there and deleted at the end). Each size's runs
are interleaved, rep by rep; medians. The four ratios:
* small: a 2,000-row file; `ndshm convert` minus `python -c "import numpy, h5py, ndshm"` (alternating);
* medium: 2 x 40 MB; the baseline workflow with its output fsynced (`baseline_workflow.py --fsync`, as
  durable as convert's) over convert; also without fsync;
* large: 2 x --large-mb MB; convert over the larger of (a) ndshm.loadtxt of both files alone on all
  cores and (b) writing and fsyncing the output's bytes alone (`dd conv=fdatasync`); and the durable
  baseline over convert.
Peak memory: the sum over the process tree of proportional anonymous + shared memory (smaps_rollup
Pss_Anon + Pss_Shmem), sampled every 50 ms. --gzip adds parallel gzip chunks vs h5py's own filter.
Writes bench/results/<date>-<machine>/convert.{json,md}.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

import ndshm
from _common import coverage_text, median, publish, run_measured, summary, warm
from ndshm import hdf5

HERE = Path(__file__).resolve().parent
LOAD_ALONE = (
    "import sys, ndshm\n"
    "for path in sys.argv[1:]:\n"
    "    rows = ndshm.loadtxt(path, shared=False, **ndshm.PRESETS['coverage5'])\n"
    "    del rows\n"
)


def _inputs(data: Path, name: str, size: int) -> list[str]:
    """One generated file under two names (a hard link), read once so that both are in the page cache."""
    first, second = data / f"{name}.tsv", data / f"{name}-copy.tsv"
    if not first.exists():
        coverage_text(first, size)
    if not second.exists():
        os.link(first, second)
    warm(first)
    return [str(first), str(second)]


def _convert(inputs: list[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "ndshm", "convert", *inputs, "-o", str(out), "--format", "coverage5",
            "--overwrite", "--quiet"]  # fmt: skip


def _baseline(inputs: list[str], out: Path, durable: bool) -> list[str]:
    return [sys.executable, str(HERE / "baseline_workflow.py"), *(["--fsync"] if durable else []), str(out),
            *inputs]  # fmt: skip


def _interleaved(commands: dict[str, list[str]], reps: int, out: Path, text_bytes: int) -> dict:
    """Every command once per rep, in turn; the output deleted and everything written synced first."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, list[int]] = {name: [] for name in commands}
    output_bytes = 0
    for _ in range(reps):
        for name, command in commands.items():
            out.unlink(missing_ok=True)
            os.sync()  # (a run without fsync leaves its writes to the next one otherwise)
            elapsed, peak, _ = run_measured(command)
            times[name].append(elapsed)
            peaks[name].append(peak)
            if out.exists() and not output_bytes and name.startswith("ndshm"):
                with h5py.File(out) as h5:
                    output_bytes = sum(h5[k].nbytes for k in h5)
    out.unlink(missing_ok=True)
    os.sync()
    return {name: summary(times[name], peaks[name], text_bytes, output_bytes) for name in commands} | {
        "output_bytes": output_bytes
    }


def small(data: Path, reps: int) -> dict:
    path = data / "small.tsv"
    coverage_text(path, 0, rows=2000)
    out = data / "small.h5"
    imports = [sys.executable, "-c", "import numpy, h5py, ndshm"]
    convert = _convert([str(path)], out)
    times: dict[str, list[float]] = {"import": [], "convert": []}
    for _ in range(reps):
        for name, command in (("import", imports), ("convert", convert)):
            t0 = time.perf_counter()
            subprocess.run(command, check=True)
            times[name].append(time.perf_counter() - t0)
    out.unlink()
    path.unlink()
    result = {name: {"median_s": median(t), "all_s": t} for name, t in times.items()}
    result["overhead_ms"] = (result["convert"]["median_s"] - result["import"]["median_s"]) * 1e3
    return result


def medium(data: Path, reps: int) -> dict:
    inputs = _inputs(data, "medium", 40_000_000)
    out = data / "medium.h5"
    text_bytes = 2 * Path(inputs[0]).stat().st_size
    runs = {
        "ndshm convert": _convert(inputs, out),
        "baseline, fsynced": _baseline(inputs, out, durable=True),
        "baseline, no fsync": _baseline(inputs, out, durable=False),
    }
    result = _interleaved(runs, reps, out, text_bytes)
    result["ratio_durable"] = result["baseline, fsynced"]["median_s"] / result["ndshm convert"]["median_s"]
    result["ratio_no_fsync"] = result["baseline, no fsync"]["median_s"] / result["ndshm convert"]["median_s"]
    for path in inputs:
        Path(path).unlink()
    return result


def large(data: Path, size_mb: int, reps: int) -> dict:
    inputs = _inputs(data, "large", size_mb * 10**6)
    out = data / "large.h5"
    text_bytes = 2 * Path(inputs[0]).stat().st_size
    subprocess.run(_convert(inputs, out), check=True)  # untimed: the output's size, for dd
    output_bytes = out.stat().st_size
    dd_file = data / "dd.bin"
    runs = {
        "ndshm convert": _convert(inputs, out),
        "ndshm.loadtxt of both alone (all cores)": [sys.executable, "-c", LOAD_ALONE, *inputs],
        "dd of the output's bytes, conv=fdatasync": [
            "dd", "if=/dev/zero", f"of={dd_file}", "bs=4M", f"count={math.ceil(output_bytes / 2**22)}",
            "conv=fdatasync", "status=none",
        ],
        "baseline, fsynced": _baseline(inputs, out, durable=True),
        "baseline, no fsync": _baseline(inputs, out, durable=False),
    }  # fmt: skip
    result = _interleaved(runs, reps, out, text_bytes)
    dd_file.unlink(missing_ok=True)
    convert = result["ndshm convert"]["median_s"]
    limit = max(result["ndshm.loadtxt of both alone (all cores)"]["median_s"],
                result["dd of the output's bytes, conv=fdatasync"]["median_s"])  # fmt: skip
    result["limit_s"] = limit
    result["ratio_to_limit"] = convert / limit
    result["ratio_durable"] = result["baseline, fsynced"]["median_s"] / convert
    result["ratio_no_fsync"] = result["baseline, no fsync"]["median_s"] / convert
    result["dd_bytes"] = output_bytes
    result["gzip"] = None
    return result


def bench_gzip(path: Path, reps: int, folder: Path) -> dict:
    array = ndshm.loadtxt(path, **ndshm.PRESETS["coverage5"])
    chunk_rows = hdf5.CHUNK_BYTES // array.dtype.itemsize
    out = folder / "compress.h5"

    def h5py_gzip() -> float:
        t0 = time.perf_counter()
        with h5py.File(out, "w") as h5:
            h5.create_dataset("d", data=array, chunks=(chunk_rows,), compression="gzip", compression_opts=1)
        return time.perf_counter() - t0

    def ndshm_gzip() -> float:
        t0 = time.perf_counter()
        with h5py.File(out, "w") as h5, ThreadPoolExecutor(os.cpu_count()) as pool:
            dataset = hdf5._create(h5, "d", array.shape, array.dtype, "gzip", 1, resizable=False)
            hdf5._write(dataset, array, 0, "gzip", 1, pool)
        return time.perf_counter() - t0

    ours = median([ndshm_gzip() for _ in range(reps)])
    with h5py.File(out) as h5:
        assert np.array_equal(h5["d"][()], array)
    theirs = median([h5py_gzip() for _ in range(reps)])
    out.unlink()
    return {"bytes": array.nbytes, "h5py_gzip1_s": theirs, "ndshm_gzip1_s": ours, "speedup": theirs / ours}


def _table(title: str, result: dict, names: list[str]) -> list[str]:
    lines = [title, "", "| run | median s (all) | GB/s of text | peak MiB (all processes) | peak / output |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name in names:
        r = result[name]
        runs = ", ".join(f"{t:.2f}" for t in r["all_s"])
        lines.append(f"| {name} | {r['median_s']:.3f} ({runs}) | {r['gb_per_s']:.3f} | {r['peak_mib']:.0f} | "
                     f"{r['peak_over_output']:.2f} |")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("/tmp/convert-bench"))
    parser.add_argument("--small-reps", type=int, default=7)
    parser.add_argument("--medium-reps", type=int, default=5)
    parser.add_argument("--large-reps", type=int, default=1)
    parser.add_argument("--large-mb", type=int, default=1000)
    parser.add_argument("--gzip", action="store_true", help="also parallel gzip chunks vs h5py's filter")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "small": small(args.data, args.small_reps),
        "medium": medium(args.data, args.medium_reps),
    }
    results["large"] = large(args.data, args.large_mb, args.large_reps)
    if args.gzip:
        results["large"]["gzip"] = bench_gzip(args.data / "large.tsv", 3, args.data)
    for name in ("large.tsv", "large-copy.tsv"):
        (args.data / name).unlink(missing_ok=True)

    s, m, g = results["small"], results["medium"], results["large"]
    lines = [
        "## The four ratios",
        "",
        "| size | measured | target |",
        "|---|---|---|",
        f"| small (2,000 rows) | convert {s['convert']['median_s'] * 1e3:.0f} ms - import "
        f"{s['import']['median_s'] * 1e3:.0f} ms = {s['overhead_ms']:.0f} ms | <= 60 ms |",
        f"| medium (2 x 40 MB) | durable baseline / convert = {m['ratio_durable']:.2f}x "
        f"(without fsync {m['ratio_no_fsync']:.2f}x) | >= 1.8x |",
        f"| large (2 x {args.large_mb} MB) | convert / max(loadtxt alone, dd) = "
        f"{g['ratio_to_limit']:.2f} | <= 1.25 |",
        f"| large | durable baseline / convert = {g['ratio_durable']:.2f}x (without fsync "
        f"{g['ratio_no_fsync']:.2f}x) | >= 6x |",
        "",
    ]
    lines += _table("## medium: 2 x 40 MB five-column files", m, ["ndshm convert", "baseline, fsynced",
                                                                  "baseline, no fsync"])  # fmt: skip
    large_runs = [name for name in g if isinstance(g[name], dict) and "median_s" in g[name]]
    lines += [""] + _table(f"## large: 2 x {args.large_mb} MB five-column files", g, large_runs)
    if g["gzip"]:
        c = g["gzip"]
        lines += ["", f"## gzip level 1 write of {c['bytes'] / 2**20:.0f} MiB (1 MiB chunks)", "",
                  f"h5py's filter {c['h5py_gzip1_s']:.2f} s, ndshm parallel chunks "
                  f"{c['ndshm_gzip1_s']:.2f} s: {c['speedup']:.2f}x"]  # fmt: skip
    publish("convert", "bench_convert.py", sys.argv[1:], results, lines)


if __name__ == "__main__":
    main()
