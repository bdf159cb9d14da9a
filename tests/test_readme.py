"""The README cannot rot: its first two commands exist and do what it says, its configuration
table is the settings object's, and its curl example runs against a real server."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from aidetect.settings import markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_first_two_commands_are_setup_and_tests():
    first = code_blocks("bash")[0].strip().splitlines()
    assert first[0].startswith("bash scripts/up.sh") and first[1].startswith("bash scripts/test.sh")
    up = (ROOT / "scripts/up.sh").read_text()
    assert "setup-python.sh" in up and "aidetect up" in up
    assert "scripts/test.sh" in (ROOT / ".ci/run").read_text()  # CI runs the README's test command
    for script in ("scripts/up.sh", "scripts/test.sh", "scripts/setup-python.sh", "scripts/setup-system.sh"):
        r = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_configuration_table_matches_settings():
    assert markdown_table() in README, "regenerate with: python -m aidetect.settings"


def test_readme_links_exist():
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link


@pytest.mark.slow
def test_curl_example_answers_like_the_readme(detector_server, manifest, tmp_path):
    block = next(b for b in code_blocks("bash") if "curl" in b and "/v1/detect" in b)
    image = next((manifest.parent / "images" / "faces" / "real").glob("*.jpg"))
    cmd = block.strip().replace("http://127.0.0.1:8000", detector_server).replace("photo.jpg", str(image))
    out = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    import json

    answer = json.loads(out.stdout)
    documented = json.loads(code_blocks("json")[0])
    assert set(answer) == set(documented)  # same fields as the README shows
    assert answer["verdict"] in ("real", "ai_generated", "uncertain")
