"""Commit a pin change in a git checkout: only the named files, whatever else is staged or dirty.

    sha = commit_paths(repo, [overlay / "model-version.yaml"], "Promote aidetect v3 to staging: ...")

Pushing is the workflow's job (it holds the token); this only commits.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

DEFAULT_NAME = "aidetect-ci"
DEFAULT_EMAIL = "aidetect-ci@users.noreply.github.com"


class GitError(RuntimeError):
    """git refused; the message carries git's own last line."""


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ}
    # An identity only where none is configured, so a person's own commits keep their name.
    for var, default in (("GIT_AUTHOR_NAME", DEFAULT_NAME), ("GIT_COMMITTER_NAME", DEFAULT_NAME),
                         ("GIT_AUTHOR_EMAIL", DEFAULT_EMAIL), ("GIT_COMMITTER_EMAIL", DEFAULT_EMAIL)):
        if var not in env and not _configured(repo, "user.email" if "EMAIL" in var else "user.name"):
            env[var] = default
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, timeout=60)
    if check and proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise GitError(f"git {args[0]} in {repo} failed: {last[-1] if last else proc.returncode}")
    return proc


def _configured(repo: Path, key: str) -> bool:
    proc = subprocess.run(["git", "-C", str(repo), "config", key], capture_output=True, text=True, timeout=30)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def is_repo(path: Path) -> bool:
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "--git-dir"], capture_output=True, timeout=30)
    return proc.returncode == 0


def commit_paths(repo: Path, paths: list[Path], message: str) -> str | None:
    """Commit exactly `paths`; the new HEAD sha, or None when they match HEAD already."""
    rel = [str(Path(p).resolve().relative_to(Path(repo).resolve())) for p in paths]
    _git(repo, "add", "--", *rel)
    if _git(repo, "diff", "--cached", "--quiet", "HEAD", "--", *rel, check=False).returncode == 0:
        return None
    _git(repo, "commit", "--quiet", "--only", "-m", message, "--", *rel)
    return _git(repo, "rev-parse", "HEAD").stdout.strip()


def head(repo: Path) -> str:
    return _git(repo, "rev-parse", "HEAD").stdout.strip()
