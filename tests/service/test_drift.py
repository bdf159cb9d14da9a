"""PSI and KS drift of traffic against the reference."""

from __future__ import annotations

import numpy as np

from service.drift import FEATURES, compare, features_of, prometheus_text, psi


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.beta(2, 5, 5000)
    assert psi(ref, rng.beta(2, 5, 5000)) < 0.02
    assert psi(ref, rng.beta(5, 2, 5000)) > 1.0
    assert psi(np.ones(100), np.ones(50)) < 1e-6  # a constant reference does not divide by zero


def test_compare_reports_every_feature_and_skips_thin_samples():
    rng = np.random.default_rng(1)

    def cols(n, shift=0.0):
        scores = np.clip(rng.normal(0.3 + shift, 0.1, n), 0, 1)
        rows = [features_of(s, 256, 256 + int(shift * 100), 40_000) for s in scores]
        return {f: np.array([r[f] for r in rows]) for f in FEATURES}

    same = compare(cols(500), cols(500))
    assert set(same["features"]) == set(FEATURES) and same["max_psi"] < 0.1
    shifted = compare(cols(500), cols(500, shift=0.4))
    assert shifted["features"]["score"]["psi"] > 0.2 and shifted["features"]["score"]["p_value"] < 1e-6
    thin = compare(cols(500), cols(5))
    assert thin["features"]["score"]["psi"] is None and thin["max_psi"] is None
    assert 'aidetect_drift_psi{feature="score"}' in prometheus_text(shifted)


# --- the report every replica exports, wherever the command ran ------------------------------------


def _records(tmp_path):
    from service.records import Records

    return Records.open(url=f"sqlite:///{tmp_path / 'etl.db'}", objects=str(tmp_path / "objects"))


def test_reports_are_stored_and_the_newest_is_what_metrics_export(tmp_path):
    import json

    from service.metrics import StateCollector, render

    db = _records(tmp_path)
    try:
        assert db.latest_drift_report() is None
        db.add_drift_report({"features": {"score": {"psi": 0.05}}, "model": "models:/aidetect/1"})
        db.add_drift_report({"features": {"score": {"psi": 0.31}}, "model": "models:/aidetect/1"})
        assert db.latest_drift_report()["features"]["score"]["psi"] == 0.31
        stale = tmp_path / "drift.json"
        stale.write_text(json.dumps({"features": {"score": {"psi": 0.01}}}))
        text = render(StateCollector(drift_file=stale, drift_stored=db.latest_drift_report))[0].decode()
        assert 'aidetect_drift_psi{feature="score"} 0.31' in text
    finally:
        db.close()


def test_metrics_fall_back_to_the_file_when_the_database_is_down(tmp_path):
    import json

    from service.metrics import StateCollector, render

    def down():
        raise OSError("database down")

    local = tmp_path / "drift.json"
    local.write_text(json.dumps({"features": {"aspect": {"psi": 0.12}}}))
    text = render(StateCollector(drift_file=local, drift_stored=down))[0].decode()
    assert 'aidetect_drift_psi{feature="aspect"} 0.12' in text


def test_reference_from_the_store_takes_labelled_images_of_the_split_per_group(tmp_path):
    import io

    from PIL import Image as PILImage

    from model.etl.db import Image
    from model.etl.objects import object_key, sha256_hex

    db = _records(tmp_path)
    try:
        with db.session("adding images") as s:
            for i in range(9):
                buf = io.BytesIO()
                PILImage.new("RGB", (16, 16), (i * 20, 0, 0)).save(buf, "PNG")
                data = buf.getvalue()
                sha = sha256_hex(data)
                db.store.objects.put(sha, data)
                source, label, split = (
                    ("a", "ai", "val") if i < 4 else ("b", "real", "val") if i < 7 else ("a", "ai", "train")
                )
                s.add(
                    Image(
                        sha256=sha,
                        object_key=object_key(sha),
                        size_bytes=len(data),
                        width=16,
                        height=16,
                        phash="0" * 16,
                        source=source,
                        label=label,
                        split=split,
                    )
                )
            s.add(
                Image(
                    sha256="f" * 64,
                    object_key=object_key("f" * 64),
                    size_bytes=1,
                    width=1,
                    height=1,
                    phash="0" * 16,
                    source="a",
                    label=None,
                    split="val",
                )
            )  # unlabelled: never a reference
        from service.drift import store_reference_images

        out = tmp_path / "ref"
        out.mkdir()
        paths = store_reference_images(db, "val", 2, out)
        assert len(paths) == 4  # 2 of (a, ai) and 2 of (b, real); train and unlabelled images left out
        assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
        assert [p.name for p in paths] == sorted(p.name for p in paths)  # the same pick on every run
    finally:
        db.close()
