"""The `aidetect` command line as a user meets it: help, one-line errors, exit codes."""

import subprocess

import pytest

from aidetect.testing.servers import aidetect_cmd

COMMANDS = ["up", "train", "evaluate", "serve"]


def run(*args, env=None, timeout=120):
    import os

    return subprocess.run(
        aidetect_cmd(*args), capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    for c in COMMANDS:
        assert c in r.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_command_explains_itself(cmd):
    r = run(cmd, "--help")
    assert r.returncode == 0 and len(r.stdout) > 200 and "--" in r.stdout


@pytest.mark.slow
def test_missing_manifest_is_one_line_exit_2(tmp_path):
    r = run("train", "--manifest", str(tmp_path / "none.csv"), "--home", str(tmp_path))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("aidetect: error: manifest not found") and "Traceback" not in r.stderr


@pytest.mark.slow
def test_serve_without_a_model_is_one_line(tmp_path):
    r = run("serve", "--home", str(tmp_path), "--port", "1")
    assert r.returncode == 2
    assert "aidetect: error:" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_unreachable_registry_is_one_line(tmp_path):
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}
    r = run("serve", "--tracking-uri", "http://127.0.0.1:9", "--port", "1", env=env)
    assert r.returncode == 2
    assert "aidetect: error:" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_train_and_evaluate_from_the_cli(tmp_path, manifest):
    home = str(tmp_path / "home")
    r = run("train", "--home", home, "--per-group", "4", "--epochs", "1", "--manifest", str(manifest), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"model": "models:/aidetect/1"' in r.stdout
    r = run("evaluate", "--home", home, "--per-group", "3", "--out", str(tmp_path / "ev"), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "production = version 1 (promoted now)" in r.stdout
    assert (tmp_path / "ev" / "roc.png").stat().st_size > 1000
    assert (tmp_path / "ev" / "reliability.png").is_file()
