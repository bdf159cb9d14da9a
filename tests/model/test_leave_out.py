"""model/leave_out.py on synthetic frozen features: folds leave out what they say and find what they should."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.features import FeatureSet
from model.leave_out import HeadConfig, leave_out
from model.manifest import Sample

# (source, label, origin, n per split): names the family table knows.
LAYOUT = [
    ("coco-imagenet-sd", "ai", "diffusiondb", 40),  # sd1
    ("coco-imagenet-sd", "real", "coco", 40),
    ("faces", "ai", "train", 40),  # face-swap
    ("faces", "real", "train", 40),
    ("dcsan-imagen", "ai", "glid-3-xl", 30),  # ldm-glid-disco
    ("playground", "ai", "gan", 10),  # other: never left out
    ("dcsan-imagen", "ai", "brand-new-generator", 5),  # listed nowhere: other too, and reported
    ("camvid", "real", "camvid-dashcam", 20),
    ("polyu-noisy", "real", "polyu-camera-crop", 20),
]


def synthetic(seed=0):
    rng = np.random.default_rng(seed)
    samples, x = [], []
    for src, label, origin, n in LAYOUT:
        for split in ("train", "val"):
            for i in range(n):
                samples.append(Sample(Path(f"/d/{src}-{label}-{split}-{i}.jpg"), label, src, split, origin))
                v = rng.normal(0, 1, 16)
                v[0] += 3.0 if label == "ai" else 0.0  # one direction every generator shares
                x.append(v)
    names = [f"{s.source}/{s.label}/{s.path.name}" for s in samples]
    thumbs = rng.normal(0, 1, (len(samples), 1024)).astype(np.float32)
    thumbs /= np.linalg.norm(thumbs, axis=1, keepdims=True)
    return samples, FeatureSet(names, np.array(x, np.float32), thumbs)


def test_folds_cover_every_family_but_other_and_every_real_photo_source():
    samples, feats = synthetic()
    rep = leave_out(samples, feats, HeadConfig(n_boot=100))
    folds = {r["fold"]: r for r in rep["families"]}
    assert set(folds) == {"sd1", "face-swap", "ldm-glid-disco"}
    assert rep["unmapped_origins"] == {"dcsan-imagen/brand-new-generator": 10}
    assert folds["face-swap"]["real_from"] == "faces" and folds["face-swap"]["n_real"] == 40
    assert folds["sd1"]["n_scored"] == 80 and folds["sd1"]["n_real"] == 120 and folds["sd1"]["counted"]
    assert all(r["auroc"] > 0.9 for r in folds.values())  # the shared direction generalises
    assert [r["fold"] for r in rep["real_sources"]] == ["polyu-noisy", "camvid"]
    assert all(0 <= r["fpr_at_high"] <= 1 for r in rep["real_sources"])
    assert rep["summary"]["family_auroc_worst"] == min(r["auroc"] for r in rep["families"] if r["counted"])


def test_an_unseen_family_with_its_own_trace_is_found_worst():
    samples, feats = synthetic(1)
    glide = np.array([s.origin == "glid-3-xl" for s in samples])
    feats.x[glide, 0] -= 3.0  # this family lacks the shared trace ...
    feats.x[glide, 1] += 3.0  # ... and has its own, which no other family shows
    rep = leave_out(samples, feats, HeadConfig(n_boot=100))
    assert rep["summary"]["family_worst"] == "ldm-glid-disco"
    left_out = {r["fold"]: r["auroc"] for r in rep["families"]}["ldm-glid-disco"]
    assert rep["baseline"]["families"]["ldm-glid-disco"]["auroc"] > left_out + 0.2  # far better once trained on


def test_face_swaps_are_scored_against_real_faces_only_and_other_families_against_every_source():
    from model.leave_out import FACE_REAL_SOURCE, FACE_SWAP, fold_real

    sources = [FACE_REAL_SOURCE, "coco-imagenet-sd", "memegen"]
    assert fold_real(FACE_SWAP, sources).tolist() == [True, False, False]
    assert fold_real("sd1", sources).tolist() == [True, True, True]
