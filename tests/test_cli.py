"""The `aidetect` command line as a user meets it: help, one-line errors, exit codes."""

import socket
import subprocess

import pytest

from aidetect.testing.servers import aidetect_cmd, free_port

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
    # In-process: the console script itself is run above; a process per command only cost the inner loop.
    from typer.testing import CliRunner

    from aidetect.cli import app

    r = CliRunner().invoke(app, [cmd, "--help"])
    assert r.exit_code == 0 and len(r.stdout) > 200 and "--" in r.stdout


@pytest.mark.slow
def test_missing_manifest_is_one_line_exit_2(tmp_path):
    r = run("train", "--manifest", str(tmp_path / "none.csv"), "--home", str(tmp_path))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("aidetect: error: manifest not found") and "Traceback" not in r.stderr


@pytest.mark.slow
def test_serve_without_a_model_is_one_line(tmp_path):
    r = run("serve", "--home", str(tmp_path), "--port", str(free_port()))
    assert r.returncode == 2
    assert "aidetect: error:" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("cmd", ["up", "serve"])
def test_a_port_in_use_is_one_line_before_anything_is_trained_or_loaded(tmp_path, cmd):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run(cmd, "--home", str(tmp_path), "--port", str(port))
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.splitlines()[-1].startswith(f"aidetect: error: cannot listen on 127.0.0.1:{port}")
    assert "training" not in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing was started: not even the registry


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [["serve", "--port", "FREE"], ["evaluate"], ["models", "export", "1"]])
def test_unreachable_registry_is_one_line_at_once(tmp_path, cmd):
    # MLflow's own defaults, as a user has them: its client alone retried for minutes before failing.
    env = {"AIDETECT_HOME": str(tmp_path), "AIDETECT_TRACKING_URI": "http://127.0.0.1:9"}
    cmd = [str(free_port()) if a == "FREE" else a for a in cmd]  # picked now: a port picked at collection may be taken
    r = run(*cmd, env=env, timeout=60)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [
        "aidetect: error: MLflow at http://127.0.0.1:9 is unreachable ([Errno 111] Connection refused): start it, "
        "or set AIDETECT_TRACKING_URI (--tracking-uri) to one that runs"
    ]


@pytest.mark.slow
def test_train_and_evaluate_from_the_cli(tmp_path, manifest):
    home = str(tmp_path / "home")
    r = run("train", "--home", home, "--per-group", "4", "--epochs", "1", "--manifest", str(manifest),
            "--target-fnr", "0.05", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"model": "models:/aidetect/1"' in r.stdout
    r = run("evaluate", "--home", home, "--per-group", "3", "--out", str(tmp_path / "ev"), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "production = version 1 (promoted now)" in r.stdout
    assert (tmp_path / "ev" / "roc.png").stat().st_size > 1000
    assert (tmp_path / "ev" / "reliability.png").is_file()
    # The band was fitted at the targets given to train; evaluate sets them among the others.
    assert "1% / 5% (trained)" in r.stdout and (tmp_path / "ev" / "operating_points.png").is_file()


# --- one error handler at the root (aidetect/cli.py): a user error in any group is one line, a bug a traceback ---

USER_ERRORS = [
    (["data", "import", "--format", "imagenet", "x"], "unknown format 'imagenet'"),
    (["ingest", "--source", "mastodon", "--tag", "x", "--every", "soon"], "cannot read duration 'soon'"),
    (["ci", "should-retrain", "--signals", "{tmp}/none.json", "--no-store"], "signals file"),
    (["infra", "plan", "--site", "{tmp}/no-site.yaml"], "no site file at"),
    (["keys", "revoke", "nope"], "no API key with id nope"),
    (["records", "migrate", "--store-url", "postgresql://nobody@127.0.0.1:1/none"], "Connection refused"),
    (["prompts", "show", "--path", "{tmp}/no-bank.json"], "prompt bank not found"),
]


@pytest.mark.parametrize(("args", "words"), USER_ERRORS, ids=[a[0] for a, _ in USER_ERRORS])
def test_a_user_error_in_any_group_is_one_line_on_stderr(tmp_path, args, words):
    from typer.testing import CliRunner

    from aidetect.cli import app

    env = {"AIDETECT_HOME": str(tmp_path), "AIDETECT_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    result = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in args], env=env)
    assert result.exit_code == 2, (result.output, result.exception)
    line = result.stderr.strip().splitlines()[-1]  # MLflow may log its own lines first
    assert line.startswith("aidetect: error: ") and words in line
    assert "Traceback" not in result.stderr and isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"AIDETECT_MAX_BYTES": "-5"}, "AIDETECT_MAX_BYTES: Input should be greater than or equal to 1 (got '-5')"),
        ({"AIDETECT_PORT": "http"}, "AIDETECT_PORT: Input should be a valid integer"),
        ({"AIDETECT_UPLOAD_IDLE_TIMEOUT": "-1", "AIDETECT_MAX_BATCH_SIZE": "0"}, "AIDETECT_MAX_BATCH_SIZE: "),
    ],
)
def test_a_bad_setting_is_refused_in_one_line_that_names_its_variable(tmp_path, env, words):
    """pydantic's own report is a block of four lines or more per field, and a negative limit used to start a
    server that refused every upload."""
    from typer.testing import CliRunner

    from aidetect.cli import app

    result = CliRunner().invoke(app, ["serve"], env={"AIDETECT_HOME": str(tmp_path), **env})
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aidetect: error: invalid Settings: ") and words in lines[0]
    assert len(lines[0].split("; ")) == len(env)  # every bad variable, in that one line


def test_every_declared_user_error_is_an_exception():
    """USER_ERRORS names classes, so a rename must not leave a name that matches nothing."""
    import importlib

    from aidetect.cli import USER_ERRORS as NAMES

    for name in NAMES:
        module, _, cls = name.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), cls), Exception), name


def test_a_bug_is_not_dressed_as_a_user_error(monkeypatch):
    from typer.testing import CliRunner

    from aidetect import cli_prompts
    from aidetect.cli import app

    def broken(path):
        raise KeyError("version")

    monkeypatch.setattr(cli_prompts, "load_bank", broken)
    result = CliRunner().invoke(app, ["prompts", "show"])
    assert isinstance(result.exception, KeyError) and "aidetect: error" not in result.stderr


def test_the_console_command_prints_one_line_for_a_user_error_and_a_traceback_for_a_bug(tmp_path):
    """As a user's shell sees it: the real entry point, in its own process."""
    import sys

    script = (
        "import sys; from aidetect import cli_prompts, cli; "
        "cli_prompts.load_bank = (lambda p: {}['version']) if sys.argv[1] == 'bug' else cli_prompts.load_bank; "
        "sys.argv = ['aidetect', 'prompts', 'show', '--path', sys.argv[2]]; cli.main()"
    )
    missing = str(tmp_path / "no-bank.json")
    user = subprocess.run([sys.executable, "-c", script, "user", missing], capture_output=True, text=True, timeout=120)
    assert user.returncode == 2 and user.stderr == f"aidetect: error: prompt bank not found: {missing}\n"
    bug = subprocess.run([sys.executable, "-c", script, "bug", missing], capture_output=True, text=True, timeout=120)
    assert bug.returncode == 1 and "Traceback" in bug.stderr and bug.stderr.rstrip().endswith("KeyError: 'version'")
