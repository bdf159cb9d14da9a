"""Start and stop real server processes for tests and benchmarks: free ports, readiness, process groups."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None, expect: int = 200) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == expect:
                return
            last = r.status_code
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout}s (last: {last})")


def start(args: Sequence[str], env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    """Start a process in its own session so stop() can end it and every child it forks."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        list(args), env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def start_ready(
    args: Sequence[str], ready_url: str, env: dict | None = None, log: Path | None = None, timeout: float = 120.0
) -> subprocess.Popen:
    """start(), then wait until `ready_url` answers 200; a process that never gets there is stopped and the
    error carries the tail of its log."""
    proc = start(args, env=env, log=log)
    try:
        wait_http(ready_url, timeout=timeout, proc=proc)
    except Exception as e:
        stop(proc)
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        raise RuntimeError(f"{' '.join(map(str, args))[:200]} did not start ({e}):\n{tail}") from None
    return proc


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop the process's whole group (start() makes it a group leader): a leader that has already exited
    may have left children running, and they are stopped too."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:  # nobody left in the group
        proc.poll()
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    try:  # whatever outlived the leader's own shutdown
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(5)


def aidetect_cmd(*args: str) -> list[str]:
    """The CLI of the interpreter running the tests, without relying on PATH."""
    return [sys.executable, "-m", "aidetect", *args]
