"""Read and change the pins in a GitOps overlay: the model version and the image tags.

    python -m ci.gitops_pin model gitops/apps/detector/overlays/production          # prints 3
    python -m ci.gitops_pin model gitops/apps/detector/overlays/production 4        # pins version 4
    python -m ci.gitops_pin image gitops/apps/detector/overlays/staging \\
        --name ghcr.io/aidetect/aidetect --tag sha-0123abcd --digest sha256:...

The model version lives in one line of `<overlay>/model-version.yaml`
(`AIDETECT_MODEL_URI: models:/<name>/<version>`); image tags in the `images:` entries of
`<overlay>/kustomization.yaml`. Both are edited as text, line by line, so comments and layout stay as
they are and a promotion diff is exactly the line that changed. Standard library only: the image
workflow runs this without installing the project.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

MODEL_FILE = "model-version.yaml"
KUSTOMIZATION = "kustomization.yaml"

_MODEL_LINE = re.compile(
    r"^(?P<head>\s*AIDETECT_MODEL_URI:\s*[\"']?models:/(?P<name>[A-Za-z0-9_.-]+)/)"
    r"(?P<version>\d+)(?P<tail>[\"']?\s*)$"
)
# Docker's rule for a tag; `latest` is refused separately because it pins nothing.
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class PinError(ValueError):
    """The overlay does not hold the pin in the expected shape, or the new value is invalid."""


# --- model version ---------------------------------------------------------------------------


def _model_line(lines: list[str], path: Path) -> tuple[int, re.Match[str]]:
    hits = [(i, m) for i, line in enumerate(lines) if (m := _MODEL_LINE.match(line))]
    if len(hits) != 1:
        raise PinError(f"{path}: expected exactly one 'AIDETECT_MODEL_URI: models:/<name>/<N>' line, "
                       f"found {len(hits)}")
    return hits[0]


def read_pin(overlay_dir: str | Path) -> int:
    """The model version the overlay pins."""
    path = Path(overlay_dir) / MODEL_FILE
    _, match = _model_line(_read_lines(path), path)
    return int(match["version"])


def write_pin(overlay_dir: str | Path, version: int) -> bool:
    """Pin `version` in the overlay; True when the file changed, False when it already said so."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PinError(f"model version must be a positive integer, got {version!r}")
    path = Path(overlay_dir) / MODEL_FILE
    lines = _read_lines(path)
    index, match = _model_line(lines, path)
    new = f"{match['head']}{version}{match['tail']}"
    if new == lines[index]:
        return False
    lines[index] = new
    _write_lines(path, lines)
    return True


# --- image tags ------------------------------------------------------------------------------


def _image_entry(lines: list[str], name: str, path: Path) -> tuple[int, int, str]:
    """(first, end, indent) of the `images:` entry for `name`: lines[first:end] are its fields."""
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "images:"), None)
    if start is None:
        raise PinError(f"{path}: no top-level 'images:' list")
    entry_re = re.compile(rf"^(\s*)- name:\s*[\"']?{re.escape(name)}[\"']?\s*$")
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line.lstrip().startswith("#"):
            continue
        if line.strip() and not line[0].isspace() and not line.startswith("-"):
            break  # the next top-level key: the list has ended
        if m := entry_re.match(line):
            indent = m.group(1) + "  "
            end = i + 1
            while end < len(lines) and lines[end].startswith(indent) and lines[end].strip():
                end += 1
            return i + 1, end, indent
    raise PinError(f"{path}: no images entry named {name}")


def uses_image(overlay_dir: str | Path, name: str) -> bool:
    """Whether the overlay's kustomization has an `images:` entry for `name`."""
    path = Path(overlay_dir) / KUSTOMIZATION
    try:
        _image_entry(_read_lines(path), name, path)
    except PinError:
        return False
    return True


def read_image(overlay_dir: str | Path, name: str) -> tuple[str | None, str | None]:
    """(newTag, digest) of image `name` in the overlay's kustomization; None where unset."""
    path = Path(overlay_dir) / KUSTOMIZATION
    lines = _read_lines(path)
    first, end, _ = _image_entry(lines, name, path)
    fields = {}
    for line in lines[first:end]:
        key, _, value = line.strip().partition(":")
        fields[key] = value.strip().strip("\"'") or None
    return fields.get("newTag"), fields.get("digest")


def write_image(overlay_dir: str | Path, name: str, tag: str, digest: str | None = None) -> bool:
    """Pin image `name` to `tag` (and `digest`, when given) in the overlay; True when it changed.

    Without a digest any stale `digest:` line is removed, so the tag alone decides.
    """
    if tag == "latest" or not _TAG.match(tag):
        raise PinError(f"image tag must be an explicit version, not {tag!r}")
    if digest is not None and not _DIGEST.match(digest):
        raise PinError(f"digest must look like sha256:<64 hex>, not {digest!r}")
    path = Path(overlay_dir) / KUSTOMIZATION
    lines = _read_lines(path)
    first, end, indent = _image_entry(lines, name, path)
    kept = [line for line in lines[first:end] if line.strip().split(":", 1)[0] not in ("newTag", "digest")]
    fields = kept + [f'{indent}newTag: "{tag}"'] + ([f"{indent}digest: {digest}"] if digest else [])
    new_lines = lines[:first] + fields + lines[end:]
    if new_lines == lines:
        return False
    _write_lines(path, new_lines)
    return True


# --- files -----------------------------------------------------------------------------------


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PinError(f"{path}: no such file") from None


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


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
