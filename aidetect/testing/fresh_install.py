"""A venv holding aidetect as a user installs it: `pip install <tree>[extras]`, declared dependencies only.

    venv = fresh_install.venv(REPO)                     # the base install
    venv = fresh_install.venv(REPO, extras=("qwen",))   # base + the qwen extra
    subprocess.run([venv / "bin" / "aidetect", "--help"])

The working tree (tracked and untracked files git does not ignore, as a fresh clone would hold them) is
copied first, so building the wheel writes nothing into the repository and nothing installed in the
development venv can leak in. Installing torch, MLflow and the rest takes minutes, so the venv is kept
in AIDETECT_CACHE_DIR under a key made of everything that decides what pip resolves: the declared
dependencies of the chosen extras, the Python version and pip's configuration (constraints, indexes).
While the key holds, only aidetect itself is reinstalled from the tree; any change to a dependency makes
a new venv from nothing. Delete the cache folder to force that.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

CACHE_DIR = Path(os.environ.get("AIDETECT_CACHE_DIR", Path.home() / ".cache" / "aidetect"))
# A venv made from inside another one takes its base interpreter, never its packages.
PYTHON = sys.executable
_DONE = ".aidetect-install-complete"


def copy_tree(repo: Path, dest: Path) -> Path:
    """The files a clone of `repo` would hold, plus untracked ones git does not ignore, copied to `dest`."""
    files = (
        subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-co", "--exclude-standard", "-z"],
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = repo / rel
        if src.is_file():  # a deleted but still tracked file is listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _pip_config() -> str:
    """pip's configuration, with the contents of any constraints file it names."""
    out = subprocess.run([PYTHON, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    text = out
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".constraint"):
            text += "".join(Path(f).read_text() for f in value.strip("'\"").split() if Path(f).is_file())
    return text


def cache_key(repo: Path, extras: Sequence[str]) -> str:
    """Changes whenever what pip would install for these extras could change."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())
    optional = project["project"].get("optional-dependencies", {})
    what = {
        "dependencies": project["project"]["dependencies"],
        "extras": {e: optional.get(e, []) for e in sorted(extras)},
        "requires-python": project["project"].get("requires-python"),
        "build-system": project.get("build-system"),
        "python": subprocess.run([PYTHON, "-VV"], capture_output=True, text=True).stdout,
        "pip": _pip_config(),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _run(args: list, log: Path) -> None:
    with open(log, "ab") as out:
        proc = subprocess.run([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{' '.join(map(str, args))[:300]} failed ({proc.returncode}):\n{tail}")


def _prune(name: str, keep: Path) -> None:
    """Venvs of older keys for the same extras (about 2 GB each), unless another session holds one."""
    prefix = f"fresh-venv-{name}-"
    for old in CACHE_DIR.glob(prefix + "*"):
        key = old.name.removeprefix(prefix)
        if old == keep or not old.is_dir() or len(key) != 16 or "-" in key:  # dev-qwen is not dev
            continue
        with open(f"{old}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(old, ignore_errors=True)
        Path(f"{old}.lock").unlink(missing_ok=True)


def venv(repo: Path, extras: Sequence[str] = (), log: Path | None = None) -> Path:
    """The venv (its root folder) with the working tree of `repo` installed, non-editable, with `extras`."""
    name = "-".join(sorted(extras)) or "base"
    root = CACHE_DIR / f"fresh-venv-{name}-{cache_key(repo, extras)}"
    log = log or Path(tempfile.mkstemp(prefix="fresh-install-", suffix=".log")[1])
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(f"{root}.lock", "w") as lock, tempfile.TemporaryDirectory(prefix="aidetect-tree-") as tmp:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions never build or reinstall the same venv at once
        tree = copy_tree(repo, Path(tmp) / "aidetect")
        target = f"{tree}[{','.join(extras)}]" if extras else str(tree)
        python = root / "bin" / "python"
        if not (root / _DONE).is_file():
            shutil.rmtree(root, ignore_errors=True)  # a build that was cut off
            _run([PYTHON, "-m", "venv", root], log)
            _run([python, "-m", "pip", "install", "-q", target], log)
            (root / _DONE).write_text(target + "\n")
            _prune(name, keep=root)
        else:
            _run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", tree], log)
        _run([python, "-m", "pip", "check"], log)
    return root
