"""What the project's modules import, read from the source (no imports run): third-party distributions per
command group (tests/test_extras.py), and imports that cross a layer (tests/test_layers.py).

    from aidetect.testing.importgraph import undeclared
    undeclared(Path("."), ["ci.cli"], allowed={"mlflow", "boto3", ...})   # -> {"zizmor": ["ci/actions.py"]}
    layer_violations(Path("."), "model", forbidden=["service"])          # -> ["model/x.py: service.y"]

Walks the project's own modules from a group's registering module, following imports at any depth
(function-level imports run too, just later: that is how a missing package bit after six minutes of
training). Left out, because the code runs without them: `if TYPE_CHECKING:` blocks, `if __name__ ==
"__main__":` blocks, and imports inside a `try` whose ImportError handler goes on without them. The
top-level names found are mapped to distributions with importlib.metadata, so the venv running this must
have every extra.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from pathlib import Path

from aidetect.extras import normalise

_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def module_file(root: Path, name: str) -> Path | None:
    """The file of project module `name` under `root`, None when it is not the project's."""
    p = root.joinpath(*name.split("."))
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    if p.with_suffix(".py").is_file():
        return p.with_suffix(".py")
    return None


def _optional_import(node: ast.Try) -> bool:
    """A `try` whose ImportError handler carries on without the module (one that raises still needs it)."""
    for h in node.handlers:
        types = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
        if any(isinstance(t, ast.Name) and t.id in _IMPORT_ERRORS for t in types):
            return not any(isinstance(n, ast.Raise) for n in ast.walk(h))
    return False


def _skipped_if(node: ast.If) -> bool:
    t = node.test
    if isinstance(t, ast.Name) and t.id == "TYPE_CHECKING":
        return True
    if isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING":
        return True
    return (
        isinstance(t, ast.Compare)
        and isinstance(t.left, ast.Name)
        and t.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in t.comparators)
    )


def imported_names(source: str, module: str, is_package: bool, load_only: bool = False) -> set[str]:
    """Absolute dotted names a module's source imports (`from a import b` gives `a` and `a.b`);
    `load_only`: only those that run when the module is imported (none inside functions)."""
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if load_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return
        if isinstance(node, ast.If) and _skipped_if(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Try) and _optional_import(node):
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return out


# The command tree imports every group: a group reaching it (a `main()` shim) does not need them all.
STOP = frozenset({"aidetect.cli"})


def third_party_imports(
    root: Path, start: Iterable[str], load_only: bool = False, stop: frozenset[str] = STOP
) -> dict[str, set[str]]:
    """Top-level third-party module names reachable from the `start` modules -> project files importing them."""
    seen: set[str] = set(stop - set(start))
    todo = list(start)
    found: dict[str, set[str]] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(root, name)
        if path is None:
            continue
        for imp in imported_names(path.read_text(), name, path.name == "__init__.py", load_only):
            parts = imp.split(".")
            if module_file(root, parts[0]) is not None:
                # importing a.b.c runs a, a.b and a.b.c
                todo += [".".join(parts[: i + 1]) for i in range(len(parts))]
            elif parts[0] not in sys.stdlib_module_names and parts[0] != "__future__":
                found.setdefault(parts[0], set()).add(str(path.relative_to(root)))
    return found


def declared(pyproject: Path, extra: str | None) -> set[str]:
    """Normalised distribution names of the base dependencies plus `extra` (its aidetect[...] followed)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {})

    def names(reqs: list[str]) -> set[str]:
        out = set()
        for r in reqs:
            name = r.split(";")[0].split("[")[0]
            for sep in "<>=!~ ":
                name = name.split(sep)[0]
            if normalise(name) == normalise(project["name"]):
                for e in r[r.index("[") + 1 : r.index("]")].split(","):
                    out |= names(extras[e.strip()])
            else:
                out.add(normalise(name))
        return out

    return names(project["dependencies"]) | (names(extras[extra]) if extra else set())


@cache
def _installed() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def undeclared(
    root: Path,
    start: Iterable[str],
    allowed: set[str],
    load_only: bool = False,
    distributions: dict[str, list[str]] | None = None,
) -> dict[str, str]:
    """Modules reachable from `start` whose distribution is not in `allowed` -> why (distribution, importers)."""
    dists = _installed() if distributions is None else distributions
    bad = {}
    for top, files in sorted(third_party_imports(root, start, load_only).items()):
        candidates = {normalise(d) for d in dists.get(top, [])}
        if not candidates:
            bad[top] = f"no installed distribution provides it (imported by {', '.join(sorted(files))})"
        elif not candidates & allowed:
            bad[top] = f"from {'/'.join(sorted(candidates))}, imported by {', '.join(sorted(files))}"
    return bad


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer_violations(root: Path, package: str, forbidden: Iterable[str], allowed: Iterable[str] = ()) -> list[str]:
    """`file: name` for each import in `package` (under `root`) of a module under `forbidden` and not under
    `allowed`, at any depth (a function-level import breaks a layer as surely as a top-level one)."""
    forbidden, allowed = tuple(forbidden), tuple(allowed)
    out = []
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names = imported_names(path.read_text(), module, path.name == "__init__.py")
        for name in sorted(names):
            if not _under(name, forbidden) or _under(name, allowed):
                continue
            # `from aidetect import settings` also yields the bare package `aidetect`: judge the longer name.
            if any(other.startswith(name + ".") and _under(other, allowed) for other in names):
                continue
            out.append(f"{path.relative_to(root)}: {name}")
    return out
