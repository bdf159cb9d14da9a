"""bench/format_probe.py on the tiny model: every upload format scored per group through `aidetect evaluate`'s
code, and the committed result covers the same formats and groups."""

from __future__ import annotations

import json

import pytest

from model.robustness import FORMAT_TIERS

pytestmark = pytest.mark.slow


def test_every_format_is_scored_per_group_with_its_drop(tiny_model):
    from bench.format_probe import probe

    settings, ref, _ = tiny_model
    out = probe(settings, ref.uri, n_boot=20, per_group=8)
    names = [t.name for t in FORMAT_TIERS]
    assert list(out["auroc"]) == list(out["drop"]) == names and out["model"] == ref.uri
    for tier in names:
        for group, stored in out["as_stored"].items():
            assert 0 <= out["auroc"][tier][group] <= 1
            assert out["drop"][tier][group] == pytest.approx(stored["auroc"] - out["auroc"][tier][group])
    # PNG keeps every pixel the JPEG decoded to, so its scores, and AUROC, are the stored ones
    assert all(abs(d) < 1e-9 for d in out["drop"]["png"].values())


def test_the_committed_result_covers_every_format():
    from bench.format_probe import RESULT

    doc = json.loads(RESULT.read_text())
    names = [t.name for t in FORMAT_TIERS]
    assert list(doc["auroc"]) == names and set(doc["worst_drop"]) == set(doc["as_stored"])
    assert {"coco-imagenet-sd", "faces"} <= set(doc["as_stored"])
