"""A local fake of Keystone v3 (token issue) and Blazar (leases), served on 127.0.0.1 for tests.

Only what the lease provider uses: POST /v3/auth/tokens answers with X-Subject-Token and a catalog
whose `reservation` endpoint points back at this server; /reservation/v1/leases creates, reads and
deletes leases, which turn ACTIVE after `polls_until_active` reads. Every request is recorded.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "fake-token-0123"
REGION = "CHI@TEST"


@dataclass
class FakeState:
    polls_until_active: int = 1
    final_status: str = "ACTIVE"
    leases: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, path, json body)


class FakeOpenStack:
    def __init__(self, state: FakeState | None = None) -> None:
        self.state = state or FakeState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeOpenStack:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clouds_yaml(self, cloud: str = "fake") -> str:
        return json.dumps(
            {
                "clouds": {
                    cloud: {
                        "auth_type": "v3applicationcredential",
                        "auth": {
                            "auth_url": f"{self.url}/v3",
                            "application_credential_id": "appcred-id",
                            "application_credential_secret": "appcred-secret",
                        },
                        "region_name": REGION,
                        "identity_api_version": 3,
                    }
                }
            }
        )

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                body = self._body() if method in ("POST", "PUT") else None
                fake.state.requests.append((method, self.path, body))
                if self.path.startswith("/v3"):
                    return self._identity(method, body)
                if self.headers.get("X-Auth-Token") != TOKEN:
                    return self._send(401, {"error": "bad token"})
                if self.path.startswith("/reservation/v1/leases"):
                    return self._leases(method, body)
                self._send(404, {"error": self.path})

            def _identity(self, method: str, body: Any) -> None:
                if method == "POST" and self.path == "/v3/auth/tokens":
                    methods = body["auth"]["identity"]["methods"]
                    cred = body["auth"]["identity"].get("application_credential", {})
                    if cred.get("secret") != "appcred-secret":
                        return self._send(401, {"error": "bad credential"})
                    endpoint = {
                        "id": "e1",
                        "interface": "public",
                        "region": REGION,
                        "region_id": REGION,
                        "url": f"{fake.url}/reservation/v1",
                    }
                    # Listed first, so only region selection reaches the right endpoint.
                    elsewhere = {
                        **endpoint,
                        "id": "e0",
                        "region": "ELSEWHERE",
                        "region_id": "ELSEWHERE",
                        "url": "http://127.0.0.1:9/reservation/v1",
                    }
                    token = {
                        "token": {
                            "methods": methods,
                            "expires_at": "2099-01-01T00:00:00.000000Z",
                            "issued_at": "2026-01-01T00:00:00.000000Z",
                            "user": {
                                "id": "u1",
                                "name": "tester",
                                "domain": {"id": "default", "name": "Default"},
                            },
                            "project": {
                                "id": "p1",
                                "name": "CHI-TEST",
                                "domain": {"id": "default", "name": "Default"},
                            },
                            "catalog": [
                                {
                                    "id": "s1",
                                    "type": "reservation",
                                    "name": "blazar",
                                    "endpoints": [elsewhere, endpoint],
                                }
                            ],
                        }
                    }
                    return self._send(201, token, {"X-Subject-Token": TOKEN})
                self._send(404, {"error": self.path})

            def _leases(self, method: str, body: Any) -> None:
                parts = self.path.rstrip("/").split("/")  # ['', 'reservation', 'v1', 'leases', id?]
                lease_id = parts[4] if len(parts) > 4 else None
                state = fake.state
                if method == "POST" and lease_id is None:
                    lease_id = str(uuid.uuid4())
                    reservations = [
                        {**r, "id": str(uuid.uuid4()), "lease_id": lease_id, "status": "pending"}
                        for r in body["reservations"]
                    ]
                    state.leases[lease_id] = {
                        **body,
                        "id": lease_id,
                        "status": "PENDING",
                        "reservations": reservations,
                    }
                    state.polls[lease_id] = 0
                    return self._send(201, {"lease": state.leases[lease_id]})
                if lease_id not in state.leases:
                    return self._send(404, {"error_message": f"lease {lease_id} not found"})
                if method == "GET":
                    state.polls[lease_id] += 1
                    if state.polls[lease_id] >= state.polls_until_active:
                        state.leases[lease_id]["status"] = state.final_status
                    return self._send(200, {"lease": state.leases[lease_id]})
                if method == "DELETE":
                    del state.leases[lease_id]
                    return self._send(204)
                self._send(405, {"error": method})

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler
