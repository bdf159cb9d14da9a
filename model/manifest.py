"""Read labelled image manifests: CSV with columns path,label,source,split,origin.

    from model.manifest import read_manifest
    samples = read_manifest("../shared/data/manifest.csv", split="train")

`path` is relative to the manifest's folder unless absolute. Labels are `real` or `ai`
(`fake` is accepted and read as `ai`, as some upstream sets name it). Every problem is a
ManifestError whose message names the file and, where there is one, the line.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("path", "label", "source", "split", "origin")
LABELS = {"real": 0, "ai": 1}  # the label map saved with every model version
_ALIASES = {"fake": "ai", "generated": "ai", "ai_generated": "ai"}


class ManifestError(ValueError):
    """A manifest that cannot be read; the message is meant for the user."""


@dataclass(frozen=True)
class Sample:
    path: Path  # absolute path of the image file
    label: str  # "real" or "ai"
    source: str
    split: str
    origin: str = ""

    @property
    def target(self) -> int:
        return LABELS[self.label]


def normalise_label(raw: str) -> str | None:
    label = raw.strip().lower()
    label = _ALIASES.get(label, label)
    return label if label in LABELS else None


def parse_rows(rows: Iterable[dict[str, str]], base: Path, name: str) -> list[Sample]:
    """Validate CSV rows (as csv.DictReader gives them) into Samples; pure apart from path joining."""
    samples = []
    for lineno, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{name}:{lineno}"
        rel = (row.get("path") or "").strip()
        if not rel:
            raise ManifestError(f"{where}: empty path")
        label = normalise_label(row.get("label") or "")
        if label is None:
            raise ManifestError(f"{where}: label {row.get('label')!r} is not one of {sorted(LABELS)}")
        split = (row.get("split") or "").strip()
        if not split:
            raise ManifestError(f"{where}: empty split")
        path = Path(rel)
        samples.append(
            Sample(
                path=path if path.is_absolute() else base / path,
                label=label,
                source=(row.get("source") or "").strip() or "unknown",
                split=split,
                origin=(row.get("origin") or "").strip(),
            )
        )
    return samples


def read_manifest(
    manifest: str | Path,
    split: str | Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
    check_files: bool = True,
) -> list[Sample]:
    """All samples of a manifest, optionally only some splits and sources."""
    manifest = Path(manifest).expanduser()
    if not manifest.is_file():
        raise ManifestError(f"manifest not found: {manifest} (set --manifest or AIDETECT_MANIFEST)")
    try:
        with manifest.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("path", "label", "split") if c not in (reader.fieldnames or [])]
            if missing:
                raise ManifestError(f"{manifest}: missing column(s) {', '.join(missing)}; need {','.join(COLUMNS)}")
            samples = parse_rows(reader, manifest.parent, str(manifest))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f"{manifest}: not a readable CSV ({e})") from None
    if split is not None:
        wanted = {split} if isinstance(split, str) else set(split)
        samples = [s for s in samples if s.split in wanted]
    if sources is not None:
        wanted_sources = set(sources)
        samples = [s for s in samples if s.source in wanted_sources]
    if check_files:
        absent = [s.path for s in samples if not s.path.is_file()]
        if absent:
            raise ManifestError(f"{manifest}: {len(absent)} image(s) missing, first: {absent[0]}")
    return samples


def subsample(samples: list[Sample], per_group: int, seed: int = 0) -> list[Sample]:
    """At most `per_group` samples per (source, label, split), chosen reproducibly: small, balanced sets."""
    import random

    rng = random.Random(seed)
    groups: dict[tuple[str, str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.source, s.label, s.split), []).append(s)
    out: list[Sample] = []
    for key in sorted(groups):
        members = groups[key]
        out.extend(rng.sample(members, min(per_group, len(members))))
    return out


def summary(samples: list[Sample]) -> dict[tuple[str, str, str], int]:
    """Counts per (source, label, split)."""
    return dict(Counter((s.source, s.label, s.split) for s in samples))
