"""What the consumer loop reports as it runs; metrics implement this, tests may record it.

Calls happen on the consumer thread, once per batch (never per message), so an observer may
do a little work but must not block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from entity_sync.runtime.batch import BatchResult
    from entity_sync.runtime.delivery import Delivery


class Observer(Protocol):
    def batch_acked(self, batch: list[Delivery], result: BatchResult, seconds: float) -> None:
        """A batch is committed, its outputs confirmed and its deliveries acked.

        `seconds` is the handling time from taking the batch to its ack.
        """

    def connection_changed(self, up: bool) -> None:
        """The broker connection came up (consuming) or went down."""

    def database_waiting(self, seconds: float) -> None:
        """The database is unreachable; the batch in hand waits this long before a retry."""

    def bulk_chunk(self, kind: str, objects: int, counts: BatchResult, seconds: float) -> None:
        """A chunk of a bulk fan-out (backfill, release) is committed and its outputs confirmed;
        `counts` has its target updates and share exceptions."""


class NullObserver:
    def batch_acked(self, batch: list[Delivery], result: BatchResult, seconds: float) -> None:
        return None

    def connection_changed(self, up: bool) -> None:
        return None

    def database_waiting(self, seconds: float) -> None:
        return None

    def bulk_chunk(self, kind: str, objects: int, counts: BatchResult, seconds: float) -> None:
        return None
