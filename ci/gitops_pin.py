"""Read and change the pins in a GitOps overlay: the model version and the image tags.

    python -m ci.gitops_pin model gitops/apps/detector/overlays/production          # prints 3
    python -m ci.gitops_pin model gitops/apps/detector/overlays/production 4        # pins version 4
    python -m ci.gitops_pin image gitops/apps/detector/overlays/staging \\
        --name ghcr.io/aidetect/aidetect --tag sha-0123abcd --digest sha256:...

The model version is `data.AIDETECT_MODEL_URI: models:/<name>/<version>` in `<overlay>/model-version.yaml`;
image tags are the `images:` entries of `<overlay>/kustomization.yaml`. Both files are edited as YAML with
ruamel.yaml's round-trip mode, which keeps comments, quotes, order and indentation, so a promotion diff is
exactly the value that changed (the kustomize CLI, which would do the image half, cannot be installed here).
Needs only ruamel.yaml beside the standard library: the workflows run it without installing the project.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, ScalarString
from ruamel.yaml.util import load_yaml_guess_indent

MODEL_FILE = "model-version.yaml"
KUSTOMIZATION = "kustomization.yaml"
MODEL_KEY = "AIDETECT_MODEL_URI"

# A pinned model reference; an alias (models:/<name>@production) pins nothing.
_MODEL_URI = re.compile(r"^models:/(?P<name>[A-Za-z0-9_.-]+)/(?P<version>\d+)$")
# Docker's rule for a tag; `latest` is refused separately because it pins nothing.
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class PinError(ValueError):
    """The overlay does not hold the pin in the expected shape, or the new value is invalid."""


# --- model version ---------------------------------------------------------------------------


def _model_uri(doc, path: Path) -> re.Match[str]:
    data = doc.get("data") if isinstance(doc, dict) else None
    match = _MODEL_URI.match(str(data.get(MODEL_KEY, ""))) if isinstance(data, dict) else None
    if match is None:
        raise PinError(f"{path}: expected 'data: {{{MODEL_KEY}: models:/<name>/<N>}}'")
    return match


def read_pin(overlay_dir: str | Path) -> int:
    """The model version the overlay pins."""
    path = Path(overlay_dir) / MODEL_FILE
    return int(_model_uri(_load(path)[0], path)["version"])


def write_pin(overlay_dir: str | Path, version: int) -> bool:
    """Pin `version` in the overlay; True when the file changed, False when it already said so."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PinError(f"model version must be a positive integer, got {version!r}")
    path = Path(overlay_dir) / MODEL_FILE
    doc, yaml = _load(path)
    match = _model_uri(doc, path)
    if int(match["version"]) == version:
        return False
    doc["data"][MODEL_KEY] = _same_style(doc["data"][MODEL_KEY], f"models:/{match['name']}/{version}")
    _dump(path, doc, yaml)
    return True


# --- image tags ------------------------------------------------------------------------------


def _image_entry(doc, name: str, path: Path) -> dict:
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        raise PinError(f"{path}: no top-level 'images:' list")
    for entry in images:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    raise PinError(f"{path}: no images entry named {name}")


def uses_image(overlay_dir: str | Path, name: str) -> bool:
    """Whether the overlay's kustomization has an `images:` entry for `name`."""
    path = Path(overlay_dir) / KUSTOMIZATION
    try:
        _image_entry(_load(path)[0], name, path)
    except PinError:
        return False
    return True


def read_image(overlay_dir: str | Path, name: str) -> tuple[str | None, str | None]:
    """(newTag, digest) of image `name` in the overlay's kustomization; None where unset."""
    path = Path(overlay_dir) / KUSTOMIZATION
    entry = _image_entry(_load(path)[0], name, path)
    tag, digest = entry.get("newTag"), entry.get("digest")
    return (str(tag) if tag else None), (str(digest) if digest else None)


def write_image(overlay_dir: str | Path, name: str, tag: str, digest: str | None = None) -> bool:
    """Pin image `name` to `tag` (and `digest`, when given) in the overlay; True when it changed.

    Without a digest any stale `digest:` is removed, so the tag alone decides.
    """
    if tag == "latest" or not _TAG.match(tag):
        raise PinError(f"image tag must be an explicit version, not {tag!r}")
    if digest is not None and not _DIGEST.match(digest):
        raise PinError(f"digest must look like sha256:<64 hex>, not {digest!r}")
    path = Path(overlay_dir) / KUSTOMIZATION
    doc, yaml = _load(path)
    entry = _image_entry(doc, name, path)
    if (entry.get("newTag"), entry.get("digest")) == (tag, digest):
        return False
    # Quoted: a tag such as 1.10 would otherwise read back as the number 1.1.
    entry["newTag"] = DoubleQuotedScalarString(tag)
    if digest:
        entry["digest"] = digest
    else:
        entry.pop("digest", None)
    _dump(path, doc, yaml)
    return True


# --- files -----------------------------------------------------------------------------------


def _load(path: Path):
    """(document, a YAML that writes it back in the file's own indentation)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PinError(f"{path}: no such file") from None
    try:
        # The guess is of the block sequences (`  - x`: 4 and 2); mappings are indented by 2 throughout gitops/.
        _, sequence, offset = load_yaml_guess_indent(text)
        yaml = YAML()  # round-trip: comments, quotes and key order survive
        yaml.preserve_quotes = True
        yaml.width = 4096  # never fold a long line that was one line
        yaml.indent(mapping=2, sequence=sequence if offset is not None else 4, offset=2 if offset is None else offset)
        return yaml.load(text), yaml
    except YAMLError as e:  # duplicate keys included: two pins, which one is real?
        raise PinError(f"{path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _dump(path: Path, doc, yaml: YAML) -> None:
    out = io.StringIO()
    yaml.dump(doc, out)
    path.write_text(out.getvalue(), encoding="utf-8")


def _same_style(old, new: str):
    """`new` in the quoting `old` was written with."""
    return type(old)(new) if isinstance(old, ScalarString) else new


# --- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gitops_pin", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    model = sub.add_parser("model", help="print the pinned model version, or pin a new one")
    model.add_argument("overlay", type=Path)
    model.add_argument("version", type=int, nargs="?", help="version to pin; omit to print the current one")
    image = sub.add_parser("image", help="pin an image tag (and digest) in one or more overlays")
    image.add_argument("overlays", type=Path, nargs="+")
    image.add_argument("--name", required=True, help="image name as the manifests spell it")
    image.add_argument("--tag", required=True)
    image.add_argument("--digest", default=None)
    image.add_argument("--if-present", action="store_true",
                       help="skip overlays that do not use this image instead of failing")
    args = parser.parse_args(argv)
    try:
        if args.command == "model" and args.version is None:
            print(read_pin(args.overlay))
        elif args.command == "model":
            changed = write_pin(args.overlay, args.version)
            print(f"{args.overlay}: model version {args.version} ({'changed' if changed else 'unchanged'})")
        else:
            for overlay in args.overlays:
                if args.if_present and not uses_image(overlay, args.name):
                    print(f"{overlay}: does not use {args.name} (skipped)")
                    continue
                changed = write_image(overlay, args.name, args.tag, args.digest)
                print(f"{overlay}: {args.name}:{args.tag} ({'changed' if changed else 'unchanged'})")
    except PinError as exc:
        print(f"gitops_pin: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
