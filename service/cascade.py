"""Cascade client: the fast model answers confident cases, the Qwen server the uncertain band.

    second = SecondStage("http://127.0.0.1:8001", timeout=10)
    fast = ...                                      # the fast detector's service.detection.Detection
    qwen = second.score(image_bytes) if needs_second_stage(fast) else None
    answer = combine(fast, qwen)                    # the same detection, stage "fast" | "qwen"

The second stage may be absent (no GPU lease, scaled to zero, slow): SecondStage then returns None
within its timeout, and after a failure it stops trying for `cooldown` seconds so no request waits
on a server known to be down. combine() then keeps the fast verdict ("uncertain"), marks the
response for the review queue, and says stage "fast". Nothing here raises on a network problem.
"""

from __future__ import annotations

import base64
import logging
import threading
import time

import httpx

from service.detection import PRIVATE, VERDICTS, Detection, FastOpinion

log = logging.getLogger(__name__)

UNCERTAIN = "uncertain"
PATH = "/v1/qwen"


def needs_second_stage(fast: Detection) -> bool:
    """Only the uncertain band goes to the second stage."""
    return fast.verdict == UNCERTAIN


def parse_second(body) -> dict | None:
    """The fields the cascade uses from a Qwen server reply, or None if the reply is not one."""
    if not isinstance(body, dict):
        return None
    score, verdict = body.get("score"), body.get("verdict")
    if not isinstance(score, int | float) or not 0 <= score <= 1 or verdict not in VERDICTS:
        return None
    out = {"score": float(score), "verdict": verdict, "explanation": body.get("explanation")}
    if isinstance(body.get("model"), dict):
        out["model"] = body["model"]
    return out


class SecondStage:
    """HTTP client for the Qwen LitServe server; returns None whenever the stage is unavailable."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        explain: bool = True,
        cooldown: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = base_url.rstrip("/") + PATH
        self.explain = explain
        self.cooldown = cooldown
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)), transport=transport)
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _mark_down(self, why: str) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.cooldown
            self.last_error = why
        log.warning("Qwen stage unavailable (%s); fast verdicts only for %.0f s", why, self.cooldown)

    def score(self, image: bytes, explain: bool | None = None) -> dict | None:
        """{score, verdict, explanation} from the Qwen server, or None (down, timed out, 5xx, bad reply)."""
        if not self.available():
            return None
        payload = {
            "image_b64": base64.b64encode(image).decode(),
            "explain": self.explain if explain is None else explain,
        }
        try:
            r = self._client.post(self.url, json=payload)
        except httpx.TimeoutException:
            self._mark_down("timed out")
            return None
        except httpx.HTTPError as e:  # connect refused, DNS, protocol errors
            self._mark_down(type(e).__name__)
            return None
        if r.status_code >= 500:
            self._mark_down(f"HTTP {r.status_code}")
            return None
        if r.status_code != 200:
            # 4xx: this image, not the server; the fast verdict stands, the stage stays up
            self.last_error = f"HTTP {r.status_code}"
            return None
        try:
            return parse_second(r.json())
        except ValueError:
            self._mark_down("reply is not JSON")
            return None

    __call__ = score

    def close(self) -> None:
        self._client.close()


def combine(fast: Detection, second: dict | None) -> Detection:
    """The cascade's answer: the Qwen verdict when the second stage ran, else the fast one."""
    if second is None:
        # uncertain and no second opinion: the image waits in the review queue
        return fast.model_copy(update={"stage": "fast", "review": True} if needs_second_stage(fast) else {})
    update = {
        "stage": "qwen",
        "score": second["score"],
        "verdict": second["verdict"],
        "fast": FastOpinion(score=fast.score, verdict=fast.verdict),
    }
    if second.get("explanation") is not None:
        update["explanation"] = second["explanation"]
    if second.get("model"):
        update["second_model"] = second["model"]
    if second["verdict"] == UNCERTAIN:  # inside the Qwen stage's own band too: a moderator decides
        update["review"] = True
    fields = fast.model_dump(exclude_unset=True, exclude={"review"})
    return Detection.model_validate({**fields, **update, **{k: getattr(fast, k) for k in PRIVATE}})
