"""The sharing rules of docs/design.md §4 as pure decision functions.

Each function takes plain values and returns a decision or raises `Rejected` / `RetryLater`.
The orchestration that applies decisions to state lives in service.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from entity_sync.handlers.errors import Rejected, RetryLater
from entity_sync.handlers.sharing import control
from entity_sync.handlers.sharing.model import (
    Acceptance,
    ConnectionStatus,
    Copy,
    Link,
    SourceObject,
)

TargetDecisionKind = Literal["create", "update", "unchanged", "stale", "not_accepted", "blocked"]


@dataclass(frozen=True, slots=True)
class TargetView:
    """What the rules need to know about one connected target entity."""

    entity_id: str
    active_currencies: tuple[str, ...]
    acceptance: Acceptance
    has_own_accounting_periods: bool
    earliest_activity_date: dt.date | None


@dataclass(frozen=True, slots=True)
class TargetDecision:
    kind: TargetDecisionKind
    reason: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    changed: tuple[str, ...] = ()


# --- rule 1 and rule 7: is the event acceptable at all? --------------------------------------


def check_source(source_entity: str, global_entity: str) -> None:
    if source_entity != global_entity:
        raise Rejected(
            f"only the global entity {global_entity!r} shares objects; "
            f"got an event from {source_entity!r}",
            reason="not_global_source",
        )


def check_global_flag(entity_id: str, is_global: bool, global_entity: str) -> None:
    """An entity is global exactly when it is the configured global entity."""
    if is_global != (entity_id == global_entity):
        raise Rejected(
            f"entity {entity_id!r} says is_global={is_global}, but the configured global "
            f"entity is {global_entity!r}",
            reason="global_mismatch",
        )


def check_target(target_entity: str, global_entity: str) -> None:
    if target_entity == global_entity:
        raise Rejected("the global entity is never a target", reason="global_not_target")


def unknown_entity(entity_id: str) -> RetryLater:
    """The error for an event about an entity that has not arrived yet."""
    return RetryLater(f"entity {entity_id!r} is not known", reason="unknown_entity")


def check_connection(
    requested: Link, current: Link | None, target_known: bool, other: Link | None
) -> None:
    """Rule 2: a connection id joins one source to one target for good; a target has at most
    one connection (`other`: its active one) and must be known before it is connected."""
    if current is not None:
        if (current.source_entity, current.target_entity) != (
            requested.source_entity,
            requested.target_entity,
        ):
            raise Rejected(
                f"connection {requested.connection_id!r} joins {current.source_entity!r} to "
                f"{current.target_entity!r}, not {requested.source_entity!r} to "
                f"{requested.target_entity!r}",
                reason="connection_mismatch",
            )
        return
    if not target_known:
        raise unknown_entity(requested.target_entity)
    if other is not None:
        raise Rejected(
            f"{requested.target_entity!r} already has connection {other.connection_id!r} "
            f"({other.status})",
            reason="connection_exists",
        )


def check_object_event(  # noqa: PLR0913 - keyword-only facts of one pure decision, run per event/target
    *,
    object_type: str,
    action: str,
    version: int,
    data: Mapping[str, Any] | None,
    held: SourceObject | None,
    parent_id: str | None,
    parent_known: bool,
) -> Literal["apply", "stale"]:
    """Decide whether a source change applies; raises for forbidden or premature changes."""
    if action == "delete":
        raise Rejected(
            "the source may not delete a shared object; no target was changed",
            reason="shared_object_delete",
        )
    if held is not None and version <= held.version:
        return "stale"
    if held is not None and object_type == "product_rate_plan_charge" and data is not None:
        bad = control.immutable_violations(held.data, data)
        if bad:
            raise Rejected(
                f"the source may not change {', '.join(bad)} of a shared charge; "
                "no target was changed",
                reason="immutable_attribute",
            )
    if parent_id is not None and not parent_known:
        raise RetryLater(
            f"parent {parent_id!r} of {object_type} is not known yet", reason="parent_unknown"
        )
    return "apply"


# --- rules 3, 5, 6, 8: what one target receives ----------------------------------------------


def period_block(target: TargetView, first_period_start: dt.date | None) -> TargetDecision | None:
    """Why a target may not receive accounting periods (rule 5), or None if it may."""
    if target.acceptance != "auto_accept":
        return TargetDecision(
            "not_accepted",
            "dont_accept",
            "the target does not accept shared accounting periods (setting dont_accept)",
        )
    if target.has_own_accounting_periods:
        return TargetDecision(
            "blocked",
            "target_has_own_periods",
            "the target has its own accounting periods and cannot receive shared ones",
        )
    if (
        target.earliest_activity_date is not None
        and first_period_start is not None
        and target.earliest_activity_date <= first_period_start
    ):
        return TargetDecision(
            "blocked",
            "activity_before_first_period",
            f"the target's earliest activity {target.earliest_activity_date.isoformat()} is not "
            f"after the start {first_period_start.isoformat()} of the source's first period",
        )
    return None


def decide_target(  # noqa: PLR0913 - keyword-only facts of one pure decision, run per event/target
    *,
    object_type: str,
    version: int,
    source_data: Mapping[str, Any],
    held: Copy | None,
    target: TargetView,
    levels: Mapping[str, str],
    first_period_start: dt.date | None,
) -> TargetDecision:
    """What one connected target gets for one source object at one version."""
    if held is not None and version <= held.version:
        return TargetDecision(
            "stale",
            "version_not_newer",
            f"version {version} is not newer than version {held.version} held by the target",
        )
    if object_type == "accounting_period":
        block = period_block(target, first_period_start)
        if block is not None:
            return block
    withheld = control.withheld_currencies(source_data, target.active_currencies)
    note = f"; withheld prices for inactive currencies {', '.join(withheld)}" if withheld else ""
    if held is None:
        data = control.create_data(object_type, source_data, target.active_currencies)
        return TargetDecision(
            "create", "create", f"new copy at version {version}{note}", data, tuple(sorted(data))
        )
    data = control.update_data(
        object_type, held.data, source_data, levels, target.active_currencies
    )
    changed = tuple(control.changed_attributes(held.data, data))
    if not changed:
        return TargetDecision(
            "unchanged",
            "no_source_controlled_change",
            f"version {version} changes no attribute the source controls in this target",
            data,
        )
    return TargetDecision("update", "update", f"updated {', '.join(changed)}{note}", data, changed)


# --- rule 2: connections ---------------------------------------------------------------------

_TRANSITIONS: dict[tuple[ConnectionStatus | None, str], ConnectionStatus] = {
    (None, "request"): "pending",
    ("pending", "accept"): "connected",
    ("pending", "deny"): "denied",
    ("connected", "disconnect"): "disconnected",
}


def next_connection_status(current: ConnectionStatus | None, action: str) -> ConnectionStatus:
    try:
        return _TRANSITIONS[(current, action)]
    except KeyError:
        state = "unknown" if current is None else current
        raise Rejected(
            f"cannot {action} a connection that is {state}", reason="illegal_transition"
        ) from None


# --- rule 5: acceptance settings -------------------------------------------------------------


def next_acceptance(
    current: Acceptance, requested: Acceptance, force: bool
) -> tuple[Acceptance, bool]:
    """The new setting and whether existing periods must be backfilled."""
    if requested == current:
        return current, False
    if requested == "auto_accept":
        return "auto_accept", True
    if not force:
        raise Rejected(
            "switching accounting periods back to dont_accept needs force=true "
            "(Zuora strongly advises against it); received periods stay",
            reason="force_required",
        )
    return "dont_accept", False


# --- rule 6: control levels ------------------------------------------------------------------


def merge_levels(current: Mapping[str, str], requested: Mapping[str, str]) -> dict[str, str]:
    forced = sorted(
        a for a, lvl in requested.items() if a in control.ALWAYS_SOURCE and lvl != "source"
    )
    if forced:
        raise Rejected(
            f"{', '.join(forced)} are always controlled by the source",
            reason="always_source_attribute",
        )
    merged = dict(current)
    merged.update(requested)
    return merged
