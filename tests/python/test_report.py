"""bench/report.py draws the README's figures from the committed results, and every figure the README
shows exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_report_renders_from_the_committed_results(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "report.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    made = sorted(Path(line).name for line in result.stdout.split())
    assert {"loading.png", "handover.png"} <= set(made)
    for name in made:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / name).stat().st_size > 10_000  # axes, lines and labels, not an empty canvas


def test_every_figure_the_readme_shows_is_committed():
    readme = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    if not images:
        pytest.fail("the README shows no figure")
    for image in images:
        assert (ROOT / image).is_file(), image
