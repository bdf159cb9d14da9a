"""One answered image, typed: what the worker decides, the outbox carries, the records keep and the caller gets.

    det = Detection(id=..., score=0.7, verdict="uncertain", model=ModelRef(...), image=ImageFacts(...), ...)
    det.model_dump(mode="json")          # the answer: fields marked exclude stay out of it and of the OpenAPI schema
    line = det.to_outbox()               # every field, as the outbox stores it
    Detection.from_outbox(line)          # and back

The fields a caller never sees (the key that asked, when, the upload's size, the kept image's perceptual
hash) are `exclude=True`: pydantic leaves them out of the answer and FastAPI out of its schema, while the
outbox and the records keep them. A detection the cascade decided (stage "qwen") is the same object with
the Qwen verdict in place and the fast opinion in `fast`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

from pydantic import BaseModel, Field

Verdict = Literal["ai_generated", "real", "uncertain"]
VERDICTS = ("ai_generated", "real", "uncertain")
Stage = Literal["fast", "qwen"]
# Never sent, always stored (see the module docstring).
PRIVATE = ("api_key_id", "created_at", "size_bytes", "phash")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Provenance(BaseModel):
    c2pa: dict | None = None
    iptc_digital_source_type: str | None = None
    generator: str | None = None
    software: str | None = None
    ai_hint: bool = False
    evidence: list[str] = []


class ModelRef(BaseModel):
    name: str
    version: str
    uri: str | None = None


class Thresholds(BaseModel):
    low: float
    high: float


class ImageFacts(BaseModel):
    sha256: str
    width: int
    height: int


class FastOpinion(BaseModel):
    score: float
    verdict: Verdict


class Detection(BaseModel):
    id: str = Field(description="detection id; send it back with POST /v1/feedback")
    score: float = Field(ge=0, le=1, description="calibrated probability that the image is AI-generated")
    verdict: Verdict = Field(description="ai_generated | real | uncertain (between the thresholds)")
    thresholds: Thresholds | None = Field(default=None, description="the band the fast verdict used")
    model: ModelRef = Field(description="the fast model that answered")
    stage: Stage = "fast"
    provenance: Provenance = Field(description="metadata hints, reported beside the score, never replacing it")
    image: ImageFacts
    kept_for_review: bool = Field(description="uncertain: the bytes are kept for a moderator")
    latency_ms: float | None = None
    # Cascade (AIDETECT_QWEN_URL): set when the uncertain band went to the Qwen stage, or could not.
    explanation: str | None = Field(default=None, description="the Qwen stage's reasons, when it decided")
    fast: FastOpinion | None = Field(default=None, description="the fast stage's score and verdict, when Qwen decided")
    second_model: dict | None = Field(default=None, description="the Qwen model that decided")
    review: bool | None = Field(
        default=None,
        description="uncertain and no second opinion, or uncertain for the Qwen stage too: waits for a moderator",
    )
    # Stored, never sent.
    api_key_id: str | None = Field(default=None, exclude=True)
    created_at: dt.datetime = Field(default_factory=utcnow, exclude=True)
    size_bytes: int = Field(default=0, exclude=True)
    phash: str | None = Field(default=None, exclude=True)  # the kept image's, hashed by the worker

    @property
    def sha256(self) -> str:
        return self.image.sha256

    @property
    def deciding_model(self) -> tuple[str, str]:
        """(name, version) of the model whose verdict this is: the Qwen model once the cascade decided."""
        second = self.second_model or {}
        if self.stage != "fast" and second.get("name") and second.get("version") is not None:
            return str(second["name"]), str(second["version"])
        return self.model.name, self.model.version

    def to_outbox(self) -> str:
        row = self.model_dump(mode="json", exclude_unset=True)
        row.update({k: getattr(self, k) for k in PRIVATE})
        row["created_at"] = self.created_at.isoformat()
        return json.dumps(row)

    @classmethod
    def from_outbox(cls, line: str) -> Detection:
        return cls.model_validate_json(line)

    def for_moderators(self) -> dict:
        """What the review page shows of a stored detection."""
        out = self.model_dump(mode="json", exclude_unset=True)
        out.update(sha256=self.sha256, created_at=self.created_at.isoformat())
        out["image"]["size_bytes"] = self.size_bytes
        return out
