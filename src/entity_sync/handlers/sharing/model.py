"""Domain records of the sharing state. Plain, mutable dataclasses; no I/O."""

from __future__ import annotations

import datetime as dt
import uuid
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
class Link:
    """A sharing link from the global entity to one target (the design's "connection")."""

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
    kind: Literal["target_update", "share_exception"] = "target_update"


BulkKind = Literal["backfill", "release"]
JOB_NAMESPACE = uuid.UUID("6c0d7f3e-4f1b-5d8e-9a53-2f1d0c4b7e22")


@dataclass(frozen=True, slots=True)
class BulkJob:
    """A fan-out over many objects (rules 3, 5 and 8), run in chunks after its event commits.

    `backfill` offers every source object of `object_types` (all when empty), parents first, to
    the connection's target; `release` sends the withheld prices of `currencies` on every charge
    copy of the connection. Outputs carry `cause_event_id`, so a chunk run twice after a crash
    gives the same ids.
    """

    kind: BulkKind
    connection_id: str
    target_entity: str
    cause_event_id: str
    object_types: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()

    @property
    def job_id(self) -> str:
        """Deterministic: a redelivered event makes the same job, not a second one."""
        types = ",".join(self.object_types or ("*",))
        name = f"job|{self.kind}|{self.connection_id}|{types}|{self.cause_event_id}"
        return str(uuid.uuid5(JOB_NAMESPACE, name))


@dataclass(slots=True)
class Outcome:
    """What handling one event produced, besides the state changes."""

    decisions: list[Decision] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    jobs: list[BulkJob] = field(default_factory=list)  # bulk fan-outs to run after the commit
