"""A registry of observer callbacks, for metrics hooks that must never break the caller."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, ParamSpec

import structlog

P = ParamSpec("P")
log = structlog.get_logger(__name__)


class Hooks(Generic[P]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._observers: tuple[Callable[P, None], ...] = ()

    def subscribe(self, observer: Callable[P, None]) -> Callable[[], None]:
        """Call `observer` on every `emit`; returns the function that unsubscribes it."""
        with self._lock:
            self._observers = (*self._observers, observer)

        def unsubscribe() -> None:
            with self._lock:
                self._observers = tuple(o for o in self._observers if o is not observer)

        return unsubscribe

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for observer in self._observers:  # a snapshot: subscribing never blocks emitting
            try:
                observer(*args, **kwargs)
            except Exception:
                log.warning("observer failed", hook=self.name, exc_info=True)
