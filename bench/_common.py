"""Helpers for the benchmarks: machine description, medians, result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
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
