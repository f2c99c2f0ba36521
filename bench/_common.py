"""Helpers for the benchmarks: machine description, medians, result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("results")


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }


def warm(path: Path) -> None:
    """Reads path through, so that its pages are in the page cache (page cache warm)."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def cache_as_read(path: Path) -> None:
    """Puts path's pages in the page cache as a read from disk does: written out, dropped, read again.
    A file's writer can leave its pages in 4 KiB folios, while a read from disk brings them in folios of
    up to 2 MiB (file systems with large folios: the project VM's ext4 on Linux 6.18), which a reader
    that maps the file, as ndshm and polars do, maps with one fault per 2 MiB. The files users load were
    mostly written long before (by Bismark, or a download), so every reader gets them as read from disk.
    On the project VM: mapping 300 MB of coverage text took 4578 faults as written, 282 as read; for the
    1 GB file, counting its lines on two threads (a C++ loop over a mapping) took 0.104-0.137 s as
    written, 0.063-0.085 s as read, and unmapping it 0.057 s, then 0.003 s.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # (dirty pages cannot be dropped)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    warm(path)


def coverage_block(rng: np.random.Generator, n: int) -> str:
    """n lines of five-column coverage text (chr pos pct c t, tab-separated) with random values."""
    chrom = rng.integers(1, 23, n)
    pos = rng.integers(0, 250_000_000, n)
    pct = rng.integers(0, 10_000, n) / 100
    c = rng.integers(0, 200, n)
    t = rng.integers(0, 200, n)
    return "".join(
        f"chr{a}\t{b}\t{p:.2f}\t{x}\t{y}\n" for a, b, p, x, y in zip(chrom, pos, pct, c, t, strict=True)
    )


def write_repeated(path: Path, block: str, size: int) -> None:
    """block written again and again until path holds at least size bytes."""
    data = block.encode()
    with open(path, "wb") as f:
        written = 0
        while written < size:
            f.write(data)
            written += len(data)


def coverage_text(path: Path, size: int = 0, rows: int | None = None) -> None:
    """Coverage text as bench_loadtxt.py's: 200,000 random lines repeated, cut at the last line end
    within size bytes; or `rows` random lines."""
    block = coverage_block(np.random.default_rng(1), 200_000 if rows is None else rows)
    if rows is not None:
        path.write_text(block)
        return
    write_repeated(path, block, size)
    with open(path, "r+b") as f:
        f.seek(max(0, size - 200))
        f.truncate(f.tell() + f.read(200).rindex(b"\n") + 1)


def median(values: list[float]) -> float:
    return statistics.median(values)


def save(name: str, command: str, results: dict, table: str) -> Path:
    folder = RESULTS / f"{dt.date.today().isoformat()}-{platform.node() or 'machine'}"
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "machine": machine(), "results": results}
    (folder / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (folder / f"{name}.md").write_text(f"Command: `{command}`\n\nMachine: {payload['machine']}\n\n{table}\n")
    return folder


def _tree_and_brokers(root: int) -> set[int]:
    """root, its descendants and every ndshm broker, from one pass over /proc/*/stat."""
    children: dict[int, list[int]] = {}
    brokers = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                head, tail = (entry / "stat").read_text().rsplit(")", 1)
            except (OSError, ValueError):
                continue
            pid = int(entry.name)
            children.setdefault(int(tail.split()[1]), []).append(pid)
            if head.endswith("(ndshm-broker"):
                brokers.add(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found | brokers


def _pss(pid: int) -> int:
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
        )
    except (OSError, ValueError):
        return 0
    return sum(int(fields.get(k, "0 kB").split()[0]) * 1024 for k in ("Pss_Anon", "Pss_Shmem"))


def run_measured(command: list[str]) -> tuple[float, int, str]:
    """Wall time, peak memory and standard output of a command and every process it starts (ndshm
    brokers included). Peak memory: the sum over those processes of proportional anonymous + shared
    memory (smaps_rollup Pss_Anon + Pss_Shmem), sampled every 50 ms."""
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], sum(_pss(p) for p in _tree_and_brokers(proc.pid)))
            done.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output = proc.stdout.read()
    code = proc.wait()
    elapsed = time.perf_counter() - t0
    done.set()
    sampler.join()
    if code != 0:
        raise RuntimeError(f"{command} failed with {code}")
    return elapsed, peak[0], output


def two_coverage_inputs(data: Path, size_mb: int) -> list[str]:
    """The 1 GB five-column file of bench_loadtxt.py under two names (a hard link), for the converters."""
    source = data / f"coverage-{size_mb * 10**6}.tsv"
    if not source.exists():
        raise SystemExit(f"{source} is missing: run bench/bench_loadtxt.py first")
    second = data / "coverage-copy.tsv"
    if not second.exists():
        os.link(source, second)
    return [str(source), str(second)]


def run_table(title: str, first: str, runs: list[str], results: dict) -> list[str]:
    """Markdown rows of time, text rate and peak memory for each named run."""
    lines = [title, "", f"| {first} | median s | GB/s of text | peak MiB (all processes) | peak / output |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name in runs:
        r = results[name]
        lines.append(f"| {name} | {r['median_s']:.2f} | {r['gb_per_s']:.3f} | {r['peak_mib']:.0f} | "
                     f"{r['peak_over_output']:.2f} |")  # fmt: skip
    return lines


def summary(times: list[float], peaks: list[int], text_bytes: int, output_bytes: int) -> dict:
    """Median time, text rate and peak memory (absolute and over the output) of repeated runs."""
    return {
        "median_s": median(times),
        "all_s": times,
        "gb_per_s": text_bytes / median(times) / 1e9,
        "peak_mib": max(peaks) / 2**20,
        "peak_over_output": max(peaks) / output_bytes,
    }


def publish(name: str, script: str, argv: list[str], results: dict, lines: list[str]) -> None:
    """Prints the table and saves it with the results and the command that made them."""
    table = "\n".join(lines)
    print(table)
    folder = save(name, f"python bench/{script} " + " ".join(argv), results, table)
    print(f"\nsaved in {folder}")
