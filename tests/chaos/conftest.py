"""Private RabbitMQ and PostgreSQL instances for the chaos suite.

The chaos tests kill and restart services, so they never touch the shared ones: a second
RabbitMQ node (its own node name, ports, mnesia and logs under a temp dir) and a private
PostgreSQL cluster (initdb + pg_ctl as the postgres user) on free ports. Missing tools skip
locally and FAIL under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.chaos.servers import (
    PG_BIN,
    RABBIT_BIN,
    PrivateCluster,
    PrivatePostgres,
    PrivateRabbit,
    _as,
    _cluster_env,
    _free_port,
    _missing,
    _node_env,
    _stop_or_kill,
)


@pytest.fixture(scope="session")
def private_rabbit() -> Iterator[PrivateRabbit]:
    if not (RABBIT_BIN / "rabbitmq-server").exists() or shutil.which("runuser") is None:
        _missing(f"RabbitMQ in {RABBIT_BIN} and runuser")
    base = Path(tempfile.mkdtemp(prefix="es-chaos-rabbit-"))
    port = _free_port()
    node = f"es-chaos-{os.getpid()}@localhost"
    env = _node_env(base, node, port, "vm_memory_high_watermark.relative = 0.6\n")
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


@pytest.fixture(scope="session")
def rabbit_cluster() -> Iterator[PrivateCluster]:
    """A 3-node RabbitMQ cluster for the session (about 30 s to boot on 2 cores)."""
    if not (RABBIT_BIN / "rabbitmq-server").exists() or shutil.which("runuser") is None:
        _missing(f"RabbitMQ in {RABBIT_BIN} and runuser")
    base = Path(tempfile.mkdtemp(prefix="es-chaos-cluster-"))
    nodes = []
    for name in ("c1", "c2", "c3"):
        env, port = _cluster_env(base, name)
        nodes.append(PrivateRabbit(env["RABBITMQ_NODENAME"], port, env))
    for path in (base, *base.rglob("*")):
        shutil.chown(path, "rabbitmq", "rabbitmq")
    base.chmod(0o755)
    cluster = PrivateCluster(nodes)
    try:
        with ThreadPoolExecutor(len(nodes)) as pool:  # boot side by side, raise if one fails
            list(pool.map(PrivateRabbit.start, nodes))
        for node in nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", nodes[0].node)
            node.ctl("start_app")
        status = json.loads(cluster.ctl("cluster_status", "--formatter", "json"))
        assert sorted(status["running_nodes"]) == sorted(n.node for n in nodes), status
        yield cluster
    finally:
        failed = [node.node for node in cluster.running() if not _stop_or_kill(node)]
        shutil.rmtree(base, ignore_errors=True)
        assert not failed, f"nodes that did not stop and were killed: {failed}"


@pytest.fixture
def cluster(rabbit_cluster: PrivateCluster) -> PrivateCluster:
    """The session's cluster with all three nodes running (a test before may have stopped one)."""
    rabbit_cluster.start_stopped()
    return rabbit_cluster
