"""Build and run the aidetect images with podman on a machine with no image registry (tests, benchmark).

    from aidetect.testing import images
    images.unavailable()                          # None, or why images cannot be built here
    images.ensure_base()                          # localhost/aidetect-base:bookworm, debootstrapped once
    images.build("localhost/aidetect:dev", variant="cpu", work=Path("/tmp/x"), log=Path("/tmp/x/build.log"))
    images.podman("run", "--rm", *images.RUN, "localhost/aidetect:dev", "--help")

The base is made from Debian packages (debootstrap, then `podman import`) and kept in podman's store, so
only the first run on a machine pays for it. The build sees this machine's pip configuration (indexes,
find-links, CA bundle, constraints) through a generated pip.conf and read-only mounts of the paths it
names, and takes torch from a local wheel when a find-links folder holds one. Podman keeps the layers,
so a rebuild with unchanged sources takes seconds and a code change reinstalls only the project.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE = "localhost/aidetect-base:bookworm"
SUITE = "bookworm"  # python3 is 3.11 there, as pyproject.toml requires
MIRROR = "http://deb.debian.org/debian"
# This machine's kernel mounts cgroup v1 (crun, podman's default, fails on it) and refuses to raise
# rlimits, so both build and run name the runtime and limits within the hard ones.
RUNTIME = ["--runtime", "runc", "--ulimit", "nofile=1024:20000", "--ulimit", "nproc=4096:4096"]
# `podman run` takes the same flags; healthchecks need systemd timers, which this machine lacks (the
# tests and the benchmark probe /health themselves).
RUN = [*RUNTIME, "--no-healthcheck"]
# pip settings that name files or folders on this machine, which the build must see too.
_PATH_KEYS = {"cert", "client-cert", "constraint", "find-links", "index-url", "extra-index-url", "requirement"}


class ImageError(RuntimeError):
    """A podman or debootstrap step failed; the message carries the tail of its output."""


def unavailable() -> str | None:
    """Why images cannot be built here, or None."""
    missing = [tool for tool in ("podman", "runc", "debootstrap") if not shutil.which(tool)]
    if missing:
        return f"{', '.join(missing)} not installed (scripts/setup-system.sh installs them)"
    if os.geteuid() != 0:
        return "debootstrap and rootful podman need root"
    return None


def podman(
    *args: str, timeout: float = 600, check: bool = True, log: Path | None = None
) -> subprocess.CompletedProcess:
    """`podman ARGS`; output to `log` (appended) when given, else captured."""
    if log is not None:
        with log.open("ab") as out:
            proc = subprocess.run(["podman", *args], stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    else:
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:] if log else (proc.stdout + proc.stderr)[-4000:]
        raise ImageError(f"podman {' '.join(args[:3])} ... exited {proc.returncode}:\n{tail}")
    return proc


def exists(image: str) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


def size_bytes(image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


def ensure_base(image: str = BASE, mirror: str = MIRROR) -> bool:
    """Make the base image from Debian packages unless podman already holds it. True when it was made."""
    if exists(image):
        return False
    with tempfile.TemporaryDirectory(prefix="aidetect-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        proc = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                SUITE,
                str(root),
                mirror,
            ],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if proc.returncode != 0:
            raise ImageError(f"debootstrap {SUITE} from {mirror} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        # What python:slim leaves out too: package caches, docs, manuals, translations.
        for junk in (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
            "usr/share/info",
        ):
            shutil.rmtree(root / junk, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        # An imported file system carries no config: give it the PATH a Debian shell would have.
        imp = subprocess.run(
            [
                "podman",
                "import",
                "--change",
                "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "-",
                image,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=600,
        )
        tar.stdout.close()
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise ImageError(f"podman import {image} failed:\n{imp.stderr[-3000:]}")
    return True


def pip_settings() -> dict[str, str]:
    """This machine's effective pip settings (`pip config list`, environment variables included)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    settings: dict[str, str] = {}
    for line in out.splitlines():
        m = re.fullmatch(r"(?::env:|global|install|download)\.([\w-]+)='(.*)'", line.strip())
        if m:
            settings[m.group(1)] = m.group(2)  # later scopes (the environment last) win, as in pip
    return settings


def _host_path(value: str, key: str) -> Path | None:
    """The local path a setting names, widened to what the build must see: a local PEP 503 index
    (file:///x/simple) links its files relative to itself, so its parent goes in whole."""
    path = Path(value.removeprefix("file://")) if value.startswith(("file://", "/")) else None
    if path is None or not path.exists():
        return None
    if key.endswith("index-url") and path.name == "simple":
        return path.parent
    return path


def build_args(work: Path) -> list[str]:
    """`podman build` arguments that give RUN steps this machine's pip configuration: a pip.conf
    mounted at /etc/pip.conf, the paths it names mounted read-only at the same place, and torch from a
    find-links folder when one holds a torch wheel (otherwise the Dockerfile's index)."""
    settings = pip_settings()
    mounts: set[Path] = set()
    for key, value in settings.items():
        if key in _PATH_KEYS:
            mounts.update(p for v in value.split() if (p := _host_path(v, key)))
    conf = work / "pip.conf"
    conf.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(settings.items())))
    args = ["-v", f"{conf}:/etc/pip.conf:ro"]
    for path in sorted(mounts):
        args += ["-v", f"{path}:{path}:ro"]
    wheels = [Path(v) for v in settings.get("find-links", "").split() if Path(v).is_dir()]
    torch = next((d for d in wheels if any(d.glob("torch-*.whl"))), None)
    if torch is not None:
        args += ["--build-arg", f"TORCH_FIND_LINKS={torch}"]
    return args


def build(
    tag: str,
    variant: str = "cpu",
    work: Path | None = None,
    log: Path | None = None,
    base: str = BASE,
    timeout: float = 1800,
    no_cache: bool = False,
) -> float:
    """Build the detector image `tag` from the repository on the local base; returns the seconds taken."""
    work = work or Path(tempfile.mkdtemp(prefix="aidetect-build-"))
    work.mkdir(parents=True, exist_ok=True)
    log = log or work / f"build-{variant}.log"
    started = time.monotonic()
    podman(
        "build",
        *RUNTIME,
        "--network",
        "host",
        # docker format: OCI images drop SHELL (bash with pipefail) and HEALTHCHECK.
        "--format",
        "docker",
        *(["--no-cache"] if no_cache else []),
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "--build-arg",
        f"VARIANT={variant}",
        *build_args(work),
        "--target",
        "runtime",
        "--tag",
        tag,
        str(REPO),
        timeout=timeout,
        log=log,
    )
    return time.monotonic() - started


def serve_cmd(image: str, home: Path, mount_at: Path, port: int, name: str) -> list[str]:
    """`podman run` of `aidetect serve` on host port `port`, its home `home` mounted at `mount_at`.

    Host network, as nothing here maps ports; so the server binds loopback and moves off the image's
    8000. `mount_at` is where the store was written: MLflow records artifact paths as absolute. `U` gives
    the mount to the image's user, as the pod's fsGroup does; the root file system is read-only, as there.
    """
    return [
        "podman", "run", "--rm", "--name", name, *RUN, "--network", "host", "--read-only",
        "-v", f"{home}:{mount_at}:U", "-e", f"AIDETECT_HOME={mount_at}",
        image, "serve", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
