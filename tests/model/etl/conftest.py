"""Fixtures for the ETL tests: real images, the loopback social fake, stores on SQLite, PostgreSQL and S3 (moto)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from aidetect.settings import get_settings
from aidetect.testing.fakeapi import FakeSocial
from aidetect.testing.pictures import noise
from model.etl.store import Store
from model.manifest import ManifestError, read_manifest, subsample


def _manifest() -> Path:
    return Path(os.environ.get("AIDETECT_MANIFEST") or get_settings().manifest)


@pytest.fixture(scope="session")
def sample_paths() -> list[Path]:
    """About three dozen real images from ../shared/data: a few per (source, label, split)."""
    try:
        samples = read_manifest(_manifest())
    except ManifestError as e:
        pytest.skip(f"shared data set not available: {e}")
    picked = subsample(samples, per_group=3, seed=0)
    return [s.path for s in picked]


@pytest.fixture(scope="session")
def media_blobs(sample_paths) -> list[bytes]:
    return [p.read_bytes() for p in sample_paths[:30]]


@pytest.fixture
def fake(media_blobs):
    with FakeSocial(media_blobs, page_size=5) as server:
        yield server


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store.open(f"sqlite:///{tmp_path / 'etl.db'}", str(tmp_path / "objects"))
    yield s
    s.close()


# --- PostgreSQL: one throwaway cluster per session, one fresh database per test ---


@pytest.fixture
def pg_url(postgres) -> str:
    import uuid

    return postgres.create_database(f"t_{uuid.uuid4().hex[:16]}")  # fresh and empty, whatever the test


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request, tmp_path) -> Store:
    """The same tests against the embedded default and a real PostgreSQL server."""
    url = f"sqlite:///{tmp_path / 'etl.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store.open(url, str(tmp_path / "objects"))
    yield s
    s.close()


# --- S3: moto's server mode on a loopback port (s3_endpoint, tests/conftest.py) ---


@pytest.fixture
def s3_client(s3_endpoint, s3_credentials, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


# --- bad media, built here ---


def jpeg(color=(10, 200, 30), size=(64, 48), quality=90) -> bytes:
    """A distinct picture per `color`: blocky noise seeded by it (flat images would share a perceptual hash)."""
    return noise(list(color), size, quality=quality, block=8)


@pytest.fixture(scope="session")
def make_jpeg():
    return jpeg


@pytest.fixture(scope="session")
def bad_media() -> dict[str, bytes]:
    good = jpeg()
    bomb = io.BytesIO()
    Image.new("1", (12000, 12000)).save(bomb, "PNG")  # 144 MP in a few KB
    return {
        "not_an_image": b"<html><body>Just a moment...</body></html>",
        "truncated": good[: len(good) // 2],
        "bomb": bomb.getvalue(),
    }
