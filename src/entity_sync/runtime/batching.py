"""Deliveries in hand, taken as a batch when it is full or its first one has waited the linger."""

from __future__ import annotations

import contextlib
import time

from kombu.connection import Connection

from entity_sync.runtime.delivery import Delivery


class Buffer:
    def __init__(self, size: int, linger: float) -> None:
        self.size = size
        self.linger = linger  # seconds
        self._items: list[Delivery] = []
        self._first_at = 0.0  # time.monotonic() when the oldest delivery in hand came
        self._last_at = time.monotonic()  # ... when the newest came

    def __len__(self) -> int:
        return len(self._items)

    def append(self, delivery: Delivery) -> None:
        self._items.append(delivery)

    def fill(self, conn: Connection) -> None:
        """Read from the broker for up to the linger, unless a full batch is in hand."""
        before = len(self._items)
        if before >= self.size:
            return
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=self.linger or 0.01)
        if len(self._items) > before:
            self._last_at = time.monotonic()
            if before == 0:
                self._first_at = self._last_at

    def due(self) -> bool:
        """A batch is ready: full, or its oldest delivery has waited the linger."""
        if not self._items:
            return False
        return len(self._items) >= self.size or time.monotonic() - self._first_at >= self.linger

    def take(self) -> list[Delivery]:
        batch = self._items[: self.size]
        del self._items[: self.size]
        self._first_at = time.monotonic()
        return batch

    def idle_for(self) -> float:
        """Seconds since the last delivery came."""
        return time.monotonic() - self._last_at
