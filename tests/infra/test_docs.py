"""docs/deploy-chameleon.md cannot rot: its `aidetect infra` commands and the files it names exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra import cli

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "deploy-chameleon.md"
GENERATED = {"infra/terraform/terraform.tfvars.json", "infra/terraform/.terraform.lock.hcl"}


def code_lines() -> list[str]:
    blocks = re.findall(r"```(?:bash|python)?\n(.*?)```", DOC.read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines()]


def infra_commands() -> list[list[str]]:
    commands = []
    for line in code_lines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("aidetect infra"):
            commands.append(shlex.split(line)[2:])
    return commands


def test_the_doc_walks_through_every_step():
    verbs = {" ".join(c[:2]) if c[0] == "gpu" else c[0] for c in infra_commands()}
    assert {"plan", "apply", "inventory", "gpu up", "gpu down", "destroy"} <= verbs
    text = DOC.read_text()
    assert "ansible-playbook -i ansible/inventory/generated.yml ansible/site.yml" in text
    assert "argocd" in text


@pytest.mark.parametrize("argv", infra_commands(), ids=lambda a: " ".join(a))
def test_each_documented_command_exists_with_its_options(argv):
    options = [a for a in argv if a.startswith("-")]
    words = [a for a in argv if not a.startswith("-") and not re.fullmatch(r"[\d.]+", a)]
    result = CliRunner().invoke(cli.app, [*words, "--help"])
    assert result.exit_code == 0, result.output
    for option in options:
        assert option in result.output, f"{option} is not an option of `aidetect infra {' '.join(words)}`"


def test_files_the_doc_names_exist():
    named = set(re.findall(r"`((?:infra|tests/infra|scripts|ansible)/[\w./-]+)`", DOC.read_text()))
    named -= GENERATED
    named = {n for n in named if "group_vars" not in n and "generated.yml" not in n}  # the user's / generated
    assert named, "the doc names no files"
    missing = sorted(n for n in named if not (REPO / n.rstrip("/")).exists())
    assert not missing, missing
