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
