"""What one batch (or one bulk chunk) leaves to do: messages to publish, rows to clean, counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from entity_sync.handlers.sharing.model import Output
from entity_sync.runtime.broker import OutMessage


@dataclass
class BatchResult:
    publish: list[OutMessage] = field(default_factory=list)  # outputs, dead letters, retries
    outbox_ids: list[int] = field(default_factory=list)  # batch rows: delete once confirmed
    fates: Counter[str] = field(default_factory=Counter)  # keys: ack_policy.Fate
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (queue, reason)
    retries: Counter[tuple[str, str]] = field(default_factory=Counter)  # (queue, reason)
    outputs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (target, object_type)
    exceptions: Counter[str] = field(default_factory=Counter)  # share.exception reason
    lock_wait_seconds: float = 0.0  # waited for the state locks (src/entity_sync/store/engine.py)
    jobs_created: int = 0  # bulk fan-outs recorded by this batch (src/entity_sync/runtime/bulk.py)

    def count_outputs(self, outputs: list[Output]) -> None:
        """Count target updates by (target, type) and share exceptions by reason."""
        for out in outputs:
            if out.kind == "share_exception":
                self.exceptions[str(out.body["reason"])] += 1
            else:
                self.outputs[(str(out.body["target_entity"]), str(out.body["object_type"]))] += 1

    def merge(self, other: BatchResult) -> None:
        self.publish.extend(other.publish)
        self.outbox_ids.extend(other.outbox_ids)
        self.fates.update(other.fates)
        self.dead_letters.update(other.dead_letters)
        self.retries.update(other.retries)
        self.outputs.update(other.outputs)
        self.exceptions.update(other.exceptions)
        self.lock_wait_seconds += other.lock_wait_seconds
        self.jobs_created += other.jobs_created
