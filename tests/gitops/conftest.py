"""Fixtures for the gitops/ checks: every kustomization rendered once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

# Helpers beside this file import by plain name (pytest runs in importlib mode).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gitops_render import DETECTOR_OVERLAYS, ENVIRONMENTS, GITOPS, kustomize_dirs, render  # noqa: E402


@pytest.fixture(scope="session")
def rendered() -> dict[Path, list[dict]]:
    """{kustomization dir: its rendered objects} for every kustomization under gitops/."""
    return {d: render(d) for d in kustomize_dirs()}


@pytest.fixture(scope="session")
def all_objects(rendered) -> list[tuple[Path, dict]]:
    """(source dir, object) for every rendered object; the detector base is left out because every
    overlay renders it again with real values."""
    base = GITOPS / "apps" / "detector" / "base"
    objects = [(d, obj) for d, objs in rendered.items() if d != base for obj in objs]
    # Applied by hand, so in no kustomization; checked like everything else.
    root_app = GITOPS / "clusters" / "production" / "root-app.yaml"
    return objects + [(root_app.parent, yaml.safe_load(root_app.read_text()))]


@pytest.fixture(scope="session")
def overlays(rendered) -> dict[str, list[dict]]:
    return {env: rendered[DETECTOR_OVERLAYS / env] for env in ENVIRONMENTS}
