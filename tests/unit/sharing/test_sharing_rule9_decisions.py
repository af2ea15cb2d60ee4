"""Rule 9: every decision is recorded, so an operator can ask why a target did (not) get it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from builders import Snapshot, add_target, connect, connected_world, handle, share_tree
from event_builders import (
    GLOBAL,
    control_levels,
    delete,
    entity,
    period,
    product,
    product_data,
    settings,
    shared,
)

from entity_sync.handlers.errors import Rejected
from entity_sync.handlers.sharing.model import Decision
from entity_sync.handlers.sharing.state import SharingState
from entity_sync.schemas.inputs import ObjectShared


def why(state: SharingState, target: str, object_id: str) -> list[tuple[str, str]]:
    """What an operator asks: every decision about one object for one target."""
    return [
        (d.decision, d.reason)
        for d in state.decisions
        if d.target_entity == target and d.object_id == object_id
    ]


def world() -> SharingState:
    """t1 auto_accept, t2 dont_accept, t3 has its own periods (auto_accept)."""
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1")
    add_target(state, "t2")
    add_target(state, "t3", has_own_periods=True)
    for t in ("t1", "t2", "t3"):
        connect(state, t)
    handle(state, settings("t1", "auto_accept"))
    handle(state, settings("t3", "auto_accept"))
    return state


def test_outcome_decisions_are_exactly_those_appended_to_the_state_log() -> None:
    state = world()
    n = len(state.decisions)
    out = handle(state, period("AP1"))
    assert state.decisions[n:] == out.decisions
    assert len(out.decisions) == 3


def test_every_decision_names_its_cause() -> None:
    state = world()
    ev = period("AP1")
    out = handle(state, ev)
    assert {d.cause_event_id for d in out.decisions} == {str(ev.event_id)}


def test_one_decision_per_target_for_each_outcome_kind() -> None:
    state = world()
    out = handle(state, period("AP1", version=1))
    assert {(d.target_entity, d.decision, d.reason) for d in out.decisions} == {
        ("t1", "sent", "create"),
        ("t2", "not_accepted", "dont_accept"),
        ("t3", "blocked", "target_has_own_periods"),
    }
    assert all(d.object_type == "accounting_period" for d in out.decisions)
    assert all((d.object_id, d.version) == ("AP1", 1) for d in out.decisions)


def test_sent_update_is_recorded() -> None:
    state = connected_world("t1")
    handle(state, product("P1"))
    handle(state, product("P1", version=2, sku="SKU-2"))
    assert why(state, "t1", "P1") == [("sent", "create"), ("sent", "update")]


def test_unchanged_is_recorded() -> None:
    state = connected_world("t1")
    handle(state, product("P1"))
    handle(state, product("P1", version=2, name="only target-controlled"))
    assert why(state, "t1", "P1")[-1] == ("unchanged", "no_source_controlled_change")


def test_stale_is_recorded() -> None:
    state = connected_world("t1")
    handle(state, product("P1", version=2))
    handle(state, product("P1", version=1))
    assert why(state, "t1", "P1")[-1] == ("stale", "version_not_newer")


def test_not_accepted_and_blocked_are_recorded() -> None:
    state = world()
    handle(state, period("AP1"))
    assert why(state, "t2", "AP1") == [("not_accepted", "dont_accept")]
    assert why(state, "t3", "AP1") == [("blocked", "target_has_own_periods")]


def test_activity_block_is_recorded() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1", earliest_activity_date="2025-01-01")
    connect(state, "t1")
    handle(state, settings("t1", "auto_accept"))
    handle(state, period("AP1"))
    assert why(state, "t1", "AP1") == [("blocked", "activity_before_first_period")]


def test_cascade_backfill_and_release_are_recorded_as_sent_with_their_reason() -> None:
    state = connected_world("t1")
    share_tree(state, prices={"USD": "1.00", "EUR": "2.00"})
    add_target(state, "t2")
    connect(state, "t2")
    handle(state, entity("t2", currencies=["USD", "EUR"]))
    assert why(state, "t2", "P1") == [("sent", "backfill")]
    assert why(state, "t2", "C1") == [("sent", "backfill"), ("sent", "currency_release")]


def test_connection_steps_are_recorded() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1")
    connect(state, "t1")
    steps = [(d.decision, d.reason) for d in state.decisions if d.target_entity == "t1"]
    assert steps == [("connection", "pending"), ("connection", "connected")]


def test_settings_are_recorded() -> None:
    state = world()
    handle(state, settings("t1", "dont_accept", force=True))
    kinds = [
        (d.decision, d.reason, d.object_type)
        for d in state.decisions
        if d.target_entity == "t1" and d.decision == "setting"
    ]
    assert kinds == [
        ("setting", "auto_accept", "accounting_period"),
        ("setting", "dont_accept", "accounting_period"),
    ]


def test_control_levels_are_recorded() -> None:
    state = SharingState()
    out = handle(state, control_levels(name="source"))
    assert [(d.decision, d.reason) for d in state.decisions] == [("setting", "control_levels")]
    assert "name=source" in out.decisions[0].message


@pytest.mark.parametrize(
    "bad",
    [
        lambda: delete("product", "P1", version=2),
        lambda: shared("product", "P1", version=2, data=product_data(), source="t1"),
    ],
    ids=["delete", "foreign_source"],
)
def test_rejected_event_leaves_the_log_to_the_dead_letter_path(
    bad: Callable[[], ObjectShared],
) -> None:
    """A rejected event raises before any write; its record is the dead letter (§6)."""
    state = world()
    handle(state, product("P1"))
    before = Snapshot.of(state)
    with pytest.raises(Rejected):
        handle(state, bad())
    assert Snapshot.of(state) == before


def test_decision_messages_are_human_readable() -> None:
    state = world()
    out = handle(state, period("AP1"))
    for d in out.decisions:
        assert isinstance(d, Decision)
        assert d.message
        assert d.message != d.reason
