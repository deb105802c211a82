"""The twin's outside world: a loopback HTTP server for the k3s install script, the k3s stand-in and the
RPM repository, reached from the VMs through QEMU's user network (10.0.2.2 is the host's loopback).

`outage` makes every request fail (the connection is closed unanswered), as a network that is down.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SERVED = Path(__file__).resolve().parent / "served"


class TwinServer:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.outage = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests.append(self.path)
                if owner.outage.is_set():
                    self.close_connection = True
                    return
                body = owner.body(self.path, self.headers.get("Host", ""))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def body(self, path: str, host: str) -> bytes | None:
        path = path.split("?")[0]
        if path.endswith("/install.sh"):
            base = f"http://{host}" + path.rsplit("/", 1)[0]
            return (SERVED / "install.sh").read_bytes().replace(b"@BASE_URL@", base.encode())
        if path.endswith("/k3s"):
            return (SERVED / "k3s").read_bytes()
        if path.endswith(".rpm"):
            return b"twin rpm payload for " + path.encode() + b"\n"
        return None

    @property
    def script_url(self) -> str:
        """The install script as the VMs reach it (get.k3s.io resolves to the host in the twin)."""
        return f"http://get.k3s.io:{self.port}/install.sh"

    def start(self) -> TwinServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> TwinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
