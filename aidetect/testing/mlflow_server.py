"""A real MLflow tracking server for tests: PostgreSQL backend, S3 artifacts on a local moto server.

    from aidetect.testing.mlflow_server import start_moto, start_mlflow
    s3 = start_moto()                                  # moto_server on 127.0.0.1:<free port>
    s3.create_bucket("mlflow")
    ml = start_mlflow(pg.create_database("mlflow"), "s3://mlflow/artifacts", s3)
    ml.url                                             # http://127.0.0.1:<port>; set MLFLOW_TRACKING_URI to it
    ml.stop(); s3.stop()

The deployment has the same shape with MinIO instead of moto (gitops/infrastructure/mlflow). Clients never
touch S3 here: the server proxies artifacts (--serve-artifacts), so only the server gets S3 credentials.
Everything binds 127.0.0.1; processes run in their own session and stop with their children.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from aidetect.testing import servers

# moto accepts any credentials; these only have to be present and must never be real.
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path | None = None
    env: dict = field(default_factory=dict)

    def stop(self, timeout: float = 5.0) -> None:
        # Nothing here needs a graceful shutdown; a stuck worker should not hold up a test session.
        servers.stop(self.proc, timeout)

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log and self.log.exists() else ""


class S3Server(Server):
    def create_bucket(self, bucket: str) -> None:
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.url, **_boto_kwargs())
        if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=bucket)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.url, **_boto_kwargs())
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _boto_kwargs() -> dict:
    return {
        "aws_access_key_id": FAKE_AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        "region_name": FAKE_AWS["AWS_DEFAULT_REGION"],
    }


def _bin(name: str) -> str:
    # The venv's console scripts sit beside its interpreter, whatever PATH says.
    return str(Path(sys.executable).with_name(name))


def start_moto(log: Path | None = None, timeout: float = 60.0) -> S3Server:
    """moto's S3 in server mode on a free loopback port."""
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    proc = servers.start_ready(cmd, f"{url}/moto-api/", env=FAKE_AWS, log=log, timeout=timeout)
    return S3Server(url, proc, log)


def psycopg2_url(url: str) -> str:
    """postgresql:// -> postgresql+psycopg2:// (SQLAlchemy 2.1 would otherwise want psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def start_mlflow(
    backend_uri: str, artifacts_destination: str, s3: S3Server, log: Path | None = None, timeout: float = 120.0
) -> Server:
    """`mlflow server` with a database backend and proxied S3 artifacts, on a free loopback port."""
    port = servers.free_port()
    env = {**FAKE_AWS, "MLFLOW_S3_ENDPOINT_URL": s3.url}
    cmd = [
        _bin("mlflow"), "server",
        "--backend-store-uri", psycopg2_url(backend_uri),
        "--artifacts-destination", artifacts_destination,
        "--serve-artifacts",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    proc = servers.start_ready(cmd, f"{url}/health", env=env, log=log, timeout=timeout)
    return Server(url, proc, log, env)
