"""The console ingests the DLQs in the background too, so a page is rarely the first reader."""

from __future__ import annotations

import threading

import structlog

from entity_sync.operations import dlq as core
from entity_sync.operations.context import Operations

log = structlog.get_logger("entity_sync.console")


class Ingestor:
    def __init__(self, ops: Operations, every: float) -> None:
        self.ops = ops
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-ingest", daemon=True)

    def start(self) -> Ingestor:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                core.refresh(self.ops, self.ops.dlqs())
            except Exception as exc:  # noqa: BLE001 - a broker or database outage: try later
                log.warning("console ingest failed", error=f"{type(exc).__name__}: {exc}"[:300])
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
