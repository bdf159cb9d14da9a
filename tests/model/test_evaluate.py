"""model/evaluate.py: groups come from the data, only the evaluation half of val is scored, every group has
bootstrap intervals, and real non-photo / unseen-photo rates are reported."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from model.bundle import DetectorBundle
from model.detectors import DetectorSpec, build_network
from model.evaluate import evaluate_bundle
from model.preprocess import PreprocessConfig
from model.robustness import TIER_NAMES
from model.sources import POOLED

LAYOUT = [("big", "real", "x", 40), ("big", "ai", "x", 40), ("playground", "real", "city", 4),
          ("playground", "ai", "gan", 4), ("memegen", "real", "meme", 12), ("camvid", "real", "camvid-dashcam", 12),
          ("nano-banana", "ai", "gemini-nano-banana", 12)]


def _manifest(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for src, label, origin, n in LAYOUT:
        d = tmp_path / src / label
        d.mkdir(parents=True)
        for i in range(n):
            noise = 60 if label == "real" else 5  # real images noisy, AI smooth: something to score
            arr = np.clip(rng.integers(40, 200, (1, 1, 3)) + rng.normal(0, noise, (48, 48, 3)), 0, 255)
            buf = io.BytesIO()
            Image.fromarray(arr.astype(np.uint8)).save(buf, "JPEG", quality=90)
            p = d / f"{src}{label}{i:04d}.jpg"
            p.write_bytes(buf.getvalue())
            rows.append({"path": str(p.relative_to(tmp_path)), "label": label, "source": src, "split": "val",
                         "origin": origin})
    m = tmp_path / "manifest.csv"
    with m.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "source", "split", "origin"])
        w.writeheader()
        w.writerows(rows)
    return m


@pytest.mark.slow
def test_groups_intervals_held_out_half_and_real_kinds(tmp_path):
    manifest = _manifest(tmp_path)
    bundle = DetectorBundle(net=build_network(DetectorSpec(pretrained=False)).eval(), pre=PreprocessConfig(size=48),
                            calibration={"method": "platt", "a": 1.0, "b": 0.0},
                            thresholds={"low": 0.3, "high": 0.7})
    from model.manifest import read_manifest
    from model.nonphoto import write_set

    rendered = read_manifest(write_set(tmp_path / "np", "eval", 2, kinds=["chart", "quote", "document"]))
    res = evaluate_bundle(bundle, manifest, tmp_path / "out", n_boot=200, min_source_n=30, nonphoto=rendered)
    assert "evaluation half" in res["scored"] and "near-duplicate" in res["scored"]
    assert 0.3 * res["n_split"] < res["n"] < 0.7 * res["n_split"]
    # 'big' has both labels and >= 30 (100 by default) scored images; the single-label ones are pooled;
    # playground is too small to be reported alone.
    assert set(res["groups"]) == {"overall", "big", POOLED}
    for g in res["groups"].values():
        lo, hi = g["auroc_ci"]
        assert lo <= g["auroc"] <= hi and len(g["ece_ci"]) == 2
    assert set(res["groups_q60"]) == set(res["groups"])
    nonphoto = res["real_kinds"]["non-photo real"]
    assert nonphoto["sources"].keys() <= {"memegen"} and 0 < nonphoto["n"] <= 12
    assert abs(nonphoto["ai_generated"] + nonphoto["real"] + nonphoto["uncertain"] - 1) < 1e-9
    assert (tmp_path / "out" / "groups_ci.png").is_file()
    # the separately rendered non-photos: verdict shares pooled and per kind
    np_rates = res["real_kinds"]["rendered non-photo (eval set)"]
    assert np_rates["n"] == 6 and set(np_rates["sources"]) == {"chart", "quote", "document"}
    assert abs(np_rates["ai_generated"] + np_rates["real"] + np_rates["uncertain"] - 1) < 1e-9
    # every robustness tier, every group, with its drop against as stored
    assert set(res["tier_auroc"]) == set(TIER_NAMES) == set(res["tier_auroc_drop"])
    for tier, by_group in res["tier_auroc"].items():
        assert set(by_group) == set(res["groups"])
        for g, a in by_group.items():
            assert res["tier_auroc_drop"][tier][g] == pytest.approx(res["groups"][g]["auroc"] - a)
    assert set(res["worst_tier_drop"]) == set(res["groups"])
    # The band refitted on the calibration half at other targets (this bundle's thresholds name none:
    # training's defaults are marked as its own).
    points = res["operating_points"]
    assert len(points) >= 4 and sum(p["trained"] for p in points) == 1
    for p in points:
        assert 0 <= p["uncertain"] <= 1 and p["nonphoto_n"] == nonphoto["n"]
    assert (tmp_path / "out" / "operating_points.png").is_file()
    # Another split is scored whole: nothing of it fitted calibration.
    test_m = tmp_path / "test.csv"
    test_m.write_text(manifest.read_text().replace(",val,", ",test,"))
    whole = evaluate_bundle(bundle, test_m, tmp_path / "o2", split="test", n_boot=50)
    assert whole["n"] == res["n_split"] and whole["operating_points"] == []  # no calibration half to refit on


def test_tables_print_groups_with_intervals_and_real_kinds(tmp_path):
    from rich.console import Console

    from model.eval_tables import print_evaluation

    ci = {f"{k}_ci": [0.8, 0.9] for k in ("auroc", "ap", "tpr_at_1fpr", "ece")}
    m = {"n": 50.0, "n_ai": 20.0, "auroc": 0.85, "ap": 0.84, "tpr_at_1fpr": 0.5, "ece": 0.05, **ci}
    nan_m = {**m, "auroc": float("nan")}
    shares = {"n": 10, "ai_generated": 0.1, "ai_generated_ci": [0.0, 0.3], "real": 0.6, "real_ci": [0.3, 0.9],
              "uncertain": 0.3, "uncertain_ci": [0.1, 0.6]}
    result = {"n": 50, "n_split": 100, "split": "val", "scored": "the evaluation half",
              "groups": {"overall": m, POOLED: nan_m},
              "groups_q60": {"overall": {"auroc": 0.8}, POOLED: {"auroc": 0.7}},
              "real_kinds": {"non-photo real": {**shares, "sources": {"memegen": shares}}},
              "tiers": {"jpeg75": "JPEG 75"}, "tier_auroc": {"jpeg75": {"overall": 0.83, POOLED: float("nan")}},
              "tier_auroc_drop": {"jpeg75": {"overall": 0.02}},
              "operating_points": [{"fpr": 0.01, "fnr": 0.05, "low": 0.2, "high": 0.9, "uncertain": 0.41,
                                    "ai_called_real": 0.05, "real_called_ai": 0.01, "nonphoto_n": 7,
                                    "nonphoto_real": 0.5, "nonphoto_uncertain": 0.4, "nonphoto_ai_generated": 0.1,
                                    "trained": True}]}
    con = Console(width=200, record=True)
    print_evaluation("models:/aidetect/1", result, con)
    text = con.export_text()
    assert "0.850 [0.800, 0.900]" in text and "n/a" in text and "memegen" in text and "50 of 100 val" in text
    assert "robustness tiers" in text and "0.830 (+0.020)" in text and "jpeg75 = JPEG 75" in text
    assert "1% / 5% (trained)" in text and "0.50 / 0.40 / 0.10 (n=7)" in text
