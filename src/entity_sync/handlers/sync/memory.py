"""In-memory SyncLocks and SyncStore, for tests, the benchmark and single-process use."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from entity_sync.schemas.inputs import SyncRequest


class InMemorySyncLocks:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, float] = {}  # key -> expires at

    def try_acquire(self, key: str, *, ttl_seconds: float) -> bool:
        now = self._clock()
        with self._lock:
            expires = self._held.get(key)
            if expires is not None and expires > now:
                return False
            self._held[key] = now + ttl_seconds
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def held(self) -> set[str]:
        with self._lock:
            return set(self._held)


class InMemorySyncStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sessions: list[tuple[dict[str, Any], SyncRequest]] = []

    def save(self, completed: Mapping[str, Any], *, request: SyncRequest) -> None:
        with self._lock:
            self.sessions.append((copy.deepcopy(dict(completed)), request))

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(c) for c, _ in reversed(self.sessions[-limit:])]
