"""Keeping a broker connection alive while the loop thread waits or works elsewhere."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from kombu.connection import Connection

from entity_sync.runtime.topology import is_rabbitmq


def wait(seconds: float, conn: Connection | None, stopping: Callable[[], bool]) -> None:
    """Sleep in small steps: stay stoppable and keep heartbeats flowing both ways.

    With a connection, the wait reads from it (heartbeats, confirms; deliveries join the
    buffer for later), so a long database outage does not look like a dead broker.
    """
    deadline = time.monotonic() + seconds
    while not stopping() and time.monotonic() < deadline:
        step = min(0.1, max(0.0, deadline - time.monotonic()))
        if conn is None:
            time.sleep(step)
            continue
        conn.heartbeat_check()
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=max(step, 0.01))


@contextlib.contextmanager
def while_busy(conn: Connection, interval: float) -> Iterator[None]:
    """Send heartbeats from a helper thread while the loop thread is in the database.

    py-amqp only sends heartbeats when asked; a batch that waits long for a lock would let
    the broker close the connection. The loop thread does not touch the connection inside
    this block, so the helper is its only user. Afterwards the client-side check restarts
    its clock: the broker's heartbeats of that time are unread, not missing.
    """
    amqp_conn = getattr(conn, "connection", None)
    if not interval or not is_rabbitmq(conn) or amqp_conn is None:
        yield
        return
    done = threading.Event()

    def beat() -> None:
        while not done.wait(max(interval / 3, 0.5)):
            try:
                amqp_conn.send_heartbeat()
            except Exception:  # noqa: BLE001 - the loop thread sees the dead connection
                return

    helper = threading.Thread(target=beat, name="heartbeat", daemon=True)
    helper.start()
    try:
        yield
    finally:
        done.set()
        helper.join()
        amqp_conn.prev_recv = None  # count from now, see the docstring
