"""Reaching the real services, and cleaning up after a test."""

from __future__ import annotations

import contextlib
import os
import socket
from typing import NoReturn
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from kombu.connection import Connection


def _host_port(url: str) -> tuple[str, int]:
    if url.startswith("amqp"):
        conn = Connection(url)
        return conn.hostname or "127.0.0.1", int(conn.port or 5672)
    parsed = sa.engine.make_url(url)
    return parsed.host or "127.0.0.1", int(parsed.port or 5432)


def unavailable(message: str) -> NoReturn:
    """Something a test needs is missing: a failure under CI=true, a skip on a developer's box."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require(url: str, what: str) -> None:
    host, port = _host_port(url)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        unavailable(f"{what} is not reachable at {host}:{port} ({exc}); .ci/run starts it")


def with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def delete_topology(broker_url: str, prefix: str) -> None:
    """Delete every queue and exchange a test declared under its prefix."""
    from entity_sync.config import Settings
    from entity_sync.runtime.retry import delay_queues
    from entity_sync.runtime.topology import Names

    names = Names(prefix)
    queues = [names.unrouted, *names.bindings()]
    queues += [Names.dlq(q) for q in names.bindings()]
    queues += [f"{prefix}.test-out", f"{prefix}.test-out-2"]
    # Delay queues: the configured schedule plus the short ones tests configure. Every queue a
    # test leaves behind holds file handles in RabbitMQ; a few hundred exhaust a 1024 limit.
    delays = {d for ds in delay_queues(Settings(prefix=prefix)).values() for d in ds}
    delays |= {1, 2, 3, 5, 10, 30, 60, 120, 300, 600}
    queues += [Names.retry_queue(q, d) for q in names.bindings() for d in sorted(delays)]
    with Connection(broker_url) as conn:
        channel = conn.channel()
        for queue in queues:
            with contextlib.suppress(Exception):
                channel.queue_delete(queue)
            if channel.is_open is False:
                channel = conn.channel()
        for exchange in (names.in_exchange, names.out_exchange, names.unrouted):
            with contextlib.suppress(Exception):
                channel.exchange_delete(exchange)
            if channel.is_open is False:
                channel = conn.channel()
