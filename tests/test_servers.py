"""aidetect.testing.servers.start_ready: a real process that becomes ready, and one that never does."""

import sys

import httpx
import pytest

from aidetect.testing import servers


def test_a_server_that_answers_is_returned_running_and_stops(tmp_path):
    port = servers.free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    proc = servers.start_ready(cmd, f"http://127.0.0.1:{port}/", log=tmp_path / "http.log", timeout=30)
    try:
        assert proc.poll() is None and httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    finally:
        servers.stop(proc)
    assert proc.poll() is not None


def test_a_process_that_dies_is_reported_with_its_log(tmp_path):
    log = tmp_path / "boom.log"
    cmd = [sys.executable, "-c", "import sys; print('cannot bind: port taken'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match="did not start") as e:
        servers.start_ready(cmd, f"http://127.0.0.1:{servers.free_port()}/", log=log, timeout=30)
    assert "exited with 3" in str(e.value) and "cannot bind: port taken" in str(e.value)
