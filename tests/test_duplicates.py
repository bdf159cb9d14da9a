"""No block of 6 or more lines stands twice in the packages (issue 17): pylint's duplicate-code check (R0801).

Configured in pyproject.toml ([tool.pylint.*]: comments, docstrings, imports and signatures do not count);
the same by hand: `.venv/bin/python -m pylint aidetect model service ci infra`. Its plugin
(ci/pylint_own_modules.py) keeps astroid to our own modules, which takes the run from two minutes to seconds,
so the check is part of the inner loop; the planted block below shows that it still finds what it should.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def pylint(*files) -> subprocess.CompletedProcess:
    # From the repository root, so pyproject.toml configures it and its plugin imports.
    return subprocess.run(
        [sys.executable, "-m", "pylint", *map(str, files)], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_no_block_of_six_lines_repeats_across_the_packages():
    files = tracked_python_files()
    assert len(files) > 100
    proc = pylint(*files)
    assert proc.returncode == 0, f"repeated blocks: fold them into one function, or name a config twin\n{proc.stdout}"


def test_the_check_finds_a_block_copied_from_a_package_into_another_file(tmp_path):
    """A copy of a class whose code calls torch and numpy, modules the plugin keeps astroid from building:
    refusing them must not hide the copy."""
    source = (REPO / "model" / "runtime.py").read_text()
    scorer = source[source.index("class TorchScorer") : source.index("class OnnxScorer")]
    copy = tmp_path / "copied.py"
    copy.write_text('"""Someone else\'s module."""\n\nimport numpy as np\nimport torch\n\n\n' + scorer)
    proc = pylint(REPO / "model" / "runtime.py", copy)
    assert proc.returncode != 0
    assert "R0801" in proc.stdout and "==model.runtime:" in proc.stdout and "==copied:" in proc.stdout, proc.stdout
