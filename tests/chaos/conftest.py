"""Private RabbitMQ and PostgreSQL instances for the chaos suite.

The chaos tests kill and restart services, so they never touch the shared ones: a second
RabbitMQ node (its own node name, ports, mnesia and logs under a temp dir) and a private
PostgreSQL cluster (initdb + pg_ctl as the postgres user) on free ports. Missing tools skip
locally and FAIL under CI=true.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_BIN = Path(os.environ.get("ENTITY_SYNC_PG_BIN", "/usr/lib/postgresql/15/bin"))
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def _missing(what: str) -> None:
    message = f"chaos suite needs {what}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, up: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            if up:
                return
        except OSError:
            if not up:
                return
        time.sleep(0.2)
    raise AssertionError(f"port {port} not {'up' if up else 'down'} after {timeout}s")


def _as(user: str, *cmd: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    full = ["runuser", "-u", user, "--", *cmd]
    done = subprocess.run(full, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return done.stdout


@dataclass
class PrivateRabbit:
    node: str
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def ctl(self, *args: str, timeout: float = 120) -> str:
        return _as(
            "rabbitmq", str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args,
            env=self.env, timeout=timeout,
        )  # fmt: skip

    def start(self) -> None:
        # In the foreground, in its own session: this test owns the process and its end.
        log = (Path(self.env["RABBITMQ_LOG_BASE"]).parent / "server.out").open("ab")
        self.proc = subprocess.Popen(
            ["runuser", "-u", "rabbitmq", "--", str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_port(self.port, up=True, timeout=120)
        self.ctl("await_startup", "--timeout", "120", timeout=150)

    def stop(self) -> None:
        self.ctl("stop")
        _wait_port(self.port, up=False, timeout=60)
        if self.proc is not None:
            self.proc.wait(timeout=60)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class PrivatePostgres:
    data: Path
    port: int
    socket_dir: Path

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def pg_ctl(self, *args: str) -> None:
        _as("postgres", str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-o", opts, "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "immediate", "-w", "stop")

    def new_database(self) -> str:
        name = f"chaos_{uuid.uuid4().hex[:8]}"
        engine = sa.create_engine(self.admin_url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.admin_url(name)


@pytest.fixture(scope="session")
def private_rabbit() -> Iterator[PrivateRabbit]:
    if not (RABBIT_BIN / "rabbitmq-server").exists() or shutil.which("runuser") is None:
        _missing(f"RabbitMQ in {RABBIT_BIN} and runuser")
    base = Path(tempfile.mkdtemp(prefix="es-chaos-rabbit-"))
    port = _free_port()
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.local = 127.0.0.1:{port}\nvm_memory_high_watermark.relative = 0.6\n"
    )
    (base / "enabled_plugins").write_text("[].\n")
    node = f"es-chaos-{os.getpid()}@localhost"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/var/lib/rabbitmq",
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(_free_port()),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(base / "node.pid"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
    shutil.chown(base, "rabbitmq", "rabbitmq")
    base.chmod(0o755)
    rabbit = PrivateRabbit(node, port, env)
    rabbit.start()
    try:
        yield rabbit
    finally:
        try:
            rabbit.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
        _missing(f"PostgreSQL binaries in {PG_BIN} and runuser")
    base = Path(tempfile.mkdtemp(prefix="es-chaos-pg-"))
    shutil.chown(base, "postgres", "postgres")
    data = base / "data"
    _as("postgres", str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    pg = PrivatePostgres(data, _free_port(), base)
    pg.start()
    try:
        yield pg
    finally:
        try:
            pg.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)
