"""No block of 6 or more lines stands twice in the packages (issue 17): pylint's duplicate-code check (R0801).

Configured in pyproject.toml ([tool.pylint.*]: comments, docstrings, imports and signatures do not count);
the same by hand: `.venv/bin/python -m pylint aidetect model service ci infra`. Slow (about two minutes of
one core for some 19k lines: the pairing, not the parsing, is the cost), so the inner loop leaves it to CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["aidetect", "model", "service", "ci", "infra"]


def tracked_python_files() -> list[str]:
    """The packages' .py files git tracks (work in progress that git does not know yet is not judged)."""
    out = subprocess.run(
        ["git", "ls-files", "--", *(f"{p}/*.py" for p in PACKAGES)], cwd=REPO, capture_output=True, text=True
    )
    if out.returncode != 0:  # not a git checkout (an unpacked sdist): every file
        return sorted(str(p.relative_to(REPO)) for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))
    return [f for f in out.stdout.split() if (REPO / f).is_file()]


@pytest.mark.slow
def test_no_block_of_six_lines_repeats_across_the_packages():
    files = tracked_python_files()
    assert len(files) > 100
    proc = subprocess.run(
        [sys.executable, "-m", "pylint", *files], cwd=REPO, capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, f"repeated blocks: fold them into one function, or name a config twin\n{proc.stdout}"
