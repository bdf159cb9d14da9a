"""The detector image as it ships: built with podman from the Dockerfile, then run.

No image registry is reachable here, so the base is made from Debian packages (debootstrap, then
`podman import`; kept in podman's store between runs) and torch comes from the CPU wheel on this
machine's disk. The containers run as the cluster runs them: as uid 10001, root file system read-only.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import httpx
import pytest
import yaml

from aidetect.testing import images, servers
from model.manifest import read_manifest, subsample

pytestmark = pytest.mark.slow

CPU = "localhost/aidetect:test"
GPU = "localhost/aidetect-gpu:test"
CRONJOB = images.REPO / "gitops" / "apps" / "ingest" / "cronjob.yaml"


def _require_podman() -> None:
    reason = images.unavailable()
    if reason == "debootstrap and rootful podman need root":
        pytest.skip(reason)
    if reason:
        pytest.fail(reason)


@pytest.fixture(scope="module")
def cpu_image(tmp_path_factory) -> str:
    _require_podman()
    images.ensure_base()
    images.build(CPU, variant="cpu", work=tmp_path_factory.mktemp("image-cpu"))
    return CPU


def _run(
    image: str,
    *args: str,
    env: dict | None = None,
    volumes: tuple = (),
    entrypoint: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """`podman run` as the cluster runs the image: its own user, read-only root, loopback reachable."""
    flags = ["--rm", *images.RUN, "--network", "host", "--read-only"]
    for k, v in (env or {}).items():
        flags += ["-e", f"{k}={v}"]
    for host, inside in volumes:
        flags += ["-v", f"{host}:{inside}:U"]  # U: owned by the image's user, as fsGroup does in the pod
    if entrypoint:
        flags += ["--entrypoint", entrypoint]
    return images.podman("run", *flags, image, *args, timeout=timeout, check=False)


def test_image_runs_as_its_own_user_with_the_license(cpu_image):
    out = _run(
        cpu_image,
        "-c",
        "import os, torch; print(os.getuid(), torch.__version__, torch.version.cuda)",
        entrypoint="python",
    )
    assert out.returncode == 0, out.stderr
    uid, version, cuda = out.stdout.split()
    assert uid == "10001" and version.startswith("2.13.0") and cuda == "None"
    assert images.exists(images.BASE) and not images.ensure_base()  # kept for the next run
    lic = _run(cpu_image, "/usr/share/doc/aidetect/LICENSE", entrypoint="cat")
    assert "Apache License" in lic.stdout
    listing = _run(
        cpu_image, "-c", "import model, service, ci, infra, configs; print(model.__file__)", entrypoint="python"
    )
    assert listing.returncode == 0 and listing.stdout.startswith("/opt/app/"), listing.stderr


def test_cli_and_ci_help_run_in_the_image(cpu_image):
    top = _run(cpu_image, "--help")
    assert top.returncode == 0, top.stderr
    assert all(group in top.stdout for group in ("serve", "ingest", "ci", "qwen"))
    ci = _run(cpu_image, "ci", "--help")
    assert ci.returncode == 0 and "should-retrain" in ci.stdout, ci.stdout + ci.stderr


def test_serve_answers_health_and_a_detect_over_http(cpu_image, tiny_model, manifest, tmp_path):
    """`aidetect serve`, the image's default command, against the tiny model's MLflow registry."""
    from model import registry
    from model.preprocess import decode_image

    settings, ref, _ = tiny_model
    # A copy of the store, mounted where the original lies: MLflow records artifact paths as absolute.
    home = tmp_path / "home"
    shutil.copytree(settings.home, home)
    port = servers.free_port()
    name = f"aidetect-serve-{port}"
    cmd = images.serve_cmd(cpu_image, home, settings.home, port, name)
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    proc = servers.start(cmd, log=log)
    try:
        servers.wait_http(f"{url}/health", timeout=240, proc=proc)
        sample = subsample(read_manifest(manifest, split="val"), 1)[0]
        data = sample.path.read_bytes()
        assert data[:3] == b"\xff\xd8\xff"  # a real JPEG from the shared data
        r = httpx.post(f"{url}/v1/detect", content=data, headers={"content-type": "image/jpeg"}, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"]["name"] == "aidetect" and body["model"]["version"] == ref.version
        assert body["verdict"] in ("ai_generated", "real", "uncertain")
        registry.configure(settings)
        bundle, _ = registry.load_detector(ref.uri)
        assert body["score"] == pytest.approx(float(bundle.score_images([decode_image(data)])[0]), abs=1e-4)
        # A phone's HEIC: the image's pillow-heif wheel brings libheif and its HEVC decoder along.
        heic = io.BytesIO()
        decode_image(data).save(heic, "HEIF", quality=90)
        r = httpx.post(f"{url}/v1/detect", content=heic.getvalue(), headers={"content-type": "image/heic"}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["score"] == pytest.approx(
            float(bundle.score_images([decode_image(heic.getvalue())])[0]), abs=1e-4
        )
        bad = httpx.post(f"{url}/v1/detect", content=b"not an image", headers={"content-type": "image/jpeg"})
        assert 400 <= bad.status_code < 500 and httpx.get(f"{url}/health").status_code == 200
        # What the kubelet does at a pod's end: SIGTERM to the container's PID 1, SIGKILL after the grace period.
        # The kernel ignores a signal PID 1 has no handler for, so without one this waited out the grace period
        # and ended as 137 (killed); the server stops on SIGTERM itself, with status 0.
        images.podman("stop", "--time", "60", name, check=False, timeout=120)
        assert proc.wait(30) == 0
    except Exception:
        print(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        images.podman("stop", "--time", "10", name, check=False, timeout=60)
        servers.stop(proc)


def _cronjob_container() -> dict:
    job = yaml.safe_load(CRONJOB.read_text())
    return job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def test_ingest_cronjob_runs_in_the_image(cpu_image, manifest, tmp_path):
    """The CronJob's own args and environment, with its endpoints moved to loopback stand-ins: the
    social fake for Mastodon, moto for MinIO. Metadata goes to SQLite in the home (the cluster's secret
    names PostgreSQL)."""
    import boto3
    from moto.server import ThreadedMotoServer

    from aidetect.testing.fakeapi import FakeSocial

    container = _cronjob_container()
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    blobs = [s.path.read_bytes() for s in subsample(read_manifest(manifest, split="train"), 1)[:6]]
    s3_port = servers.free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    moto.start()
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{s3_port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        bucket, _, prefix = env["AIDETECT_OBJECT_STORE"].removeprefix("s3://").partition("/")
        s3.create_bucket(Bucket=bucket)
        with FakeSocial(blobs, page_size=5) as fake:
            env.update({k: v for k, v in fake.env().items() if k.startswith("MASTODON")})
            env.update(creds, AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{s3_port}")
            home = tmp_path / "home"
            home.mkdir()
            out = _run(cpu_image, *container["args"], env=env, volumes=[(home, env["AIDETECT_HOME"])])
        assert out.returncode == 0, out.stdout + out.stderr
        report = json.loads(out.stdout.strip().splitlines()[-1])
        assert report["source"] == "mastodon" and report["error"] is None and report["stored"] >= 1, report
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert len(keys) >= report["stored"] and all(k.startswith(prefix) for k in keys), keys
    finally:
        moto.stop()

    # Without its settings (here: an unknown source), the same entry point fails with one line.
    bad = _run(cpu_image, "ingest", "--source", "myspace", "--tag", "aiart")
    assert bad.returncode == 2 and bad.stderr.startswith("aidetect: error: ") and bad.stderr.count("\n") == 1


def test_gpu_variant_installs_and_imports_the_qwen_stage(cpu_image, tmp_path):
    """Built with the CPU torch wheel: proves the GPU extras install and import (CUDA builds in the workflow)."""
    images.build(GPU, variant="gpu", work=tmp_path)
    probe = _run(
        GPU, "-c", "import transformers, peft, accelerate, openai, aidetect.cli_qwen; print('ok')", entrypoint="python"
    )
    assert probe.returncode == 0 and probe.stdout.strip() == "ok", probe.stderr
    qwen = _run(GPU, "qwen", "--help")
    assert qwen.returncode == 0 and "serve" in qwen.stdout, qwen.stdout + qwen.stderr
    # The shared layers keep the GPU variant to torch and its extra on top of the CPU image.
    assert images.size_bytes(GPU) > images.size_bytes(CPU)
