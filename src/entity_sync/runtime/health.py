"""The HTTP endpoint on ENTITY_SYNC_METRICS_PORT: /metrics, /healthz and /readyz.

/healthz answers 200 while the process serves HTTP (liveness). /readyz answers 200 only when
the broker connection is consuming, the database answers and its schema is at the migration
head; otherwise 503, with the failing checks in a JSON body. The server runs in daemon threads
and opens nothing until started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import orjson
import sqlalchemy as sa
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from entity_sync.store import migrate
from entity_sync.store.engine import ping

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from entity_sync.bootstrap import App

log = structlog.get_logger("entity_sync.health")


@dataclass
class Readiness:
    """The readiness checks of one app, cached briefly so probes and scrapes stay cheap."""

    broker: Callable[[], bool]
    engine: Engine
    cache_seconds: float = 2.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cached: tuple[float, dict[str, str]] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, app: App, cache_seconds: float = 2.0) -> Readiness:
        return cls(app.is_ready, app.engine, cache_seconds)

    def checks(self) -> dict[str, str]:
        """Each check's state: "ok", or why not."""
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.cache_seconds:
                return dict(self._cached[1])
            result = {"broker": "ok" if self.broker() else "not consuming"}
            result.update(self._database())
            self._cached = (now, result)
            return dict(result)

    def ready(self) -> bool:
        return all(v == "ok" for v in self.checks().values())

    def _database(self) -> dict[str, str]:
        try:
            ping(self.engine)
            current = migrate.is_current(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            return {"database": f"unreachable: {(first[0] if first else '')[:200]}"}
        return {
            "database": "ok",
            "migrations": "ok" if current else f"not at head {migrate.head_revision()}",
        }


class HealthServer:
    """Serves the registry and the probes from a daemon thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Callable[[], dict[str, str]],
        *,
        port: int,
        host: str = "0.0.0.0",  # noqa: S104 - probes and scrapes come from outside the container
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}"  # noqa: S104

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health and metrics listening", port=self.port)
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(server.registry), content_type)
            elif path == "/healthz":
                self._send(200, b'{"status":"alive"}\n', "application/json")
            elif path == "/readyz":
                try:
                    checks = server.readiness()
                except Exception as exc:  # noqa: BLE001 - a failing check means not ready
                    checks = {"readiness": f"error: {type(exc).__name__}: {exc}"[:300]}
                ready = all(v == "ok" for v in checks.values())
                body = orjson.dumps({"ready": ready, "checks": checks}) + b"\n"
                self._send(200 if ready else 503, body, "application/json")
            else:
                self._send(404, b'{"error":"not found"}\n', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None  # probes every few seconds would flood the log

    return Handler
