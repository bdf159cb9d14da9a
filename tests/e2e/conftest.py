"""The deployed shape of the service for end-to-end tests: `aidetect serve` as a real process with its
records in a real PostgreSQL cluster, API keys required, reached over loopback only.

`secure_server` reuses the session's tiny model (its MLflow store) and gets a home of its own, so its
outbox, metrics and session key never mix with `detector_server`'s.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aidetect.testing import servers

# Short enough for a test to wait out, long enough that a loaded CI machine never stalls a real upload so long.
UPLOAD_IDLE_S = 5


@dataclass
class Service:
    env: dict
    log: Path
    url: str = ""
    proc: subprocess.Popen | None = None
    pg: object = None
    keys: dict = field(default_factory=dict)

    def start(self, timeout: float = 240) -> None:
        cmd = servers.aidetect_cmd("serve")
        self.proc = servers.start_ready(cmd, f"{self.url}/health", env=self.env, log=self.log, timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None:
            servers.stop(self.proc)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        import os

        return subprocess.run(
            servers.aidetect_cmd(*args), env={**os.environ, **self.env}, input=stdin, capture_output=True,
            text=True, timeout=120,
        )

    def new_key(self, name: str, rate: int | None = None) -> dict:
        res = self.cli("keys", "create", name, *(["--rate-limit", str(rate)] if rate else []))
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def pg_ctl(self, action: str) -> None:
        pg_ctl(self.pg, action)

    def records(self):
        from service.records import Records

        return Records.open(url=self.env["AIDETECT_STORE_URL"], objects=self.env["AIDETECT_OBJECT_STORE"])


def pg_ctl(pg, action: str) -> None:
    """Stop or start the test cluster in place (its data kept), as the user that owns it."""
    cmd = [str(pg.bin_dir / "pg_ctl"), "-D", str(pg.root / "data"), "-w"]
    if action == "stop":
        cmd += ["-m", "fast", "stop"]
    else:
        opts = f"-p {pg.port} -k {pg.root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        cmd += ["-o", opts, "-l", str(pg.root / "log"), "start"]
    if pg.as_user:
        cmd = ["runuser", "-u", pg.as_user, "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def secure_server(tiny_model, tmp_path_factory):
    """Yields a Service: records in PostgreSQL, keys required, at most 4 images a batch."""
    from aidetect.testing.postgres import PostgresUnavailable, start_postgres

    settings, _, _ = tiny_model
    try:
        pg = start_postgres()
    except PostgresUnavailable as e:
        pytest.fail(f"{e}")
    home = tmp_path_factory.mktemp("secure-home")
    port = servers.free_port()
    env = {
        "AIDETECT_HOME": str(home),
        "AIDETECT_TRACKING_URI": settings.resolved_tracking_uri,
        "AIDETECT_MANIFEST": str(settings.manifest),
        "AIDETECT_PORT": str(port),
        "AIDETECT_STORE_URL": pg.create_database("aidetect"),
        "AIDETECT_OBJECT_STORE": str(home / "objects"),
        "AIDETECT_AUTH_REQUIRED": "true",
        "AIDETECT_MAX_IMAGES_PER_REQUEST": "4",
        "AIDETECT_MAX_BYTES": str(2 * 2**20),
        "AIDETECT_MAX_PIXELS": str(4_000_000),
        "AIDETECT_CORS_ORIGINS": '["https://moderate.example"]',
        "AIDETECT_UPLOAD_IDLE_TIMEOUT": str(UPLOAD_IDLE_S),
        # Two inference workers on any machine: limits and keys must hold across them (one HTTP process).
        "AIDETECT_WORKERS_PER_DEVICE": "2",
    }
    svc = Service(env=env, log=home / "serve.log", url=f"http://127.0.0.1:{port}", pg=pg)
    # As the deployment's PreSync job: a server on PostgreSQL never migrates the shared database itself.
    migrated = svc.cli("records", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    svc.keys["main"] = svc.new_key("tests", rate=100_000)
    svc.start()
    yield svc
    svc.stop()
    pg.stop()
