"""Keys, passwords, sessions and rate limits."""

from __future__ import annotations

from service.auth import (
    RateLimiter,
    hash_key,
    hash_password,
    key_matches,
    new_key,
    parse_key,
    read_session,
    sign_session,
    verify_password,
)


def test_keys_are_stored_as_hashes_and_parsed_strictly():
    key_id, secret = new_key()
    assert parse_key(secret) == key_id and secret.startswith(f"aid_{key_id}_")
    stored = hash_key(secret)
    assert secret not in stored and len(stored) == 64
    assert key_matches(secret, stored) and not key_matches(secret + "x", stored)
    for bad in ("", "aid_short_x", "xyz_0123456789ab_s", f"aid_{key_id}_"):
        assert parse_key(bad) is None


def test_passwords_use_salted_scrypt():
    h1, h2 = hash_password("correct horse"), hash_password("correct horse")
    assert h1 != h2 and h1.startswith("scrypt$")
    assert verify_password("correct horse", h1) and not verify_password("wrong", h1)
    assert not verify_password("x", None) and not verify_password("x", "garbage")


def test_session_tokens_are_signed_and_expire():
    secret = b"s" * 32
    tok = sign_session("alice", secret, ttl=60, now=1000)
    assert read_session(tok, secret, now=1030) == "alice"
    assert read_session(tok, secret, now=1061) is None  # expired
    assert read_session(tok, b"other" * 8, now=1030) is None  # wrong key
    body, mac = tok.rsplit(".", 1)
    forged = sign_session("mallory", b"x" * 32, now=1000).split(".")[0] + "." + mac
    assert read_session(forged, secret, now=1030) is None
    assert read_session(None, secret) is None and read_session("nodot", secret) is None


def test_rate_limiter_allows_a_minute_of_burst_then_says_when():
    t = [0.0]
    lim = RateLimiter(clock=lambda: t[0])
    assert all(lim.take("k", 6) == 0.0 for _ in range(6))
    wait = lim.take("k", 6)
    assert 9.9 < wait <= 10.0  # 6 a minute: one token every 10 s
    assert lim.take("other", 6) == 0.0  # per identity
    t[0] = 10.0
    assert lim.take("k", 6) == 0.0 and lim.take("k", 6) > 0


def test_rate_limiter_forgets_refilled_buckets_and_nothing_else():
    t = [0.0]
    lim = RateLimiter(clock=lambda: t[0])
    for i in range(1000):  # a thousand client addresses, one request each
        lim.take(f"client:{i}", 6)
    assert all(lim.take("busy", 6) == 0.0 for _ in range(6))
    assert lim.size() == 1001
    t[0] = 50.0
    assert all(lim.take("late", 6) == 0.0 for _ in range(6))  # empties its bucket
    assert lim.size() == 1002  # nothing has refilled yet: every bucket still holds state
    t[0] = 61.0
    assert lim.take("busy", 6) == 0.0  # its bucket refilled over the minute: as a new one would be
    assert lim.size() == 2  # "busy" and "late" (50 s ago, not yet full) are left
    assert lim.take("late", 6) == 0.0 and lim.take("late", 6) > 0  # 11 s refilled one token: state kept
