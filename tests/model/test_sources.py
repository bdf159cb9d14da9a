"""model/sources.py + configs/sources.yaml: every generator in the shared data has a family, real images
never get one, and two-label sources are found from the data."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from model.manifest import Sample, read_manifest
from model.sources import (
    POOLED,
    SourceTable,
    UnknownOriginError,
    group_of_sources,
    load_sources,
    two_label_sources,
)

AI_FAMILIES = {"sd1", "dalle2-mini", "gpt4o", "gemini-2025", "ldm-glid-disco", "latent", "dit-sit", "face-swap"}


@pytest.fixture(scope="module")
def shared(manifest):
    return read_manifest(manifest, check_files=False)


def test_every_ai_image_of_the_shared_manifest_gets_a_known_family(shared):
    table = load_sources()
    fams = {table.family_of(s) for s in shared if s.label == "ai"}
    assert fams <= set(table.family_names) and AI_FAMILIES <= fams


def test_real_images_never_get_an_ai_family(shared):
    table = load_sources()
    assert {table.family_of(s) for s in shared if s.label == "real"} == {"real"}
    # No source that holds only real images is listed in the family table at all.
    real_only = {s.source for s in shared} - {s.source for s in shared if s.label == "ai"}
    assert real_only and not real_only & set(table.families)
    assert set(table.nonphoto_real) <= real_only and set(table.unseen_real_photo) <= real_only


def test_an_unknown_generator_is_other_and_said(caplog):
    new = Sample(Path("/x/abc.jpg"), "ai", "dcsan-imagen", "train", "never-seen-generator")
    table = load_sources()
    with caplog.at_level(logging.WARNING, logger="model.sources"):  # (said once per origin and process)
        assert table.family_of(new) == "other"
    assert "never-seen-generator" in caplog.text and "sources.yaml" in caplog.text
    face = Sample(Path("/x/f.jpg"), "ai", "faces", "val", "anything")
    assert table.family_of(face) == "face-swap"  # "*": every origin of the source
    real = Sample(Path("/x/r.jpg"), "real", "dcsan-imagen", "val", "never-seen-generator")
    assert table.unmapped([new, new, face, real]) == {"dcsan-imagen/never-seen-generator": 2}


def test_a_family_the_table_does_not_define_fails_loudly():
    table = SourceTable(families={"s": {"*": "typo"}}, family_names={"other": "x"}, nonphoto_real=(),
                        unseen_real_photo=())
    with pytest.raises(UnknownOriginError, match="typo"):
        table.family_of(Sample(Path("/x/a.jpg"), "ai", "s", "val", "g"))


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
