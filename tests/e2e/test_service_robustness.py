"""Robustness over loopback: thousands of fuzzed malformed images never get a 5xx.

The schema-versus-server check (schemathesis, every check) is tests/service/test_openapi_contract.py."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from model.preprocess import ALLOWED_FORMATS  # also registers the HEIF opener and saver with Pillow

pytestmark = pytest.mark.slow

# Over HTTP every decodable mutant costs a forward pass; the decode path alone gets many more cases.
FUZZ_CASES = int(os.environ.get("AIDETECT_FUZZ_CASES", "1000"))
DECODE_FUZZ_CASES = int(os.environ.get("AIDETECT_DECODE_FUZZ_CASES", "4000"))


def seeds() -> list[bytes]:
    """One small image per format the service reads: the starting points of every mutation."""
    img = Image.new("RGB", (64, 48))
    img.putdata([(x * 4 % 256, y * 5 % 256, (x * y) % 256) for y in range(48) for x in range(64)])
    out = []
    for fmt in ALLOWED_FORMATS:
        if fmt == "MPO":  # a camera's JPEG with more pictures: Pillow writes it only from several frames
            continue
        buf = io.BytesIO()
        img.save(buf, fmt, **({"quality": 80} if fmt == "JPEG" else {}))
        out.append(buf.getvalue())
    return out


SEEDS = seeds()

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 512)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("big_dims"), st.integers(0, 64), st.integers(0xF0, 0xFF)),
)


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op, pos, arg in ops:
        pos = pos % (len(b) + 1)
        if op == "flip" and b:
            b[pos % len(b)] ^= arg
        elif op == "insert":
            b[pos:pos] = arg
        elif op == "delete":
            del b[pos : pos + arg]
        elif op == "truncate":
            del b[pos:]
        elif op == "big_dims" and len(b) > pos + 1:  # header bytes near the start: absurd sizes
            b[pos] = arg
    return bytes(b)


def fuzz_cases(n: int) -> list[bytes]:
    cases: list[bytes] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(range(len(SEEDS))), st.lists(mutation, min_size=1, max_size=4))
    def collect(seed, ops):
        cases.append(mutate(SEEDS[seed], ops))

    collect()
    return cases


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_decoding_fuzzed_images_gives_an_image_or_a_4xx_never_an_exception():
    """The service's decode step (service.api.decode, what the worker runs) on thousands of mutants."""
    from model.preprocess import ImageError, PreprocessConfig
    from service.api import Decoded, decode

    cfg = PreprocessConfig(max_pixels=4_000_000, max_bytes=2 * 2**20)
    outcomes = {"ok": 0, "refused": 0}
    for data in fuzz_cases(DECODE_FUZZ_CASES):
        out = decode({"data": data}, cfg)  # must return, never raise
        if isinstance(out, Decoded):
            assert out.x.shape == (3, 256, 256) and out.x.dtype.name == "float32"
            outcomes["ok"] += 1
        else:
            assert isinstance(out, ImageError) and 400 <= out.status < 500 and out.message
            outcomes["refused"] += 1
    assert outcomes["ok"] > 0 and outcomes["refused"] > DECODE_FUZZ_CASES * 0.3


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fuzzed_images_never_get_a_5xx(secure_server):
    cases = fuzz_cases(FUZZ_CASES)
    assert len(cases) >= FUZZ_CASES * 0.9 and len(set(cases)) > FUZZ_CASES * 0.5
    headers = {"Authorization": f"Bearer {secure_server.keys['main']['key']}"}

    def post_all(chunk: list[bytes]) -> list[tuple[int, str]]:
        out = []
        with httpx.Client(base_url=secure_server.url, headers=headers, timeout=60) as c:  # one kept-alive connection
            for data in chunk:
                r = c.post("/v1/detect", content=data, headers={"Content-Type": "application/octet-stream"})
                out.append((r.status_code, r.text))
        return out

    with ThreadPoolExecutor(8) as pool:
        results = [r for rs in pool.map(post_all, [cases[i::8] for i in range(8)]) for r in rs]
    statuses = [s for s, _ in results]
    assert not [s for s in statuses if s >= 500], "a fuzzed image got a 5xx"
    assert set(statuses) <= {200, 400, 413, 415, 422}, set(statuses)
    for status, text in results:
        if status != 200:
            detail = httpx.Response(status, content=text).json()["detail"]
            assert isinstance(detail, str) and detail and "Traceback" not in text
    assert statuses.count(200) > 0 and len(statuses) - statuses.count(200) > FUZZ_CASES * 0.2  # both kinds exercised
    assert httpx.get(f"{secure_server.url}/health").status_code == 200  # still up
