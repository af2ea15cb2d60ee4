"""Why a target entity holds or lacks an object: its copies, the source, the decisions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from entity_sync.handlers.errors import EntitySyncError
from entity_sync.operations.context import Operations
from entity_sync.store import queries


class NotFound(EntitySyncError):
    reason = "not_found"


@dataclass
class Explanation:
    target: str
    object_id: str
    copies: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # decisions, oldest first
    source: list[dict[str, Any]] = field(default_factory=list)
    connections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seen(self) -> bool:
        return bool(self.source or self.history)

    def holds(self) -> list[str]:
        return [
            f"{self.target} holds {c['object_type']} {self.object_id} as "
            f"{c['target_object_id']} at version {c['version']} "
            f"(connection {c['connection_id']}, {c['status']})"
            for c in self.copies
        ]

    def lacks(self) -> str | None:
        """Why the target holds no copy (None when it holds one)."""
        if self.copies:
            return None
        last = next((h for h in reversed(self.history) if h["target_entity"] == self.target), None)
        why = f"{last['decision']} ({last['reason']}): {last['message']}" if last else None
        return f"{self.target} does not hold {self.object_id}: {why or self._connection_reason()}"

    def _connection_reason(self) -> str:
        """Why a target was never offered anything, from its connections (newest last)."""
        if not self.connections:
            return (
                "it has no connection to the global entity; only connected targets receive objects"
            )
        latest = self.connections[-1]
        return (
            f"its connection {latest['connection_id']} is {latest['status']}; only connected "
            "targets receive objects"
        )

    def as_json(self) -> dict[str, Any]:
        return {"copies": self.copies, "history": self.history, "source": self.source}


def explain(ops: Operations, target: str, object_id: str) -> Explanation:
    engine = ops.engine
    known = {e["entity_id"] for e in queries.entities(engine)}
    if target not in known:
        raise NotFound(f"no entity {target!r} is known")
    return Explanation(
        target=target,
        object_id=object_id,
        copies=queries.copies_in(engine, target, object_id),
        history=queries.history(engine, target, object_id),
        source=queries.source(engine, object_id),
        connections=[c for c in queries.connections(engine) if c["target_entity"] == target],
    )


def known_entities(ops: Operations) -> list[dict[str, Any]]:
    return queries.entities(ops.engine)
