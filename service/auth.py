"""API keys, moderator passwords, session cookies and per-key rate limits: pure functions and small classes.

    key_id, secret = new_key()              # secret "aid_<id>_<random>" shown once; only hash_key(secret) is stored
    parse_key(secret) -> key_id
    hash_password("pw") / verify_password("pw", stored)      # scrypt, stdlib
    token = sign_session("alice", secret, ttl=43200); read_session(token, secret) -> "alice"
    limiter = RateLimiter(); limiter.take("key:ab12", per_minute=600) -> 0.0 or seconds to wait
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import time

KEY_PREFIX = "aid"


def new_key() -> tuple[str, str]:
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def parse_key(secret: str) -> str | None:
    """The key id of a well-formed key, else None."""
    parts = secret.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1]


def hash_key(secret: str) -> str:
    # Keys are 256-bit random: a fast hash is enough, a slow one would only slow every request.
    return hashlib.sha256(secret.strip().encode()).hexdigest()


def key_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(secret), stored_hash)


_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${dk.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        algo, n, r, p, salt, dk = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), dk)


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def sign_session(name: str, secret: bytes, ttl: float = 12 * 3600, now: float | None = None) -> str:
    expires = int((now or time.time()) + ttl)
    body = _b64(f"{name}\n{expires}".encode())
    mac = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    return f"{body}.{mac}"


def read_session(token: str | None, secret: bytes, now: float | None = None) -> str | None:
    """The moderator name in a valid, unexpired session token, else None."""
    if not token or "." not in token:
        return None
    body, mac = token.rsplit(".", 1)
    want = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac, want):
        return None
    try:
        name, expires = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split("\n")
        if int(expires) < (now or time.time()):
            return None
    except (ValueError, UnicodeDecodeError):
        return None
    return name


REFILL_S = 60.0  # any bucket is full again this long after its last take


class RateLimiter:
    """Token buckets per identity: `per_minute` tokens a minute, bursts up to a minute's worth.

    A bucket untouched for a minute has refilled completely, which is what a missing one starts as, so such
    buckets are dropped once a minute: without that, every client address ever seen (auth optional) stayed
    in memory for the life of the process."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._swept = clock()

    def size(self) -> int:
        """Buckets held (not __len__: an empty limiter must still be truthy where `x or default` picks one)."""
        return len(self._buckets)

    def take(self, who: str, per_minute: int) -> float:
        """0.0 when allowed (a token is used), else the seconds until the next token."""
        rate = per_minute / 60.0
        now = self.clock()
        with self._lock:
            if now - self._swept >= REFILL_S:
                self._swept = now
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < REFILL_S}
            tokens, last = self._buckets.get(who, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[who] = (tokens - 1.0, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1.0 - tokens) / rate if rate > 0 else math.inf
