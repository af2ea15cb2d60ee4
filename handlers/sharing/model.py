"""Domain records of the sharing state. Plain, mutable dataclasses; no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

ConnectionStatus = Literal["pending", "connected", "denied", "disconnected"]
Acceptance = Literal["auto_accept", "dont_accept"]

# What an operator reads in the decision log (rule 9).
DecisionKind = Literal[
    "sent", "unchanged", "stale", "not_accepted", "blocked", "rejected", "connection", "setting"
]

TYPE_ORDER: dict[str, int] = {
    "product": 0,
    "product_rate_plan": 1,
    "product_rate_plan_charge": 2,
    "accounting_period": 3,
}
PRODUCT_TYPES = frozenset({"product", "product_rate_plan", "product_rate_plan_charge"})

SourceKey = tuple[str, str]  # (object_type, object_id)
CopyKey = tuple[str, str, str]  # (connection_id, object_type, source_object_id)


@dataclass(slots=True)
class Entity:
    entity_id: str
    name: str
    display_name: str | None
    parent_id: str | None
    is_global: bool
    earliest_activity_date: dt.date | None
    has_own_accounting_periods: bool
    active_currencies: tuple[str, ...]


@dataclass(slots=True)
class Connection:
    connection_id: str
    source_entity: str
    target_entity: str
    status: ConnectionStatus


@dataclass(slots=True)
class SourceObject:
    object_type: str
    object_id: str
    parent_id: str | None
    version: int
    data: dict[str, Any]
    event_id: str

    @property
    def key(self) -> SourceKey:
        return (self.object_type, self.object_id)


@dataclass(slots=True)
class Copy:
    connection_id: str
    target_entity: str
    object_type: str
    source_object_id: str
    target_object_id: str
    target_parent_id: str | None
    version: int
    data: dict[str, Any]

    @property
    def key(self) -> CopyKey:
        return (self.connection_id, self.object_type, self.source_object_id)


@dataclass(slots=True)
class Decision:
    cause_event_id: str
    decision: DecisionKind
    reason: str
    message: str
    target_entity: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    version: int | None = None


@dataclass(slots=True)
class Output:
    """A message to publish on the out exchange after the state is committed."""

    routing_key: str
    event_id: str
    body: dict[str, Any]


@dataclass(slots=True)
class Outcome:
    """What handling one event produced, besides the state changes."""

    decisions: list[Decision] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
