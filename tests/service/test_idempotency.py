"""What counts as an Idempotency-Key: 1 to 255 visible ASCII characters, taken as sent."""

from __future__ import annotations

import re
import uuid

import pytest

from service.idempotency import MAX_LENGTH, PATTERN, check_key


@pytest.mark.parametrize("key", [str(uuid.uuid4()), '"8e03978e-40d5-43e8-bc93-6894a57f9324"', "a", "~" * MAX_LENGTH])
def test_valid_keys_are_taken_as_sent(key):
    assert check_key(key) == key and re.match(PATTERN, key)  # the schema's pattern says the same


@pytest.mark.parametrize("key", ["", "x" * (MAX_LENGTH + 1), "has space", "tab\there", "é-accent"])
def test_other_keys_are_refused_with_what_a_key_looks_like(key):
    with pytest.raises(ValueError, match="Idempotency-Key must be 1 to 255 visible ASCII characters"):
        check_key(key)


def test_no_header_is_no_key():
    assert check_key(None) is None
