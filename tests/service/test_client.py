"""service.client's feedback: one Idempotency-Key per label, the same on each of its retries (what makes a
retry of a label that did land harmless), and no retry where the server answered."""

from __future__ import annotations

import httpx
import pytest

from service.client import FEEDBACK_RETRIES, ClientError, DetectorClient


def recording(answers: list):
    """A transport that answers from `answers` in turn (a status, or an exception to raise) and keeps the
    Idempotency-Key of each request it was sent."""
    keys: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("idempotency-key"))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={"id": 7} if answer == 201 else {"detail": "from the test"})

    return httpx.MockTransport(handle), keys


def test_retries_after_a_broken_connection_or_a_502_reuse_the_key():
    transport, keys = recording([httpx.RemoteProtocolError("peer closed"), 502, 201])
    with DetectorClient("http://detector", transport=transport) as c:
        assert c.feedback("d1", "ai") == {"id": 7}
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0]


def test_each_label_gets_its_own_key_unless_given():
    transport, keys = recording([201, 201, 201])
    with DetectorClient("http://detector", transport=transport) as c:
        c.feedback("d1", "ai")
        c.feedback("d1", "ai")
        c.feedback("d1", "ai", idempotency_key="mine")
    assert keys[0] != keys[1] and keys[2] == "mine"


def test_an_answer_from_the_service_is_not_retried_and_retries_are_bounded():
    transport, keys = recording([409])
    with DetectorClient("http://detector", transport=transport) as c, pytest.raises(ClientError) as e:
        c.feedback("d1", "ai")
    assert e.value.status == 409 and len(keys) == 1
    transport, keys = recording([502] * (FEEDBACK_RETRIES + 1))
    with DetectorClient("http://detector", transport=transport) as c, pytest.raises(ClientError) as e:
        c.feedback("d1", "ai")
    assert e.value.status == 502 and len(keys) == FEEDBACK_RETRIES + 1
