"""Private RabbitMQ nodes, a RabbitMQ cluster and a PostgreSQL cluster for the chaos suite
(the fixtures that start them are in conftest.py): their own ports, data and logs under a
temp dir, started, stopped and restarted by the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Protocol

import pika
import sqlalchemy as sa

from tests.support.amqp import pika_params
from tests.support.services import unavailable
from tests.support.waiting import wait_for

PG_BIN = Path(os.environ.get("ENTITY_SYNC_PG_BIN", "/usr/lib/postgresql/15/bin"))


RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def _missing(what: str) -> NoReturn:
    unavailable(f"chaos suite needs {what}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, up: bool, timeout: float) -> None:
    def reached() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return not up
        return up

    wait_for(reached, timeout, f"port {port} {'up' if up else 'down'}")


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


class AmqpBroker(Protocol):
    """What a chaos run needs of a broker: the URL the worker gets (a `;` list for a cluster)."""

    @property
    def url(self) -> str: ...


@dataclass
class PrivateCluster:
    """Three private RabbitMQ nodes clustered together; each one a `PrivateRabbit`."""

    nodes: list[PrivateRabbit]

    @property
    def url(self) -> str:
        """Every node, in kombu's failover syntax (`amqp://a;amqp://b;amqp://c`)."""
        return self.url_from(*self.nodes)

    @staticmethod
    def url_from(*nodes: PrivateRabbit) -> str:
        return ";".join(node.url for node in nodes)

    def running(self) -> list[PrivateRabbit]:
        return [node for node in self.nodes if node.proc is not None]

    def ctl(self, *args: str) -> str:
        """rabbitmqctl on any running node (cluster-wide commands)."""
        return self.running()[0].ctl(*args)

    def start_stopped(self) -> None:
        """Start the nodes a test stopped; they rejoin the cluster from their own mnesia."""
        for node in self.nodes:
            if node.proc is None:
                node.start()

    def label(self, node: PrivateRabbit) -> str:
        """c1, c2 or c3."""
        return f"c{self.nodes.index(node) + 1}"

    def node_on_port(self, port: int) -> PrivateRabbit:
        return next(node for node in self.nodes if node.port == port)

    def leader(self, queue: str) -> PrivateRabbit:
        """The node holding the leader of a quorum queue."""
        listed = self.ctl("list_queues", "-q", "--no-table-headers", "name", "leader")
        for line in listed.splitlines():
            name, _, leader = line.strip().partition("\t")
            if name == queue:
                return next(node for node in self.nodes if node.node == leader.strip())
        raise AssertionError(f"queue {queue} not found on the cluster")

    def client_ports(self, product: str = "py-amqp") -> list[int]:
        """The server port (so the node) of every connection whose client is `product`."""
        out = self.ctl("list_connections", "-q", "--no-table-headers", "port", "client_properties")
        return [
            int(line.split("\t", 1)[0])
            for line in out.splitlines()
            if f'{{"product","{product}"}}' in line
        ]

    def delete_prefix(self, prefix: str) -> None:
        """Delete every queue and exchange of a test (names starting with `prefix`)."""
        queues = self.ctl("list_queues", "-q", "--no-table-headers", "name").split()
        exchanges = self.ctl("list_exchanges", "-q", "--no-table-headers", "name").split()
        with pika.BlockingConnection(pika_params(self.url)) as conn:
            channel = conn.channel()
            for queue in (q for q in queues if q.startswith(prefix)):
                channel.queue_delete(queue)
            for exchange in (e for e in exchanges if e.startswith(prefix)):
                channel.exchange_delete(exchange)


def _node_env(home: Path, node: str, port: int, config: str = "") -> dict[str, str]:
    """Writes one private node's config files into `home`; returns its environment: its own
    name, ports, config file and directories (one Erlang cookie for every node: HOME)."""
    (home / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{port}\n{config}")
    (home / "enabled_plugins").write_text("[].\n")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/var/lib/rabbitmq",  # the same Erlang cookie for every node
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(_free_port()),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_PID_FILE": str(home / "node.pid"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }


def _cluster_env(base: Path, name: str) -> tuple[dict[str, str], int]:
    """The environment of one cluster node, in its own folder under `base`."""
    port = _free_port()
    home = base / name
    home.mkdir()
    return _node_env(home, f"es-chaos-{name}-{os.getpid()}@localhost", port), port


def _stop_or_kill(node: PrivateRabbit) -> bool:
    """Stop a node this session started; if it does not stop, kill its process group."""
    try:
        node.stop()
        return True
    except (AssertionError, subprocess.TimeoutExpired):
        if node.proc is not None:
            os.killpg(node.proc.pid, signal.SIGKILL)  # its own session: the node and its CLI
            node.proc.wait(timeout=60)
            node.proc = None
        return False
