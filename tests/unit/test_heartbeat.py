"""The heartbeat helper: beats while the loop thread is busy and never outside, one thread per
connection however many batches, gone with its connection. A fake connection records beats."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from entity_sync.runtime import heartbeat
from tests.support.waiting import wait_for

INTERVAL = 1.5  # the helper beats every interval / 3 = 0.5 s while busy


class FakeAmqp:
    def __init__(self) -> None:
        self.beats_while_busy = 0
        self.beats_while_idle = 0
        self.busy = False  # set by the test around while_busy
        self.prev_recv: object = object()

    def send_heartbeat(self) -> None:
        if self.busy:
            self.beats_while_busy += 1
        else:
            self.beats_while_idle += 1


class FakeKombu:
    """What while_busy reads of a kombu connection."""

    def __init__(self) -> None:
        self.connection = FakeAmqp()
        self.transport: Any = type("T", (), {"driver_type": "amqp"})()


def _helpers() -> set[threading.Thread]:
    """The helper threads alive now. Tests compare sets, not counts: a helper of an earlier
    test ends at its next wake-up after its connection is gone, at any moment of a later one."""
    return {t for t in threading.enumerate() if t.name == "heartbeat"}


def test_beats_only_while_busy_with_one_thread_for_many_batches() -> None:
    before = _helpers()
    conn = FakeKombu()
    amqp = conn.connection
    for _ in range(50):  # short batches: the same helper each time
        with heartbeat.while_busy(conn, INTERVAL):  # type: ignore[arg-type]
            pass
    assert len(_helpers() - before) == 1
    amqp.busy = True
    with heartbeat.while_busy(conn, INTERVAL):  # type: ignore[arg-type]
        wait_for(lambda: amqp.beats_while_busy >= 2, timeout=10, what="beats while busy")
    amqp.busy = False  # a beat from here on is one the helper sent after the batch
    assert amqp.prev_recv is None  # the client-side check counts from the end of the batch
    # More than two periods idle: no beat may come (the window ends early on one).
    idle_until = time.monotonic() + 1.2
    wait_for(
        lambda: amqp.beats_while_idle > 0 or time.monotonic() >= idle_until,
        timeout=10,
        what="two idle periods",
    )
    assert amqp.beats_while_idle == 0


def test_the_helper_ends_with_its_connection() -> None:
    before = _helpers()
    conn = FakeKombu()
    with heartbeat.while_busy(conn, INTERVAL):  # type: ignore[arg-type]
        pass
    (helper,) = _helpers() - before
    del conn
    gc.collect()
    wait_for(lambda: not helper.is_alive(), timeout=10, what="the helper thread to end")
