"""A pylint plugin for the one check pyproject.toml enables, duplicate-code (R0801): astroid builds our
own modules only.

R0801 compares each file's lines, less the docstrings, imports and signatures found in the file's own tree.
Building that tree, astroid infers `self.x = ...` targets and class bases, and so builds every module met on
the way: torch, transformers, mlflow and the standard library, some 6,500 modules. That was 130 of the 135
seconds of a run, for nothing R0801 reads. With the rest refused the run takes 2 seconds and reports the
same blocks (tests/test_duplicates.py plants one to check).
"""

from __future__ import annotations

from astroid import MANAGER
from astroid.manager import AstroidManager

OWN = frozenset({"aidetect", "model", "service", "ci", "infra", "bench", "tests"})


class OtherModules(set):
    """astroid's module deny-list, matched by top-level package: `torch.nn` is refused as `torch` is."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.split(".", 1)[0] not in OWN


def register(linter) -> None:  # pylint's plugin entry point
    denied = OtherModules()
    # The manager is a borg: every instance reads its deny-list from the shared brain when made.
    AstroidManager.brain["module_denylist"] = denied
    MANAGER.module_denylist = denied
