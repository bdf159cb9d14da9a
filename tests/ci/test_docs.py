"""docs/retrain.md names every AIDETECT_CI_* setting and only `aidetect ci` commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from aidetect.cli import app
from ci.config import CIConfig

DOC = (Path(__file__).resolve().parents[2] / "docs" / "retrain.md").read_text()


def test_every_setting_is_documented_and_every_documented_one_exists():
    fields = {f"AIDETECT_CI_{name.upper()}" for name in CIConfig.model_fields}
    documented = set(re.findall(r"AIDETECT_CI_[A-Z0-9_]*[A-Z0-9]", DOC))
    # `_SPLIT`-style shorthands in the table are written out in full elsewhere.
    assert fields <= documented, fields - documented
    assert documented <= fields, documented - fields


def test_documented_commands_exist_with_their_options():
    for line in re.findall(r"^aidetect ci [^#\n&]+", DOC, flags=re.M):
        words = line.split()
        command = words[2]
        result = CliRunner().invoke(app, ["ci", command, "--help"])
        assert result.exit_code == 0, line
        for option in (w for w in words[3:] if w.startswith("--")):
            assert option.split("=")[0].strip("[]") in result.output, (line, option)
