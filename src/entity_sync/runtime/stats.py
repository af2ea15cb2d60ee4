"""What one consumer did since it started: returned by `Worker.run`, read by the health check."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class WorkerStats:
    batches: int = 0
    fates: Counter[str] = field(default_factory=Counter)  # keys: ack_policy.Fate
    published: int = 0
    reconnects: int = 0
    db_waits: int = 0
    lock_wait_seconds: float = 0.0
    contention_retries: int = 0
    consuming_since: float = 0.0  # time.monotonic() when consuming began
    last_batch_at: float = 0.0  # time.monotonic() when the last batch was acked
