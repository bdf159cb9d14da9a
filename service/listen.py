"""Whether a server could listen where it is told to, asked before anything slow starts.

    ensure_port_free("127.0.0.1", 8000)   # raises OSError with one line to act on, or returns

`aidetect up` would otherwise train a model for minutes and `aidetect serve` load one into every worker,
only for uvicorn to fail on the port at the end with "[Errno 98] Address already in use". The check
binds as uvicorn will (SO_REUSEADDR, so a recently closed server's lingering connections do not count) and
lets go at once: something may still take the port in between, and uvicorn then says so itself.
"""

from __future__ import annotations

import socket


def ensure_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise OSError(
                f"cannot listen on {host}:{port} ({e.strerror or e}): another server holds it "
                f"(`ss -ltnp 'sport = :{port}'` shows which); stop it or choose another with --port or AIDETECT_PORT"
            ) from None
