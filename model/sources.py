"""What each image is beyond its label: generator family, kind of real source, and how sources are grouped
for scoring. The tables live in configs/sources.yaml; this module only reads them.

    table = load_sources()
    table.family_of(sample)                     # "sd1", "face-swap", ..., "real" for real images
    table.unmapped(samples)                     # {"newsource/newgen": 40}: AI images counted as "other"
    group_of_sources(samples)                   # {"faces": "faces", "camvid": "single-label pooled", ...}

Which sources are two-label is computed from the images being scored, never hard-coded: a source with
both labels in the split is scored alone (when large enough), every other source goes into the pooled group.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from model.manifest import Sample

log = logging.getLogger(__name__)

SOURCES_TABLE = Path(__file__).resolve().parent.parent / "configs" / "sources.yaml"
POOLED = "single-label pooled"
OVERALL = "overall"
REAL = "real"
OTHER = "other"
MIN_SOURCE_N = 100  # a two-label source needs this many images in the split to be reported alone


class UnknownOriginError(ValueError):
    """A family table naming a family it does not define."""


@dataclass(frozen=True)
class SourceTable:
    families: dict[str, dict[str, str]]  # source -> origin ("*" = any) -> family
    family_names: dict[str, str]  # family -> readable name
    nonphoto_real: tuple[str, ...]
    unseen_real_photo: tuple[str, ...]

    def family_of(self, s: Sample) -> str:
        """The sample's generator family; an AI image of a generator the table does not list is `other`
        (always trained on, as the issue defines it), said once in the log: data that grows must not stop
        training or the suite, and the leave-out report lists such origins (unmapped())."""
        if s.label == REAL:
            return REAL
        fam = self._listed(s)
        if fam is None:
            _warn_unmapped(s.source, s.origin)
            return OTHER
        if fam not in self.family_names:
            raise UnknownOriginError(f"{s.source}/{s.origin}: family {fam!r} is not in family_names")
        return fam

    def _listed(self, s: Sample) -> str | None:
        by_origin = self.families.get(s.source, {})
        return by_origin.get(s.origin, by_origin.get("*"))

    def unmapped(self, samples: Iterable[Sample]) -> dict[str, int]:
        """{"source/origin": n}: the AI images counted as `other` because the table does not list them."""
        out: dict[str, int] = {}
        for s in samples:
            if s.label != REAL and self._listed(s) is None:
                key = f"{s.source}/{s.origin}"
                out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))


@lru_cache(maxsize=256)
def _warn_unmapped(source: str, origin: str) -> None:
    log.warning(
        "AI images of source %r, origin %r have no generator family in %s: counted as %r; add them there",
        source,
        origin,
        SOURCES_TABLE.name,
        OTHER,
    )


@lru_cache(maxsize=4)
def load_sources(path: Path = SOURCES_TABLE) -> SourceTable:
    data = yaml.safe_load(Path(path).read_text()) or {}
    fams = {str(src): {str(o): str(f) for o, f in (m or {}).items()} for src, m in data.get("families", {}).items()}
    return SourceTable(
        families=fams,
        family_names={str(k): str(v) for k, v in data.get("family_names", {}).items()},
        nonphoto_real=tuple(data.get("nonphoto_real", [])),
        unseen_real_photo=tuple(data.get("unseen_real_photo", [])),
    )


def two_label_sources(samples: Iterable[Sample]) -> set[str]:
    """Sources holding both real and AI images among `samples`."""
    labels: dict[str, set[str]] = {}
    for s in samples:
        labels.setdefault(s.source, set()).add(s.label)
    return {src for src, ls in labels.items() if len(ls) == 2}


def group_of_sources(samples: list[Sample], min_n: int = MIN_SOURCE_N) -> dict[str, str | None]:
    """source -> the group it is reported in: itself (two-label, at least `min_n` images), the single-label
    pool, or None (a small two-label source such as `playground`: it counts only in `overall`)."""
    two = two_label_sources(samples)
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.source] = counts.get(s.source, 0) + 1
    out: dict[str, str | None] = {}
    for src, n in counts.items():
        if src in two:
            out[src] = src if n >= min_n else None
        else:
            out[src] = POOLED
    return out
