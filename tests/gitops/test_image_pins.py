"""Every ghcr.io/aidetect image gitops/ runs is pinned to a tag .github/workflows/image.yml builds: its
own tag step, run here with the commit the tag names, gives back that tag, and that commit is on this
branch, touches a path that triggers the workflow, and has the image test (tests/e2e/test_image.py): a
commit from before the Dockerfile could build (its .dockerignore left out ci/ and infra/) triggered the
workflow too, but its build failed, so no image carries its tag."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess

import pytest
import yaml
from gitops_render import GITOPS, REPO

WORKFLOW = REPO / ".github" / "workflows" / "image.yml"
IMAGE_TEST = "tests/e2e/test_image.py"


def pins() -> list[tuple[str, str, str, str | None]]:
    """(kustomization, image, newTag, digest) for every image of ours gitops/ sets."""
    out = []
    for file in sorted(GITOPS.rglob("kustomization.yaml")):
        for entry in yaml.safe_load(file.read_text()).get("images", []):
            if entry["name"].startswith("ghcr.io/aidetect/"):
                out.append((str(file.relative_to(REPO)), entry["name"], str(entry["newTag"]), entry.get("digest")))
    return out


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30)


def workflow_tag(workflow: dict, image: str, sha: str) -> str:
    """What image.yml's "Compute the tag" step outputs for `image` at commit `sha`."""
    step = next(s for s in workflow["jobs"]["build"]["steps"] if s.get("name") == "Compute the tag")
    env = {
        **os.environ,
        **workflow["env"],
        "GITHUB_SHA": sha,
        "IMAGE": image.rsplit("/", 1)[1],
        "GITHUB_OUTPUT": "/dev/stdout",
    }
    res = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return dict(line.split("=", 1) for line in res.stdout.splitlines())["tag"]


def test_every_image_of_ours_is_pinned_to_a_tag_the_image_workflow_builds():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    built = {i["image"] for i in workflow["jobs"]["build"]["strategy"]["matrix"]["include"]}
    triggers = workflow[True]["push"]["paths"] if True in workflow else workflow["on"]["push"]["paths"]
    if git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        pytest.skip("shallow clone: the pinned commits may be outside the fetched history (fetch-depth: 0 checks them)")
    found = pins()
    assert {name for _, name, _, _ in found} == {f"ghcr.io/aidetect/{i}" for i in built}
    for where, name, tag, digest in found:
        match = re.search(r"sha-([0-9a-f]{12})$", tag)
        assert match, f"{where}: {name}:{tag} is not a tag image.yml makes (sha-<12 hex>)"
        full = git("rev-parse", "--verify", f"{match.group(1)}^{{commit}}")
        assert full.returncode == 0, f"{where}: {tag} names no commit of this repository"
        sha = full.stdout.strip()
        assert workflow_tag(workflow, name, sha) == tag, f"{where}: image.yml would tag {name} differently"
        assert git("merge-base", "--is-ancestor", sha, "HEAD").returncode == 0, f"{where}: {tag} is not on this branch"
        changed = git("show", "--name-only", "--format=", sha).stdout.split()
        assert any(fnmatch.fnmatch(f, p) or f.startswith(p.removesuffix("**")) for f in changed for p in triggers), (
            f"{where}: commit {sha[:12]} changes nothing that makes image.yml build"
        )
        # The suite builds and runs the image from the Dockerfile of its own commit; where that test exists
        # the workflow's build of the same tree succeeds, so the tag exists in the registry.
        assert git("cat-file", "-e", f"{sha}:{IMAGE_TEST}").returncode == 0, (
            f"{where}: {tag} predates {IMAGE_TEST}: no test built that image, and the Dockerfile of then "
            "could not build it (pin a later commit with `python -m ci.gitops_pin image`)"
        )
        assert digest is None or re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
