"""The HTTP side of both sandboxes: a threading HTTP server on a background thread, sessions
with a time to live, and fault injection (latency, HTTP 500 bursts, raw responses)."""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, Self, TypedDict, TypeVar

from entity_sync_sandbox.handler import SoapHandler
from entity_sync_sandbox.soap import Request, SoapFault

# The sandboxes' well-known credentials (local development only).
SANDBOX_USER = "sandbox"
SANDBOX_PASSWORD = "sandbox"  # noqa: S105
HTML_500 = (
    b"<html><head><title>500 Internal Server Error</title></head>"
    b"<body><h1>Internal Server Error</h1></body></html>"
)


@dataclass
class Faults:
    """What goes wrong, and how often. Changeable while the sandbox runs."""

    latency_ms: float = 0.0
    fault_rate: float = 0.0  # share of calls answered with an HTML 500 page
    session_ttl: float | None = None  # seconds; None: sessions never expire
    seed: int | None = None
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class ServeOptions(TypedDict, total=False):
    """The keyword options of both `start_*_sandbox` functions (and of the CLI's commands)."""

    port: int  # 0 (the default): a free port
    host: str  # default 127.0.0.1
    username: str  # default SANDBOX_USER
    password: str  # default SANDBOX_PASSWORD
    page_size: int  # records per query/queryMore page, default 2000
    latency_ms: float
    fault_rate: float
    session_ttl: float | None
    rng_seed: int | None
    background: bool  # default True: serve on a thread; False: the caller serves


def faults_of(options: ServeOptions) -> Faults:
    return Faults(
        options.get("latency_ms", 0.0),
        options.get("fault_rate", 0.0),
        options.get("session_ttl"),
        options.get("rng_seed"),
    )


@dataclass(frozen=True)
class RawReply:
    status: int
    body: bytes
    content_type: str


class SessionBook:
    """Session tokens with an expiry time, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[float | None, Any]] = {}

    def open(self, ttl: float | None, owner: Any = None) -> str:
        token = secrets.token_hex(24)
        with self._lock:
            self._sessions[token] = (None if ttl is None else time.monotonic() + ttl, owner)
        return token

    def owner(self, token: str | None) -> Any:
        """The owner of a live session, or KeyError."""
        with self._lock:
            expires, owner = self._sessions[token or ""]
            if expires is not None and time.monotonic() >= expires:
                del self._sessions[token or ""]
                raise KeyError(token)
            return owner

    def expire_all(self) -> None:
        with self._lock:
            self._sessions.clear()


Dispatch = Callable[[Request, str], bytes]
RenderFault = Callable[[SoapFault], bytes]


class SandboxServer:
    """Serves `dispatch(request, base_url) -> response body` over HTTP on a daemon thread; a
    SoapFault raised by dispatch is answered with HTTP 500 and `render_fault(fault)`."""

    def __init__(
        self,
        dispatch: Dispatch,
        render_fault: RenderFault,
        faults: Faults,
        *,
        host: str,
        port: int,
    ) -> None:
        self.faults = faults
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._scripted: list[RawReply] = []
        self._expiry: tuple[int, Callable[[], None]] | None = None
        self._dispatch = dispatch
        self._render_fault = render_fault
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="soap-sandbox",
            daemon=True,
        )
        self.connections = 0  # TCP connections accepted: shows whether clients reuse them

    @property
    def url(self) -> str:
        return f"http://{self._address()}/"

    def _address(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{host.decode() if isinstance(host, bytes) else host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Foreground serving, for the CLI."""
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def script(self, *replies: RawReply) -> None:
        """The next calls get these raw replies, in order, before any normal answer."""
        with self._calls_lock:
            self._scripted.extend(replies)

    def fail_next(self, count: int, status: int = 500) -> None:
        """A burst: the next `count` calls get an HTML error page."""
        self.script(*[RawReply(status, HTML_500, "text/html")] * count)

    def expire_after(self, calls: int, expire: Callable[[], None]) -> None:
        """Run `expire` just before the `calls`-th call from now is answered."""
        with self._calls_lock:
            self._expiry = (calls, expire)

    def total_calls(self, operation: str | None = None) -> int:
        with self._calls_lock:
            return self.calls[operation] if operation else sum(self.calls.values())

    def _count(self, operation: str) -> RawReply | None:
        with self._calls_lock:
            self.calls[operation] += 1
            if self._expiry is not None:
                left, expire = self._expiry
                self._expiry = (left - 1, expire) if left > 1 else None
                if left <= 1:
                    expire()
            if self._scripted:
                return self._scripted.pop(0)
        if self.faults.fault_rate and self.faults.rng.random() < self.faults.fault_rate:
            return RawReply(500, HTML_500, "text/html")
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(SoapHandler):
            sandbox = server

        return Handler


class SandboxState(Protocol):
    faults: Faults
    sessions: SessionBook

    def dispatch(self, request: Request, base_url: str) -> bytes: ...


StateT = TypeVar("StateT", bound=SandboxState)


class SandboxHandle(Generic[StateT]):
    """A running sandbox: `.url`, `.stop()`, `.expire_sessions()`, fault controls."""

    def __init__(self, state: StateT, server: SandboxServer) -> None:
        self.state = state
        self.server = server

    @classmethod
    def serve(cls, state: StateT, render_fault: RenderFault, options: ServeOptions) -> Self:
        """Put `state` behind an HTTP server (`host`, `port` of the options), started in a
        thread unless `background` is False."""
        server = SandboxServer(
            state.dispatch,
            render_fault,
            state.faults,
            host=options.get("host", "127.0.0.1"),
            port=options.get("port", 0),
        )
        if options.get("background", True):
            server.start()
        return cls(state, server)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def faults(self) -> Faults:
        return self.state.faults

    def stop(self) -> None:
        self.server.stop()

    def expire_sessions(self) -> None:
        self.state.sessions.expire_all()

    def expire_sessions_after(self, calls: int) -> None:
        """Sessions expire just before the `calls`-th call from now: mid-sync, deterministic."""
        self.server.expire_after(calls, self.state.sessions.expire_all)

    def script(self, *replies: RawReply) -> None:
        """The next calls get these raw HTTP replies (hostile-response tests)."""
        self.server.script(*replies)

    def fail_next(self, count: int, status: int = 500) -> None:
        self.server.fail_next(count, status)

    def calls(self, operation: str | None = None) -> int:
        return self.server.total_calls(operation)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
