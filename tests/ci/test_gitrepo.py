"""ci/gitrepo.py: a pin commit holds exactly the pin file, whatever else is staged or dirty."""

from __future__ import annotations

import subprocess

import pytest

from ci.gitrepo import GitError, commit_paths


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def repo(tmp_path):
    r = tmp_path / "r"
    (r / "gitops").mkdir(parents=True)
    (r / "gitops" / "pin.yaml").write_text("v: 1\n")
    (r / "other.txt").write_text("x\n")
    git(r, "init", "-q", "-b", "main")
    git(r, "add", ".")
    git(r, "-c", "user.name=p", "-c", "user.email=p@example.invalid", "commit", "-qm", "init")
    return r


def test_commits_only_the_named_file(repo, monkeypatch):
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")  # no identity configured: the CI default applies
    (repo / "gitops" / "pin.yaml").write_text("v: 2\n")
    (repo / "other.txt").write_text("someone's work in progress\n")
    git(repo, "add", "other.txt")
    sha = commit_paths(repo, [repo / "gitops" / "pin.yaml"], "Promote v2\n\nbody\n")
    assert sha == git(repo, "rev-parse", "HEAD").strip()
    shown = [line for line in git(repo, "show", "--name-only", "--format=%s|%an", "HEAD").splitlines() if line]
    assert shown == ["Promote v2|aidetect-ci", "gitops/pin.yaml"]
    assert "other.txt" in git(repo, "diff", "--cached", "--name-only")  # still staged, not committed


def test_nothing_to_commit_returns_none(repo):
    assert commit_paths(repo, [repo / "gitops" / "pin.yaml"], "noop") is None
    assert git(repo, "rev-list", "--count", "HEAD").strip() == "1"


def test_a_path_outside_the_repo_or_no_repo_is_an_error(repo, tmp_path):
    with pytest.raises(ValueError):
        commit_paths(repo, [tmp_path / "elsewhere.yaml"], "x")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "f").write_text("1")
    with pytest.raises(GitError, match="git add"):
        commit_paths(tmp_path / "plain", [tmp_path / "plain" / "f"], "x")
