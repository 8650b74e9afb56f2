"""Lint and import order are habits, not a separate step: ruff (configured in pyproject.toml) over the tree."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_reports_nothing():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "explorer", "tests", "benchmarks",
                        "packaging"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
