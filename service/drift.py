"""Drift of recent traffic against the training snapshot: PSI and the KS test per feature.

    ref = reference_features(bundle, paths)          # scores and input statistics of snapshot images
    cur = traffic_features(records, since)            # the same, from recorded detections
    report = compare(ref, cur)                        # {"features": {name: {psi, ks, p_value, n_ref, n_cur}}, ...}

PSI < 0.1 is usually read as no shift, 0.1-0.2 as moderate, > 0.2 as a shift worth a look
(the alert in gitops/ fires above 0.2). Bins are the reference's deciles, so PSI is comparable
across features; empty bins are floored at a small epsilon.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np

FEATURES = ("score", "log_pixels", "aspect", "log_bytes")
EPS = 1e-4


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # a constant reference: all mass in one bin
        edges = np.array([reference.min() - 0.5, reference.min() + 0.5])
    edges[0], edges[-1] = -np.inf, np.inf
    r = np.histogram(reference, edges)[0] / len(reference)
    c = np.histogram(current, edges)[0] / len(current)
    r, c = np.clip(r, EPS, None), np.clip(c, EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    from scipy.stats import ks_2samp

    res = ks_2samp(reference, current)
    return float(res.statistic), float(res.pvalue)


def features_of(score, width, height, size_bytes) -> dict[str, float]:
    return {
        "score": float(score),
        "log_pixels": math.log10(max(1, width * height)),
        "aspect": width / max(1, height),
        "log_bytes": math.log10(max(1, size_bytes)),
    }


def columns(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
    return {f: np.array([r[f] for r in rows], dtype=float) for f in FEATURES}


def compare(ref: dict[str, np.ndarray], cur: dict[str, np.ndarray], min_samples: int = 20) -> dict:
    out = {}
    for f in FEATURES:
        r, c = ref.get(f, np.empty(0)), cur.get(f, np.empty(0))
        if len(r) < min_samples or len(c) < min_samples:
            out[f] = {"psi": None, "ks": None, "p_value": None, "n_ref": len(r), "n_cur": len(c)}
            continue
        stat, p = ks(r, c)
        out[f] = {"psi": round(psi(r, c), 6), "ks": round(stat, 6), "p_value": p, "n_ref": len(r), "n_cur": len(c)}
    worst = max((v["psi"] for v in out.values() if v["psi"] is not None), default=None)
    return {"features": out, "max_psi": worst, "computed_at": dt.datetime.now(dt.UTC).isoformat()}


def reference_features(bundle, paths: list, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Scores and input statistics of snapshot images, through the service's own decoding."""
    from model.preprocess import decode_image

    rows = []
    for path in paths:
        data = path.read_bytes()
        img = decode_image(data, bundle.pre)
        score = float(bundle.score_images([img])[0])
        rows.append(features_of(score, img.width, img.height, len(data)))
    return columns(rows)


def store_reference_images(records, split: str, per_group: int, out_dir: Path) -> list[Path]:
    """Up to `per_group` labelled images of `split` per (source, label) from the data store, written to
    `out_dir`: the reference where no manifest's files are on disk (the cluster's drift CronJob). Taken in
    sha256 order, so every run compares against the same images until the data changes."""
    from sqlalchemy import select

    from model.etl.db import Image

    with records.session("reading reference images") as s:
        rows = s.execute(
            select(Image.sha256, Image.object_key, Image.source, Image.label)
            .where(Image.split == split, Image.label.is_not(None))
            .order_by(Image.sha256)
        ).all()
    counts: dict[tuple[str, str], int] = {}
    paths = []
    for sha, key, source, label in rows:
        if counts.get((source, label), 0) >= per_group:
            continue
        counts[(source, label)] = counts.get((source, label), 0) + 1
        path = Path(out_dir) / sha
        path.write_bytes(records.store.objects.get(key))
        paths.append(path)
    return paths


def traffic_features(records, since: dt.datetime, limit: int = 50_000) -> dict[str, np.ndarray]:
    from sqlalchemy import select

    from service.tables import DetectionRow as Detection

    with records.session("reading recent detections") as s:
        rows = s.execute(
            select(Detection.score, Detection.width, Detection.height, Detection.size_bytes)
            .where(Detection.created_at >= since)
            .order_by(Detection.created_at.desc())
            .limit(limit)
        ).all()
    return columns([features_of(*r) for r in rows])


def prometheus_text(report: dict) -> str:
    lines = [
        "# HELP aidetect_drift_psi PSI of recent traffic vs the training snapshot",
        "# TYPE aidetect_drift_psi gauge",
    ]
    for f, v in report["features"].items():
        if v["psi"] is not None:
            lines.append(f'aidetect_drift_psi{{feature="{f}"}} {v["psi"]}')
    return "\n".join(lines) + "\n"
