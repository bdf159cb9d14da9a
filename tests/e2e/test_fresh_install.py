"""The README's first command on a fresh install: `pip install .` with the declared dependencies only, then
`aidetect up` trains a short model on a small manifest, serves it, and a real image gets a verdict.

The venv comes from aidetect/testing/fresh_install.py (kept between runs while no dependency changes). Every
command here runs the venv's own `aidetect`, outside the repository, so nothing of the development venv
can make it pass.
"""

from __future__ import annotations

import csv
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from aidetect.testing import fresh_install, servers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("coco-imagenet-sd", "faces", "playground")
PER_GROUP = 4  # images per source, label and split: enough for calibration and thresholds to be defined


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> Path:
    log = tmp_path_factory.mktemp("install") / "pip.log"
    t0 = time.monotonic()
    root = fresh_install.venv(REPO, log=log)
    print(f"fresh install ready in {time.monotonic() - t0:.0f} s: {root}")
    return root


def small_manifest(manifest: Path, dest: Path) -> tuple[Path, Path]:
    """A few images per source/label/split of the shared data, with absolute paths; and one val image."""
    rows, counts = [], {}
    with open(manifest, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["source"], row["label"], row["split"])
            if row["source"] in SOURCES and counts.get(key, 0) < PER_GROUP:
                counts[key] = counts.get(key, 0) + 1
                rows.append({**row, "path": str((manifest.parent / row["path"]).resolve())})
    with open(dest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    image = next(Path(r["path"]) for r in rows if r["split"] == "val" and r["label"] == "ai")
    return dest, image


def run_cli(venv: Path, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "aidetect"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_the_install_is_the_wheel_not_the_repository(base_venv, tmp_path):
    code = "import aidetect, model.train, configs; print(aidetect.__file__); print(model.train.RECIPE.is_file())"
    r = subprocess.run([base_venv / "bin" / "python", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    where, recipe_found = r.stdout.split()
    assert Path(where).is_relative_to(base_venv) and recipe_found == "True"


def test_up_trains_and_serves_from_the_base_install(base_venv, manifest, tmp_path):
    small, image = small_manifest(manifest, tmp_path / "manifest.csv")
    port = servers.free_port()
    env = {"AIDETECT_HOME": str(tmp_path / "home"), "AIDETECT_MANIFEST": str(small), "AIDETECT_PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "up.log"
    t0 = time.monotonic()
    # --epochs/--per-group are `aidetect up`'s short-training override; the recipe is otherwise the default.
    args = [str(base_venv / "bin" / "aidetect"), "up", "--epochs", "1", "--per-group", str(PER_GROUP)]
    proc = servers.start_ready(args, f"{url}/health", env=env, log=log, timeout=900)
    try:
        print(f"aidetect up: /health 200 after {time.monotonic() - t0:.0f} s")
        r = httpx.post(
            f"{url}/v1/detect", content=image.read_bytes(), headers={"Content-Type": "image/jpeg"}, timeout=60
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["verdict"] in {"real", "ai_generated", "uncertain"} and 0 <= body["score"] <= 1
        assert body["model"]["version"] == "1"
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200  # the part that once was missing
    finally:
        servers.stop(proc)
    assert "training on" in log.read_text()


@pytest.mark.parametrize(("args", "extra"), [(("qwen", "train"), "qwen"), (("infra", "plan"), "infra")])
def test_a_group_without_its_extra_names_the_pip_command(base_venv, tmp_path, args, extra):
    r = run_cli(base_venv, *args, cwd=tmp_path)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("aidetect: error:") and f"pip install 'aidetect[{extra}]'" in lines[0]


def test_help_and_base_groups_run_on_the_base_install(base_venv, tmp_path):
    assert run_cli(base_venv, "--help", cwd=tmp_path).returncode == 0
    assert run_cli(base_venv, "qwen", "--help", cwd=tmp_path).returncode == 0  # help works without the extra
    r = run_cli(base_venv, "keys", "list", cwd=tmp_path, env={"AIDETECT_HOME": str(tmp_path / "home")})
    assert r.returncode == 0, r.stderr
    assert run_cli(base_venv, "ci", "--help", cwd=tmp_path).returncode == 0
