"""One HTTP connection of a sandbox: POST a SOAP request, get the sandbox's reply, a SOAP
fault, or the raw reply a fault script asks for."""

from __future__ import annotations

import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from entity_sync_sandbox.soap import BadRequest, SoapFault, fault_envelope, parse_request

if TYPE_CHECKING:
    from entity_sync_sandbox.server import SandboxServer

MAX_REQUEST_BYTES = 16 * 1024 * 1024


class SoapHandler(BaseHTTPRequestHandler):
    """One HTTP connection of a sandbox; `sandbox` is set per server by `_handler_class`."""

    sandbox: SandboxServer
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections
    server_version = "entity-sync-sandbox"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every keep-alive call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.sandbox._calls_lock:
            self.sandbox.connections += 1

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._send(413, b"request too large", "text/plain")
            return
        data = self.rfile.read(length)
        try:
            request = parse_request(data)
        except BadRequest as exc:
            self._send(500, fault_envelope("soapenv:Client", str(exc)), "text/xml")
            return
        scripted = self.sandbox._count(request.operation)
        if self.sandbox.faults.latency_ms:  # a slow endpoint: the injected delay per call
            time.sleep(self.sandbox.faults.latency_ms / 1000)
        if scripted is not None:
            self._send(scripted.status, scripted.body, scripted.content_type)
            return
        host = self.headers.get("Host") or self.sandbox._address()
        try:
            body, status = self.sandbox._dispatch(request, f"http://{host}/"), 200
        except SoapFault as fault:
            body, status = self.sandbox._render_fault(fault), 500
        self._send(status, body, "text/xml; charset=utf-8")

    def do_GET(self) -> None:
        self._send(405, b"SOAP endpoint: POST only", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and the CLI print what matters
