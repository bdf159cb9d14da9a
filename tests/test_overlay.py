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
