"""`aidetect up` on an empty home: trains, evaluates, registers, promotes, then serves; a second
`up` on the same home serves at once without training again."""

import httpx
import pytest

from aidetect.testing import servers

pytestmark = pytest.mark.slow


def start_up(home, manifest, port, log):
    args = servers.aidetect_cmd("up", "--home", str(home), "--manifest", str(manifest), "--port", str(port))
    return servers.start([*args, "--per-group", "4", "--epochs", "1"], log=log)


def test_up_trains_once_then_serves(tmp_path, manifest):
    home = tmp_path / "home"
    image = next((manifest.parent / "images" / "coco-imagenet-sd" / "ai").glob("*.jpg")).read_bytes()
    versions = []
    for attempt in range(2):
        port = servers.free_port()
        log = tmp_path / f"up{attempt}.log"
        proc = start_up(home, manifest, port, log)
        try:
            servers.wait_http(f"http://127.0.0.1:{port}/health", timeout=600, proc=proc)
            r = httpx.post(f"http://127.0.0.1:{port}/v1/detect", content=image, timeout=60)
            assert r.status_code == 200, r.text
            versions.append(r.json()["model"]["version"])
        finally:
            servers.stop(proc)
        text = log.read_text()
        if attempt == 0:
            assert "training on" in text and "promoted now" in text
        else:
            assert "training on" not in text  # production exists: no second training
    assert versions == ["1", "1"]
