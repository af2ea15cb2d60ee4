"""Replays and purges started from the console run in a thread; their history entry shows
their progress (store/audit.py), so a page can follow one while it runs."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from entity_sync.operations.replay import MoveResult

log = structlog.get_logger("entity_sync.console")

Action = Callable[[Callable[[MoveResult], None]], MoveResult]


class Jobs:
    def __init__(self, start_timeout: float = 30.0) -> None:
        self.start_timeout = start_timeout
        self._threads: list[threading.Thread] = []
        self.stopping = threading.Event()  # set at shutdown: actions stop between messages

    def start(self, action: Action) -> int:
        """Run `action(on_step)` in a thread; returns its history id once it has one."""
        started = threading.Event()
        box: dict[str, object] = {}

        def step(result: MoveResult) -> None:
            box["id"] = result.history_id
            started.set()

        def run() -> None:
            try:
                action(step)
            except Exception as exc:  # noqa: BLE001 - recorded in the history entry and logged
                box["error"] = exc
                log.error("console job failed", error=f"{type(exc).__name__}: {exc}"[:300])
            finally:
                started.set()

        thread = threading.Thread(target=run, name="console-job", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        started.wait(self.start_timeout)
        if "id" not in box:
            error = box.get("error")
            if isinstance(error, Exception):
                raise error
            raise TimeoutError("the action did not start in time")
        return int(str(box["id"]))

    def stop(self, timeout: float) -> None:
        """Ask running actions to stop between two messages, and wait for them."""
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout)
