"""A throwaway PostgreSQL cluster on a loopback port, for tests that need a real server.

    from aidetect.testing.postgres import start_postgres
    pg = start_postgres()                    # initdb + pg_ctl in a temp dir, as the postgres user when root
    url = pg.create_database("records")      # postgresql://postgres@127.0.0.1:<port>/records
    ...
    pg.stop()                                # immediate shutdown, directory removed
    with start_postgres() as pg: ...         # the same, stopped on leaving the block
    url, stop = start_postgres(tmp_path)     # or as a pair

Needs the Debian `postgresql` package (scripts/setup-system.sh installs it). PostgreSQL refuses to
run as root, so under root the cluster is created and started as `postgres` in a directory that
user can reach. Trust authentication on 127.0.0.1 only; fsync off: it is for tests, never for data.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here, or the cluster would not start; the message says which."""


def find_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable("PostgreSQL is not installed (apt-get install postgresql; see scripts/setup-system.sh)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postgres:
    root: Path
    port: int
    bin_dir: Path
    as_user: str | None

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        """Create database `name` (if absent) and return its URL."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.database_url(name)

    def __iter__(self):
        """`url, stop = start_postgres(tmp)` works too."""
        return iter((self.url, self.stop))

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        _run(
            self,
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"],
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def _run(pg: Postgres | None, cmd: list[str], as_user: str | None = None, check: bool = True, timeout: float = 60):
    user = as_user if pg is None else pg.as_user
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(cmd[-6:])} failed: {(res.stderr or res.stdout).strip()[-400:]}")
    return res


def start_postgres(tmpdir: str | Path | None = None, timeout: float = 60.0) -> Postgres:
    """Create and start a cluster; returns a handle whose `.url` reaches it and `.stop()` removes it."""
    bin_dir = find_bin_dir()
    as_user = "postgres" if os.geteuid() == 0 else None
    # pytest's tmp_path sits under 0700 directories that the postgres user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="aidetect-pg-", dir=None if as_user else tmpdir))
    os.chmod(root, 0o755)
    if as_user:
        shutil.chown(root, user=as_user)
    pg = Postgres(root=root, port=_free_port(), bin_dir=bin_dir, as_user=as_user)
    data = root / "data"
    try:
        _run(
            pg,
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        )
        opts = (
            f"-p {pg.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        for attempt in range(3):
            res = _run(
                pg,
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    opts,
                    "-l",
                    str(root / "log"),
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "start",
                ],
                check=False,
                timeout=timeout + 10,
            )
            if res.returncode == 0:
                break
            if attempt == 2:  # most likely the port was taken between choosing and binding it
                log = (root / "log").read_text(errors="replace")[-400:] if (root / "log").exists() else ""
                raise PostgresUnavailable(f"pg_ctl start failed: {res.stderr.strip()[-200:]} {log}")
            pg.port = _free_port()
            opts = opts.replace(opts.split()[1], str(pg.port), 1)
        _wait_ready(pg, timeout)
    except BaseException:
        pg.stop()
        raise
    return pg


def _wait_ready(pg: Postgres, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", pg.port)) == 0:
                return
        time.sleep(0.1)
    raise PostgresUnavailable(f"PostgreSQL did not listen on 127.0.0.1:{pg.port} within {timeout:.0f}s")
