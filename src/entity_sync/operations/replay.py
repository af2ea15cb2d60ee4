"""Replay and purge of stored failed messages, with history, pacing, progress and a canary."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from kombu.connection import Connection

from entity_sync.operations.context import Operations
from entity_sync.operations.ingest import ingest
from entity_sync.operations.letters import DeadLetter, from_row
from entity_sync.runtime import republish
from entity_sync.runtime.broker import ConfirmingPublisher
from entity_sync.runtime.topology import is_rabbitmq
from entity_sync.store import audit, failed
from entity_sync.store.failed import Filter

log = structlog.get_logger("entity_sync.dlq")
PROGRESS_EVERY = 0.5  # seconds between progress writes to the history row


@dataclass(frozen=True, slots=True)
class Canary:
    """Send one message first and wait for its outcome before the rest."""

    timeout: float = 30.0
    poll: float = 0.2


@dataclass(frozen=True, slots=True)
class Plan:
    """How to act on the selection: count only, at most `limit`, paced, canary first."""

    dry_run: bool = False
    limit: int | None = None
    rate: float | None = None  # messages per second
    canary: Canary | None = None
    cancel: Callable[[], bool] | None = None  # true: stop between two messages


@dataclass
class MoveResult:
    matched: int = 0  # distinct messages selected
    moved: int = 0
    skipped: int = 0  # open messages of the same queues not selected
    merged: int = 0  # extra broker copies of the moved messages
    moved_ids: list[str] = field(default_factory=list)
    history_id: int = 0
    status: str = "finished"  # finished | stopped
    note: str = ""


class Mover:
    def __init__(
        self,
        ops: Operations,
        action: str,
        flt: Filter,
        on_step: Callable[[MoveResult], None] | None = None,
    ) -> None:
        self.ops = ops
        self.action = action
        self.flt = flt
        self.on_step = on_step
        self.messages: list[list[str]] = []
        self.result = MoveResult()
        self._last = 0.0

    def run(self, plan: Plan) -> MoveResult:
        rows = failed.rows(self.ops.engine, self.flt, plan.limit)
        result = self.result
        result.matched = len(rows)
        result.merged = sum(r["copies"] - 1 for r in rows)
        same_queues = Filter(queues=self.flt.queues) if self.flt.queues else Filter()
        result.skipped = failed.count(self.ops.engine, same_queues) - len(rows)
        result.history_id = audit.start(
            self.ops.engine,
            audit.Entry(
                actor=self.ops.actor,
                via=self.ops.via,
                action=self.action,
                scope=_scope(self.flt, plan),
                dry_run=plan.dry_run,
                selected=len(rows),
            ),
        )
        if self.on_step is not None:
            self.on_step(result)  # started: the history entry exists, nothing moved yet
        if plan.dry_run:
            self._record("finished")
            return result
        try:
            self._move([from_row(r) for r in rows], plan)
        except BaseException as exc:
            self._record("failed", f"{type(exc).__name__}: {str(exc)[:200]}")
            raise
        self._record(result.status, result.note or None)
        return result

    def _move(self, letters: list[DeadLetter], plan: Plan) -> None:
        if self.action == "purge":
            for letter in letters:
                if self._cancelled(plan):
                    return
                self._done(letter, None)
            return
        with self.ops.broker(retries=3) as conn:
            publisher = ConfirmingPublisher(conn)
            conn_user = getattr(conn, "userid", None) if is_rabbitmq(conn) else None
            try:
                for i, letter in enumerate(letters):
                    if self._cancelled(plan):
                        return
                    # The broker confirmed the copy before the row is marked replayed.
                    publisher.publish_many([republish.replayed(letter, self.ops.actor, conn_user)])
                    self._done(letter, letter.original_queue)
                    canary = plan.canary if i == 0 and len(letters) > 1 else None
                    if canary and not self._canary_ok(conn, letter, canary):
                        return
                    if plan.rate:
                        time.sleep(1.0 / plan.rate)  # pacing the replay, not synchronisation
            finally:
                publisher.close()

    def _cancelled(self, plan: Plan) -> bool:
        """Asked to stop (the console shutting down): stop between two messages."""
        if plan.cancel is not None and plan.cancel():
            self._stop("stopped before the end: the console was shut down")
            return True
        return False

    def _done(self, letter: DeadLetter, to: str | None) -> None:
        status = "replayed" if to else "purged"
        failed.resolve(self.ops.engine, [(letter.queue, letter.id)], status, self.ops.actor)
        self.result.moved += 1
        self.result.moved_ids.append(letter.id)
        self.messages.append([letter.queue, letter.id, to or ""])
        log.info(
            "dlq " + status,
            queue=letter.queue,
            to=to,
            id=letter.id,
            error_type=letter.error_type,
            by=self.ops.actor,
        )
        if self.on_step is not None:
            self.on_step(self.result)
        if self.result.moved == 1 or time.monotonic() - self._last >= PROGRESS_EVERY:
            self._record("running")

    def _canary_ok(self, conn: Connection, letter: DeadLetter, canary: Canary) -> bool:
        """Applied (its event id processed): go on. Failed again, or no outcome: stop."""
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        deadline = time.monotonic() + canary.timeout
        while time.monotonic() < deadline:
            if failed.was_processed(self.ops.engine, letter.id):
                return True
            ingest(conn, self.ops.engine, letter.queue)
            if failed.failed_since(self.ops.engine, letter.queue, letter.id, since):
                return self._stop(f"canary {letter.id} failed again; the rest was not sent")
            time.sleep(canary.poll)  # waiting for the worker, bounded by the deadline
        return self._stop(f"canary {letter.id}: no outcome in {canary.timeout:.0f}s; stopped")

    def _stop(self, note: str) -> bool:
        self.result.status = "stopped"
        self.result.note = note
        return False

    def _record(self, status: str, note: str | None = None) -> None:
        self._last = time.monotonic()
        audit.update(
            self.ops.engine,
            self.result.history_id,
            audit.Progress(self.result.moved, self.messages, status, note),
        )


def _scope(flt: Filter, plan: Plan) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "queues": list(flt.queues),
        "groups": list(flt.groups),
        "ids": list(flt.ids),
        "text": flt.text,
        "since": flt.since.isoformat() if flt.since else None,
        "until": flt.until.isoformat() if flt.until else None,
        "limit": plan.limit,
        "rate": plan.rate,
        "canary": plan.canary is not None,
    }
    return {k: v for k, v in scope.items() if v not in (None, "", [], False)}
