"""Which command group needs which pip extra, and a check that it is installed.

    pip install aidetect               # up, train, evaluate, serve, predict and every group mapped to None
    pip install 'aidetect[qwen]'       # and `aidetect qwen ...`, `aidetect prompts ...`

The base install runs the detector end to end; each other group names the extra it needs here, and the
root command checks it is installed before the group runs. tests/test_extras.py checks, from the source,
that every third-party module a group can reach is declared in the base dependencies or in its extra.
"""

from __future__ import annotations

import re
from importlib import metadata

# Command group of `aidetect` -> the pip extra it needs beyond the base install (None: the base install runs it).
# The main jobs (up, train, evaluate, serve) and `predict` are single commands, all in the base install.
GROUP_EXTRAS: dict[str, str | None] = {
    "infra": "infra",
    "qwen": "qwen",
    "prompts": "qwen",
    "models": None,
    "ingest": None,
    "data": None,
    "ci": None,
    "keys": None,
    "moderators": None,
    "monitor": None,
    "records": None,
}

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_requirements(extra: str, dist: str = "aidetect") -> list[str]:
    """Distribution names an installed aidetect declares for `extra` (its own extras followed)."""
    out: list[str] = []
    for req in metadata.requires(dist) or []:
        requirement, _, marker = req.partition(";")
        m = _EXTRA_MARKER.search(marker)
        if not m or normalise(m.group(1)) != normalise(extra):
            continue
        name = _NAME.match(requirement).group(1)
        if normalise(name) == normalise(dist):  # aidetect[a,b] inside an extra, e.g. `all`
            inner = requirement[requirement.find("[") + 1 : requirement.find("]")]
            for e in inner.split(","):
                out += extra_requirements(e.strip(), dist)
        else:
            out.append(name)
    return out


def missing(extra: str) -> list[str]:
    """Distributions of `extra` that are not installed; [] when aidetect itself is not installed (source run)."""
    try:
        wanted = extra_requirements(extra)
    except metadata.PackageNotFoundError:
        return []
    absent = []
    for name in wanted:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            absent.append(name)
    return absent


def install_hint(extra: str) -> str:
    return f"pip install 'aidetect[{extra}]'"


def missing_message(group: str, extra: str, absent: list[str]) -> str:
    return f"`aidetect {group}` needs the {extra} extra ({', '.join(absent)} not installed): {install_hint(extra)}"


def check(group: str | None) -> str | None:
    """Why `aidetect <group>` cannot run here (one line naming the pip command), None when it can."""
    extra = GROUP_EXTRAS.get(group or "")
    if extra is None:
        return None
    absent = missing(extra)
    return missing_message(group, extra, absent) if absent else None
