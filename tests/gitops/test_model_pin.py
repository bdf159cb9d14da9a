"""Promotion is one line: bumping an overlay's pin changes the model version in the rendered output
and nothing else (beyond the ConfigMap's content hash, which is what rolls the pods)."""

from __future__ import annotations

import difflib
import re
import shutil

import pytest
from gitops_render import ENVIRONMENTS, GITOPS, render_text

from ci.gitops_pin import read_pin, write_image, write_pin

HASHED_NAME = re.compile(r"detector-model-[a-z0-9]{10}")


@pytest.fixture
def detector_copy(tmp_path):
    """A scratch copy of gitops/apps/detector (base, components, overlays) to bump pins in."""
    copy = tmp_path / "detector"
    shutil.copytree(GITOPS / "apps" / "detector", copy)
    return copy


def _changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_bumping_the_pin_changes_exactly_the_model_version(detector_copy, env):
    overlay = detector_copy / "overlays" / env
    before = render_text(overlay)
    old = read_pin(overlay)

    assert write_pin(overlay, old + 1) is True
    after = render_text(overlay)

    old_hash = set(HASHED_NAME.findall(before))
    new_hash = set(HASHED_NAME.findall(after))
    assert len(old_hash) == len(new_hash) == 1 and old_hash != new_hash, "the pods would not roll"
    diff = _changed_lines(HASHED_NAME.sub("detector-model-HASH", before),
                          HASHED_NAME.sub("detector-model-HASH", after))
    assert diff == [f"-  AIDETECT_MODEL_URI: models:/aidetect/{old}",
                    f"+  AIDETECT_MODEL_URI: models:/aidetect/{old + 1}"]
    # Every tier reads the new ConfigMap.
    tiers = after.count("name: " + new_hash.pop())
    # The ConfigMap itself + the CPU tier (+ in production, the drift job, which scores with the same
    # model, and the GPU tier: the Qwen stage has its own pin but decides with the thresholds fitted
    # behind this fast model, so it restarts onto that fit).
    assert tiers == (4 if env == "production" else 2)


def test_the_pin_file_diff_is_one_line(detector_copy):
    pin = detector_copy / "overlays" / "production" / "model-version.yaml"
    before = pin.read_text()
    write_pin(pin.parent, read_pin(pin.parent) + 5)
    assert len(_changed_lines(before, pin.read_text())) == 2  # one line out, one line in


def test_pinning_an_image_changes_only_that_image(detector_copy):
    overlay = detector_copy / "overlays" / "production"
    before = render_text(overlay)
    (old,) = set(re.findall(r"image: (ghcr\.io/aidetect/aidetect-gpu:\S+)", before))
    digest = "sha256:" + "ab" * 32
    assert write_image(overlay, "ghcr.io/aidetect/aidetect-gpu", "sha-0123456789ab", digest)
    diff = _changed_lines(before, render_text(overlay))
    assert diff == [f"-        image: {old}",
                    f"+        image: ghcr.io/aidetect/aidetect-gpu:sha-0123456789ab@{digest}"]
