"""The detect route's answer, written once (service.routes.answer), against what FastAPI's response_model
would have sent for the same detection."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from service.detection import Detection
from service.routes import answer


def fastapi_answer(det: Detection) -> bytes:
    app = FastAPI()

    @app.get("/d", response_model=Detection, response_model_exclude_unset=True)
    def d():
        return det

    return TestClient(app).get("/d").content


@pytest.mark.parametrize(
    "fields",
    [
        {"verdict": "uncertain"},
        {"verdict": "real", "score": 0.1, "latency_ms": 4.2},
        {"verdict": "ai_generated", "score": 0.9, "review": True, "explanation": 'é, and a quote " here'},
    ],
    ids=["uncertain", "latency", "cascade-fields"],
)
def test_the_answer_is_what_the_response_model_would_send(make_detection, fields):
    det = make_detection(**fields)
    out = answer(det)
    assert out.media_type == "application/json"
    assert json.loads(out.body) == json.loads(fastapi_answer(det))
    sent = json.loads(out.body)
    assert not {"api_key_id", "created_at", "size_bytes", "phash"} & set(sent)  # the private fields stay home
    assert "fast" not in sent and "second_model" not in sent  # unset: left out, as the route promises


def test_a_worker_error_passes_unchanged():
    err = JSONResponse({"detail": "not an image"}, status_code=415)
    assert answer(err) is err
