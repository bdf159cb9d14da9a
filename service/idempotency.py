"""The Idempotency-Key request header (IETF draft-ietf-httpapi-idempotency-key-header) on the label writes.

    POST /v1/feedback                 Idempotency-Key: 8e03978e-40d5-43e8-bc93-6894a57f9324
    POST /moderate/api/label          (the moderator page sends one per click)

Why: the Ingress's retry middleware replays a POST on another replica when the first one died under it,
and the dead one may already have committed the label. With a key, the replay finds the stored row and
answers it (same status, same id, `Idempotent-Replayed: true`) instead of storing a second one. A key is
the caller's own: it is stored with the label under a unique index on (given_by, key), so two callers can
use the same string and two replicas racing on one key cannot both insert (service/records_feedback.py).
The value is compared as sent, so the draft's quoted form ("...") and a bare token both work.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
# Visible ASCII, no spaces: what survives every proxy unchanged (HTTP trims spaces at either end).
PATTERN = r"^[!-~]+$"
_VALID = re.compile(PATTERN)
REPLAYED = "Idempotent-Replayed"  # the answer's header when it repeats a stored result (as Stripe names it)


class KeyReused(Exception):
    """The key was used before, by this caller, for another request; the message says what differs.

    Answered 409, where the draft suggests 422: here 422 means the request itself is invalid, which a
    client can fix by reading the schema, while this refusal depends on what the server stored before
    (as a 409 does); the contract test (schemathesis) holds every 422 to the first meaning."""


def check_key(value: str | None) -> str | None:
    """The key, or None when none was sent; ValueError with what a valid key looks like otherwise."""
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_LENGTH or not _VALID.match(value):
        raise ValueError(
            f"{HEADER} must be 1 to {MAX_LENGTH} visible ASCII characters without spaces (a uuid4 is a good one); "
            f"got {len(value)} characters"
        )
    return value


# The route's parameter: declared in the OpenAPI document with the limits check_key enforces, and checked by
# check_key in the route so a bad key gets that sentence rather than a pydantic pattern message.
IdempotencyKey = Annotated[
    str,  # optional (the route's default is None); typed str so the schema says string, not string-or-null
    Header(
        alias=HEADER,
        description=(
            "a key the caller makes per logical write (a uuid4) and sends again on its retries: a repeat with "
            "the same key and body returns the stored result and stores nothing; the same key with another "
            "body is refused (409). Scoped to the caller (API key, or client address where keys are optional)"
        ),
        json_schema_extra={"minLength": 1, "maxLength": MAX_LENGTH, "pattern": PATTERN},
    ),
]
