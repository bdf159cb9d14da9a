"""model/sources.py + configs/sources.yaml: every generator in the shared data has a family, real images
never get one, and two-label sources are found from the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from aidetect.settings import get_settings
from model.manifest import Sample, read_manifest
from model.sources import POOLED, UnknownOriginError, group_of_sources, load_sources, two_label_sources

AI_FAMILIES = {"sd1", "dalle2-mini", "gpt4o", "gemini-2025", "ldm-glid-disco", "latent", "dit-sit", "face-swap"}


def _shared():
    manifest = get_settings().manifest
    if not manifest.is_file():
        pytest.skip(f"shared manifest not found at {manifest}")
    return read_manifest(manifest, check_files=False)


def test_every_ai_origin_of_the_shared_manifest_has_a_family():
    table = load_sources()
    unmapped = sorted({(s.source, s.origin) for s in _shared() if s.label == "ai"
                       and s.origin not in table.families.get(s.source, {})
                       and "*" not in table.families.get(s.source, {})})
    assert unmapped == [], f"add these (source, origin) pairs to configs/sources.yaml: {unmapped}"
    fams = {table.family_of(s) for s in _shared() if s.label == "ai"}
    assert fams <= set(table.family_names) and AI_FAMILIES <= fams


def test_real_images_never_get_an_ai_family():
    table = load_sources()
    shared = _shared()
    assert {table.family_of(s) for s in shared if s.label == "real"} == {"real"}
    # No source that holds only real images is listed in the family table at all.
    real_only = {s.source for s in shared} - {s.source for s in shared if s.label == "ai"}
    assert real_only and not real_only & set(table.families)
    assert set(table.nonphoto_real) <= real_only and set(table.unseen_real_photo) <= real_only


def test_an_unknown_generator_fails_loudly():
    s = Sample(Path("/x/abc.jpg"), "ai", "dcsan-imagen", "train", "brand-new-generator")
    with pytest.raises(UnknownOriginError, match="brand-new-generator"):
        load_sources().family_of(s)
    assert load_sources().family_of(Sample(Path("/x/f.jpg"), "ai", "faces", "val", "anything")) == "face-swap"


def _s(source, label, i=0):
    return Sample(Path(f"/x/{source}{label}{i}.jpg"), label, source, "val")


def test_groups_come_from_the_labels_present():
    samples = ([_s("big", lab, i) for lab in ("real", "ai") for i in range(60)]
               + [_s("small", "real"), _s("small", "ai")] + [_s("aionly", "ai", i) for i in range(5)]
               + [_s("realonly", "real", i) for i in range(5)])
    assert two_label_sources(samples) == {"big", "small"}
    assert group_of_sources(samples) == {"big": "big", "small": None, "aionly": POOLED, "realonly": POOLED}
    # A two-label source whose split happens to hold one label is pooled, not scored alone.
    only_real_big = [s for s in samples if not (s.source == "big" and s.label == "ai")]
    assert group_of_sources(only_real_big)["big"] == POOLED
