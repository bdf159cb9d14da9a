"""What the service tests share: typed detections as the inference worker makes them."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from model.etl.objects import sha256_hex
from service.detection import Detection, ImageFacts, ModelRef, Provenance, Thresholds


def new_detection(
    data: bytes = b"image bytes",
    verdict: str = "uncertain",
    score: float = 0.5,
    when: dt.datetime | None = None,
    keep: bool | None = None,
    **fields,
) -> Detection:
    """A fast-stage detection of `data`, as service.api.detection_of makes one (kept when uncertain)."""
    kept = verdict == "uncertain" if keep is None else keep
    return Detection(
        id=str(uuid.uuid4()),
        score=score,
        verdict=verdict,
        thresholds=Thresholds(low=0.2, high=0.8),
        model=ModelRef(name="aidetect", version="3", uri="models:/aidetect/3"),
        provenance=Provenance(ai_hint=False, software="GIMP"),
        image=ImageFacts(sha256=sha256_hex(data), width=24, height=16),
        kept_for_review=kept,
        api_key_id="abc",
        created_at=when or dt.datetime.now(dt.UTC),
        size_bytes=len(data),
        phash="8f373714acfcf4d0" if kept else None,
        **fields,
    )


@pytest.fixture
def make_detection():
    return new_detection
