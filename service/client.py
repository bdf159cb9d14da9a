"""A small Python client for the detector's HTTP API (what the tests and `aidetect predict` use).

    from service.client import DetectorClient
    with DetectorClient("http://127.0.0.1:8000", api_key="aid_...") as c:
        r = c.detect("cat.jpg")                       # dict: id, score, verdict, provenance, ...
        c.feedback(r["id"], "real")                   # stored once, even when retried (Idempotency-Key)
        c.detect_batch(["a.jpg", "b.png"])            # one answer per image, in order
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

FEEDBACK_RETRIES = 2  # tries after the first


class ClientError(RuntimeError):
    """The server refused or failed a request; `status` and `detail` say how."""

    def __init__(self, status: int, detail: str, retry_after: float | None = None):
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail, self.retry_after = status, detail, retry_after


def _bytes(image: str | Path | bytes) -> bytes:
    return image if isinstance(image, bytes) else Path(image).read_bytes()


class DetectorClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        timeout: float = 60,
        transport: httpx.BaseTransport | None = None,  # e.g. httpx.WSGITransport / a test's MockTransport
    ):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> DetectorClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _check(self, r: httpx.Response) -> dict:
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text[:300]
            retry = r.headers.get("retry-after")
            raise ClientError(r.status_code, str(detail), float(retry) if retry else None)
        return r.json()

    def detect(self, image: str | Path | bytes) -> dict:
        return self._check(
            self.http.post("/v1/detect", content=_bytes(image), headers={"Content-Type": "application/octet-stream"})
        )

    def detect_batch(self, images: list[str | Path | bytes]) -> list[dict]:
        """Per image: {"index", "status", "result" | "detail"}."""
        files = [("images", (f"image{i}", _bytes(im), "application/octet-stream")) for i, im in enumerate(images)]
        return self._check(self.http.post("/v1/detect/batch", files=files))["results"]

    def feedback(
        self, detection_id: str, label: str, note: str | None = None, idempotency_key: str | None = None
    ) -> dict:
        """Store a label, once: every call sends an Idempotency-Key (a fresh uuid4 unless given) and its own
        retries reuse it, so a retry of a write that did land returns the stored row instead of a second one.
        Retried: a broken connection or a proxy's 502/504 (where the write may or may not have happened)."""
        body = {"detection_id": detection_id, "label": label, **({"note": note} if note else {})}
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        for attempt in range(FEEDBACK_RETRIES + 1):
            if attempt:
                time.sleep(0.2 * 2 ** (attempt - 1))
            try:
                r = self.http.post("/v1/feedback", json=body, headers=headers)
            except httpx.TransportError:
                if attempt == FEEDBACK_RETRIES:
                    raise
                continue
            if r.status_code not in (502, 504) or attempt == FEEDBACK_RETRIES:
                return self._check(r)

    def ready(self) -> bool:
        return self.http.get("/health").status_code == 200

    def live(self) -> bool:
        return self.http.get("/livez").status_code == 200

    def metrics(self) -> str:
        r = self.http.get("/metrics")
        r.raise_for_status()
        return r.text
