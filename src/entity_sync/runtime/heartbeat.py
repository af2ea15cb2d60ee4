"""Keeping a broker connection alive while the loop thread waits or works elsewhere."""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

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


class _Helper:
    """The heartbeat thread of one AMQP connection: wakes every period, beats if the loop
    thread is busy.

    One thread for the connection's life, not one per batch: starting and joining a thread
    around each batch cost about 3% of the loop at 1 target (py-spy). It holds the connection
    weakly and ends once the connection is gone.
    """

    def __init__(self, amqp_conn: Any, interval: float) -> None:
        self._conn = weakref.ref(amqp_conn)
        self._period = max(interval / 3, 0.5)
        self._cond = threading.Condition()
        self._busy = False
        threading.Thread(target=self._run, name="heartbeat", daemon=True).start()

    def set_busy(self, busy: bool) -> None:
        """After `set_busy(False)` returns, the helper leaves the connection alone: it sends
        only while holding the lock and seeing busy."""
        with self._cond:
            self._busy = busy

    def _run(self) -> None:
        with self._cond:
            while True:
                self._cond.wait(self._period)  # releases the lock while waiting
                conn = self._conn()
                if conn is None:
                    return
                if self._busy:
                    try:
                        conn.send_heartbeat()
                    except Exception:  # noqa: BLE001 - the loop thread sees the dead connection
                        return
                del conn


_helpers: weakref.WeakKeyDictionary[Any, _Helper] = weakref.WeakKeyDictionary()
_helpers_lock = threading.Lock()


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
    with _helpers_lock:
        helper = _helpers.get(amqp_conn)
        if helper is None:
            helper = _helpers[amqp_conn] = _Helper(amqp_conn, interval)
    helper.set_busy(True)
    try:
        yield
    finally:
        helper.set_busy(False)
        amqp_conn.prev_recv = None  # count from now, see the docstring
