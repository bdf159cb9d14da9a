"""The import rules between the top-level packages (issue 17, docs/architecture.md), read from the source.

    aidetect/ (CLI, composition root)  ->  service/, ci/, infra/, model/
    service/, ci/                      ->  model/            (never each other)
    model/                             ->  aidetect.settings, aidetect.errors only; no CLI, no Typer
    infra/                             ->  no model/ or service/ code

Every import counts, at any depth: a function-level import runs too, just later. `if TYPE_CHECKING:` blocks and
optional imports are left out, as in aidetect/testing/importgraph.py, because nothing runs them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from aidetect.testing.importgraph import layer_violations

REPO = Path(__file__).resolve().parents[1]

# The CLI side of aidetect/: only the composition root may import it.
CLI = [
    "aidetect.cli",
    "aidetect.commands",
    "aidetect.cli_data",
    "aidetect.cli_models",
    "aidetect.cli_prompts",
    "aidetect.cli_qwen",
    "aidetect.__main__",
]
# What model/ may take from aidetect/: the one settings object and the one-line error helper.
SHARED = ["aidetect.settings", "aidetect.errors"]

# package -> (forbidden module prefixes, allowed exceptions). service/, ci/ and infra/ keep their own Typer
# groups (registered by aidetect/cli.py); model/ has none.
RULES = {
    "model": (["service", "ci", "infra", "aidetect", "typer", "click"], SHARED),
    "service": (["ci", "infra", *CLI], []),
    "ci": (["service", "infra", *CLI], []),
    "infra": (["model", "service", *CLI], []),
}


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_keeps_its_layer(package):
    forbidden, allowed = RULES[package]
    bad = layer_violations(REPO, package, forbidden, allowed)
    assert bad == [], f"{package}/ imports across its layer (see docs/architecture.md): {bad}"


def test_the_cli_modules_are_all_named():
    """A new aidetect/cli_*.py joins CLI above, or service, ci and infra could import it unseen."""
    found = {f"aidetect.{p.stem}" for p in (REPO / "aidetect").glob("cli*.py")} | {"aidetect.commands"}
    assert found <= set(CLI)


def _private_names(package: Path) -> set[str]:
    """Names starting with one underscore that a package defines: functions, methods, classes."""
    out = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if node.name.startswith("_") and not node.name.startswith("__"):
                    out.add(node.name)
    return out


def private_uses(root: Path, user: str, owner: str) -> list[str]:
    """`file:line name` where `user` reaches a private name that `owner` defines (an attribute on anything
    but self/cls, or an import)."""
    private = _private_names(root / owner)
    out = []
    for path in sorted((root / user).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in private:
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    out.append(f"{path.relative_to(root)}:{node.lineno} {node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == owner:
                out += [f"{path.relative_to(root)}:{node.lineno} {a.name}" for a in node.names if a.name in private]
    return out


def test_the_service_uses_the_stores_public_interface():
    """The store (model/etl) may change its private helpers without the service noticing."""
    assert private_uses(REPO, "service", "model") == []


# --- the checkers themselves, on a project made for the purpose ---

PROJECT = {
    "app/__init__.py": "",
    "app/settings.py": "",
    "app/cli.py": "",
    "low/__init__.py": "",
    "low/ok.py": "from app import settings\nfrom app.settings import x\nimport json\n",
    "low/bad.py": "def later():\n    from high.api import serve\n",
    "low/sub/__init__.py": "from ...app.cli import main\n",
    "low/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import high\n",
    "high/__init__.py": "",
    "high/api.py": "import low.ok\n",
    "high/reach.py": "from low.ok import _hidden\ndef f(store):\n    return store._key('x')\n",
    "low/store.py": "def _hidden():\n    pass\nclass S:\n    def _key(self, k):\n        return self._key\n",
}


@pytest.fixture
def project(tmp_path):
    for name, text in PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_checker_finds_a_deliberate_violation(project):
    bad = layer_violations(project, "low", ["high", "app"], ["app.settings"])
    assert bad == [
        "low/bad.py: high.api",  # inside a function, still a violation
        "low/bad.py: high.api.serve",
        "low/sub/__init__.py: app.cli",  # a relative import resolved
        "low/sub/__init__.py: app.cli.main",
    ]  # and not ok.py (`from app import settings` is allowed), nor typed.py (TYPE_CHECKING only)


def test_checker_passes_what_the_rules_allow(project):
    assert layer_violations(project, "high", ["app"]) == []
    assert layer_violations(project, "low", ["app"], ["app.settings", "app.cli"]) == []


def test_private_use_checker_finds_a_deliberate_reach(project):
    assert private_uses(project, "high", "low") == ["high/reach.py:1 _hidden", "high/reach.py:3 _key"]
    assert private_uses(project, "low", "low") == []  # self._key is the class's own business
