"""Entry point Pulumi runs (`aidetect infra gpu up` drives it through the Automation API)."""

import sys
from pathlib import Path

# The program lives in the `infra` package; the dynamic lease provider is imported by the same name.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pulumi  # noqa: E402

from infra.pulumi.program import GpuStackSettings, build  # noqa: E402

build(GpuStackSettings.from_config(pulumi.Config()))
