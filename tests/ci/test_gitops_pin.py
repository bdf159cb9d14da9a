"""ci/gitops_pin.py: the model-version and image-tag pins of a GitOps overlay, edited as round-trip YAML."""

from __future__ import annotations

import difflib
import io
import shutil
from pathlib import Path

import pytest

from ci.gitops_pin import MODEL_FILE as MODEL_FILE_NAME
from ci.gitops_pin import PinError, _load, main, read_image, read_pin, uses_image, write_image, write_pin

MODEL_FILE = """\
# The model version production serves.
apiVersion: v1
kind: ConfigMap
metadata:
  name: detector-model
data:
  AIDETECT_MODEL_URI: models:/aidetect/3
"""

KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
# written by the image workflow
images:
  - name: ghcr.io/aidetect/aidetect
    newTag: "0.1.0"
  - name: ghcr.io/aidetect/aidetect-gpu
    newTag: "0.1.0"
    digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
patches:
  - path: model-version.yaml
"""
DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture
def overlay(tmp_path):
    (tmp_path / "model-version.yaml").write_text(MODEL_FILE)
    (tmp_path / "kustomization.yaml").write_text(KUSTOMIZATION)
    return tmp_path


# --- model version ---


def test_read_pin(overlay):
    assert read_pin(overlay) == 3


def test_write_pin_changes_only_the_version(overlay):
    assert write_pin(overlay, 12) is True
    assert read_pin(overlay) == 12
    assert (overlay / "model-version.yaml").read_text() == MODEL_FILE.replace("aidetect/3", "aidetect/12")


def test_write_pin_reports_no_change(overlay):
    assert write_pin(overlay, 3) is False
    assert (overlay / "model-version.yaml").read_text() == MODEL_FILE


def test_quoted_value_keeps_its_quotes(overlay):
    quoted = MODEL_FILE.replace("models:/aidetect/3", '"models:/aidetect/3"')
    (overlay / "model-version.yaml").write_text(quoted)
    write_pin(overlay, 4)
    assert '  AIDETECT_MODEL_URI: "models:/aidetect/4"\n' in (overlay / "model-version.yaml").read_text()


@pytest.mark.parametrize("bad", [0, -1, True, "4", 2.0])
def test_write_pin_refuses_non_versions(overlay, bad):
    with pytest.raises(PinError):
        write_pin(overlay, bad)
    assert read_pin(overlay) == 3


@pytest.mark.parametrize("text", [
    MODEL_FILE.replace("models:/aidetect/3", "models:/aidetect@production"),  # an alias pins nothing
    MODEL_FILE + "  AIDETECT_MODEL_URI: models:/aidetect/4\n",  # two pins: which one is real?
])
def test_read_pin_refuses_ambiguous_files(overlay, text):
    (overlay / "model-version.yaml").write_text(text)
    with pytest.raises(PinError):
        read_pin(overlay)


def test_missing_overlay(tmp_path):
    with pytest.raises(PinError, match="no such file"):
        read_pin(tmp_path / "nowhere")


# --- image tags ---


def test_read_image(overlay):
    assert read_image(overlay, "ghcr.io/aidetect/aidetect") == ("0.1.0", None)
    assert read_image(overlay, "ghcr.io/aidetect/aidetect-gpu")[1].startswith("sha256:1111")


def test_write_image_sets_tag_and_digest_of_that_entry_only(overlay):
    assert write_image(overlay, "ghcr.io/aidetect/aidetect", "sha-0123456789ab", DIGEST) is True
    assert read_image(overlay, "ghcr.io/aidetect/aidetect") == ("sha-0123456789ab", DIGEST)
    assert read_image(overlay, "ghcr.io/aidetect/aidetect-gpu")[0] == "0.1.0"
    text = (overlay / "kustomization.yaml").read_text()
    assert text.endswith("patches:\n  - path: model-version.yaml\n")
    assert "# written by the image workflow\n" in text


def test_write_image_without_digest_drops_a_stale_one(overlay):
    write_image(overlay, "ghcr.io/aidetect/aidetect-gpu", "sha-abc")
    assert read_image(overlay, "ghcr.io/aidetect/aidetect-gpu") == ("sha-abc", None)


def test_write_image_is_idempotent(overlay):
    assert write_image(overlay, "ghcr.io/aidetect/aidetect", "sha-1", DIGEST) is True
    assert write_image(overlay, "ghcr.io/aidetect/aidetect", "sha-1", DIGEST) is False


@pytest.mark.parametrize("tag, digest", [("latest", None), ("", None), ("a b", None), ("v1", "sha256:xyz")])
def test_write_image_refuses_unpinned_values(overlay, tag, digest):
    with pytest.raises(PinError):
        write_image(overlay, "ghcr.io/aidetect/aidetect", tag, digest)
    assert (overlay / "kustomization.yaml").read_text() == KUSTOMIZATION


def test_unknown_image(overlay):
    assert uses_image(overlay, "ghcr.io/aidetect/mlflow") is False
    with pytest.raises(PinError, match="no images entry"):
        write_image(overlay, "ghcr.io/aidetect/mlflow", "sha-1")


# --- command line ---


def test_cli_model_get_and_set(overlay, capsys):
    assert main(["model", str(overlay)]) == 0
    assert capsys.readouterr().out.strip() == "3"
    assert main(["model", str(overlay), "5"]) == 0
    assert read_pin(overlay) == 5


def test_cli_image_skips_overlays_without_the_image(overlay, tmp_path_factory, capsys):
    other = tmp_path_factory.mktemp("other")
    (other / "kustomization.yaml").write_text("resources: []\nimages:\n  - name: quay.io/minio/minio\n")
    code = main(["image", str(overlay), str(other), "--if-present", "--name", "ghcr.io/aidetect/aidetect",
                 "--tag", "sha-9", "--digest", DIGEST])
    assert code == 0
    assert read_image(overlay, "ghcr.io/aidetect/aidetect") == ("sha-9", DIGEST)
    assert "skipped" in capsys.readouterr().out


def test_cli_error_is_one_line(overlay, capsys):
    assert main(["image", str(overlay), "--name", "ghcr.io/aidetect/aidetect", "--tag", "latest"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gitops_pin: error: ") and err.count("\n") == 1


# --- round-trip editing keeps the files as people wrote them ---

GITOPS = Path(__file__).resolve().parents[2] / "gitops"
PINNED = sorted(GITOPS.rglob(MODEL_FILE_NAME)) + sorted(
    p for p in GITOPS.rglob("kustomization.yaml") if "\nimages:" in p.read_text()
)


@pytest.mark.parametrize("path", PINNED, ids=[str(p.relative_to(GITOPS)) for p in PINNED])
def test_every_pinned_file_in_gitops_round_trips_byte_for_byte(path):
    doc, yaml = _load(path)
    out = io.StringIO()
    yaml.dump(doc, out)
    assert out.getvalue() == path.read_text()


def test_a_real_overlay_changes_only_the_pinned_lines(tmp_path):
    overlay = GITOPS / "apps" / "detector" / "overlays" / "production"
    for name in ("kustomization.yaml", MODEL_FILE_NAME):
        shutil.copy(overlay / name, tmp_path / name)
    write_image(tmp_path, "ghcr.io/aidetect/aidetect", "sha-0123456789ab", DIGEST)
    write_pin(tmp_path, read_pin(overlay) + 1)
    for name, changed in (
        ("kustomization.yaml", {'    newTag: "sha-0123456789ab"', f"    digest: {DIGEST}"}),
        (MODEL_FILE_NAME, {f"  AIDETECT_MODEL_URI: models:/aidetect/{read_pin(overlay) + 1}"}),
    ):
        before, after = (overlay / name).read_text().splitlines(), (tmp_path / name).read_text().splitlines()
        added = [ln[1:] for ln in difflib.unified_diff(before, after, lineterm="", n=0) if ln[:1] == "+"]
        assert set(added[1:]) == changed  # added[0] is the +++ header


def test_comments_beside_the_values_stay(overlay):
    text = KUSTOMIZATION.replace('newTag: "0.1.0"\n  - name: ghcr.io/aidetect/aidetect-gpu', 'newTag: "0.1.0"  # CI\n'
                                 "  - name: ghcr.io/aidetect/aidetect-gpu")
    (overlay / "kustomization.yaml").write_text(text)
    write_image(overlay, "ghcr.io/aidetect/aidetect", "sha-2")
    assert (overlay / "kustomization.yaml").read_text() == text.replace('"0.1.0"  # CI', '"sha-2"  # CI')


def test_a_file_that_is_not_yaml_is_a_pin_error(overlay):
    (overlay / "kustomization.yaml").write_text("images: [\n")
    with pytest.raises(PinError, match="kustomization.yaml"):
        read_image(overlay, "ghcr.io/aidetect/aidetect")
