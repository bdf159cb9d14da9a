"""bench/self_blend_probe.py at a smoke scale: both recipes trained without face swaps, (f) with its twins and
(a) without, each scored on the val face swaps and on self-blends of the real val faces."""

from __future__ import annotations

import json

import pytest

from model.manifest import read_manifest, subsample

pytestmark = pytest.mark.slow


def test_probe_smoke(tmp_path, manifest):
    from bench.self_blend_probe import main

    out = tmp_path / "p.json"
    args = ["--home", str(tmp_path / "home"), "--per-group", "2", "--epochs", "1", "--threads", "1", "--out", str(out)]
    assert main(args) == 0

    rep = json.loads(out.read_text())
    rows = {r["name"]: r for r in rep["rows"]}
    assert set(rows) == {"a", "f"} and rep["cpus"] >= 1
    small = subsample(read_manifest(manifest), 2)
    real_faces = sum(s.source == "faces" and s.label == "real" for s in small if s.split == "val")
    for r in rows.values():
        assert r["epochs"] == 1 and r["n_real_faces"] == real_faces and r["n_face_swaps"] >= 1
        assert 0 <= r["auroc_face_swaps"] <= 1 and 0 <= r["auroc_self_blends"] <= 1
    # (f) trains on one twin per real face of train; (a), on the same images, without them
    twins = sum(s.source == "faces" and s.label == "real" for s in small if s.split == "train")
    assert rows["f"]["n_train"] - rows["a"]["n_train"] == twins > 0
