"""Every module of the project imports, in the fast inner loop (`pytest -m "not slow"`): a module no
fast test reaches still fails here on a syntax error, a missing dependency or an import cycle."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("aidetect", "model", "service", "ci", "infra")


def _is_script(path: Path) -> bool:
    # Alembic's env.py runs migrations and a __main__ runs its program when imported: both are entry
    # points, reached by the tests of what runs them (records migrate, python -m aidetect, pulumi).
    return path.name == "__main__.py" or (path.name == "env.py" and path.parent.name == "migrations")


def project_modules() -> list[str]:
    mods = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            if _is_script(path):
                continue
            rel = path.relative_to(REPO).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            mods.append(".".join(parts))
    return mods


def test_the_walk_finds_every_package_and_leaves_out_entry_points():
    mods = project_modules()
    assert {"aidetect.cli", "model.train", "service.routes", "ci.cli", "infra.cli"} <= set(mods)
    assert not [m for m in mods if m.endswith(("__main__", "migrations.env"))]


@pytest.mark.parametrize("name", project_modules())
def test_module_imports(name):
    importlib.import_module(name)
