"""Rule 5: accounting periods only reach auto_accept targets that can take them."""

from __future__ import annotations

import pytest
from builders import Snapshot, add_target, connect, handle, only_output, routing_keys, sent
from event_builders import GLOBAL, connection, entity, period, product, settings

from entity_sync.handlers.errors import Rejected, RetryLater
from entity_sync.handlers.sharing.state import SharingState


def world(**entity_kw: object) -> SharingState:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1", **entity_kw)
    connect(state, "t1", "c1")
    return state


def period_copies(state: SharingState) -> set[str]:
    return {
        c.source_object_id for c in state.copies.values() if c.object_type == "accounting_period"
    }


def test_default_dont_accept_records_not_accepted_and_sends_nothing() -> None:
    state = world()
    out = handle(state, period("AP1"))
    assert out.outputs == []
    [d] = out.decisions
    assert (d.decision, d.reason, d.target_entity, d.object_id) == (
        "not_accepted",
        "dont_accept",
        "t1",
        "AP1",
    )
    assert period_copies(state) == set()
    assert ("accounting_period", "AP1") in state.sources


def test_products_are_shared_regardless_of_period_acceptance() -> None:
    state = world(has_own_periods=True)
    assert routing_keys(handle(state, product("P1"))) == ["target.t1.product"]


def test_switching_to_auto_accept_backfills_every_existing_period() -> None:
    state = world()
    handle(state, product("P1"))
    handle(state, period("AP2", "2026-02-01", "2026-02-28"))
    handle(state, period("AP1", "2026-01-01", "2026-01-31"))
    out = handle(state, settings("t1", "auto_accept"))
    assert sent(out) == [("accounting_period", "AP1"), ("accounting_period", "AP2")]
    assert routing_keys(out) == ["target.t1.accounting_period"] * 2
    assert (out.decisions[0].decision, out.decisions[0].reason) == ("setting", "auto_accept")
    assert [d.reason for d in out.decisions[1:]] == ["backfill", "backfill"]
    assert state.acceptance["t1"] == "auto_accept"
    assert state.dirty.acceptance == {"t1"}
    assert period_copies(state) == {"AP1", "AP2"}


def test_after_auto_accept_new_periods_are_sent() -> None:
    state = world()
    handle(state, settings("t1", "auto_accept"))
    out = handle(state, period("AP1"))
    assert routing_keys(out) == ["target.t1.accounting_period"]
    assert out.outputs[0].body["action"] == "create"


def test_auto_accept_again_is_recorded_but_backfills_nothing() -> None:
    state = world()
    handle(state, settings("t1", "auto_accept"))
    handle(state, period("AP1"))
    out = handle(state, settings("t1", "auto_accept"))
    assert out.outputs == []
    assert [(d.decision, d.reason) for d in out.decisions] == [("setting", "auto_accept")]


def test_auto_accept_set_while_pending_applies_on_accept() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1")
    handle(state, period("AP1"))
    handle(state, connection("c1", "t1", "request"))
    out = handle(state, settings("t1", "auto_accept"))
    assert out.outputs == []  # not connected yet
    accepted = handle(state, connection("c1", "t1", "accept"))
    assert sent(accepted) == [("accounting_period", "AP1")]


def test_settings_for_unknown_entity_is_retried_later() -> None:
    state = world()
    before = Snapshot.of(state)
    with pytest.raises(RetryLater) as exc:
        handle(state, settings("t9", "auto_accept"))
    assert exc.value.reason == "unknown_entity"
    assert Snapshot.of(state) == before


def test_switching_back_without_force_is_rejected_and_nothing_changes() -> None:
    state = world()
    handle(state, settings("t1", "auto_accept"))
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, settings("t1", "dont_accept"))
    assert exc.value.reason == "force_required"
    assert Snapshot.of(state) == before
    assert state.acceptance["t1"] == "auto_accept"


def test_switching_back_with_force_keeps_received_periods_and_stops_new_ones() -> None:
    state = world()
    handle(state, settings("t1", "auto_accept"))
    handle(state, period("AP1"))
    received = dict(state.copies)
    out = handle(state, settings("t1", "dont_accept", force=True))
    assert out.outputs == []
    assert [(d.decision, d.reason) for d in out.decisions] == [("setting", "dont_accept")]
    assert "forced" in out.decisions[0].message
    assert state.acceptance["t1"] == "dont_accept"
    assert state.copies == received  # received periods stay

    later = handle(state, period("AP2", "2026-02-01", "2026-02-28"))
    assert later.outputs == []
    assert [d.decision for d in later.decisions] == ["not_accepted"]
    assert period_copies(state) == {"AP1"}


def test_after_forced_switch_back_updates_of_received_periods_are_not_sent() -> None:
    state = world()
    handle(state, settings("t1", "auto_accept"))
    handle(state, period("AP1", name="Jan"))
    handle(state, settings("t1", "dont_accept", force=True))
    out = handle(state, period("AP1", version=2, name="January"))
    assert out.outputs == []
    assert [d.decision for d in out.decisions] == ["not_accepted"]
    assert state.copies[("c1", "accounting_period", "AP1")].data["name"] == "Jan"


def test_target_with_own_periods_gets_a_share_exception() -> None:
    state = world(has_own_periods=True)
    handle(state, settings("t1", "auto_accept"))
    out = handle(state, period("AP1"))
    output = only_output(out)
    assert output.routing_key == "share.exception.t1"
    assert output.body["reason"] == "target_has_own_periods"
    assert output.body["source_object_id"] == "AP1"
    assert output.body["target_entity"] == "t1"
    [d] = out.decisions
    assert (d.decision, d.reason) == ("blocked", "target_has_own_periods")
    assert period_copies(state) == set()


def test_switching_to_auto_accept_with_own_periods_reports_each_period() -> None:
    state = world(has_own_periods=True)
    handle(state, period("AP1"))
    handle(state, period("AP2", "2026-02-01", "2026-02-28"))
    out = handle(state, settings("t1", "auto_accept"))
    assert routing_keys(out) == ["share.exception.t1", "share.exception.t1"]
    assert [o.body["source_object_id"] for o in out.outputs] == ["AP1", "AP2"]
    assert period_copies(state) == set()


@pytest.mark.parametrize(
    ("earliest", "blocked"),
    [("2025-12-31", True), ("2026-01-01", True), ("2026-01-02", False)],
    ids=["earlier", "equal", "later"],
)
def test_earliest_activity_must_be_later_than_first_period_start(
    earliest: str, blocked: bool
) -> None:
    state = world(earliest_activity_date=earliest)
    handle(state, settings("t1", "auto_accept"))
    out = handle(state, period("AP1", "2026-01-01", "2026-01-31"))
    if blocked:
        output = only_output(out)
        assert output.routing_key == "share.exception.t1"
        assert output.body["reason"] == "activity_before_first_period"
        assert [(d.decision, d.reason) for d in out.decisions] == [
            ("blocked", "activity_before_first_period")
        ]
        assert period_copies(state) == set()
    else:
        assert routing_keys(out) == ["target.t1.accounting_period"]
        assert period_copies(state) == {"AP1"}


def test_no_earliest_activity_receives_periods() -> None:
    state = world(earliest_activity_date=None)
    handle(state, settings("t1", "auto_accept"))
    out = handle(state, period("AP1"))
    assert routing_keys(out) == ["target.t1.accounting_period"]


def test_first_period_is_the_earliest_source_period_not_the_one_being_sent() -> None:
    state = world(earliest_activity_date="2026-01-15")
    handle(state, period("AP1", "2026-01-01", "2026-01-31"))
    handle(state, settings("t1", "auto_accept"))
    out = handle(state, period("AP2", "2026-02-01", "2026-02-28"))
    # 2026-01-15 is before AP2's start but after the first period's start: allowed
    assert routing_keys(out) == ["target.t1.accounting_period"]
    assert period_copies(state) == {"AP1", "AP2"}


def test_a_new_earlier_first_period_moves_the_bar() -> None:
    state = world(earliest_activity_date="2026-01-15")
    handle(state, settings("t1", "auto_accept"))
    handle(state, period("AP2", "2026-02-01", "2026-02-28"))  # first start 2026-02-01: blocked
    out = handle(state, period("AP1", "2026-01-01", "2026-01-31"))  # first start now 2026-01-01
    assert routing_keys(out) == ["target.t1.accounting_period"]


def test_blocked_period_backfill_to_second_target_does_not_affect_the_first() -> None:
    state = world()
    add_target(state, "t2", has_own_periods=True)
    connect(state, "t2", "c2")
    handle(state, settings("t1", "auto_accept"))
    handle(state, settings("t2", "auto_accept"))
    out = handle(state, period("AP1"))
    assert routing_keys(out) == ["target.t1.accounting_period", "share.exception.t2"]


def test_periods_refused_for_own_periods_are_sent_once_the_target_drops_them() -> None:
    state = world(has_own_periods=True)
    handle(state, settings("t1", "auto_accept"))
    handle(state, period("AP1"))
    handle(state, period("AP2", start="2026-02-01", end="2026-02-28"))
    assert period_copies(state) == set()
    out = handle(state, entity("t1", has_own_periods=False))
    assert routing_keys(out) == ["target.t1.accounting_period"] * 2
    assert period_copies(state) == {"AP1", "AP2"}
    assert {(d.object_id, d.reason) for d in out.decisions} == {
        ("AP1", "backfill"),
        ("AP2", "backfill"),
    }


def test_periods_refused_for_early_activity_are_sent_once_it_moves_later() -> None:
    state = world(earliest_activity_date="2025-06-01")
    handle(state, settings("t1", "auto_accept"))
    handle(state, period("AP1"))
    assert period_copies(state) == set()
    out = handle(state, entity("t1", earliest_activity_date="2026-03-01"))
    assert routing_keys(out) == ["target.t1.accounting_period"]
    assert period_copies(state) == {"AP1"}


def test_an_upsert_that_changes_no_eligibility_offers_nothing_again() -> None:
    state = world(has_own_periods=True)
    handle(state, settings("t1", "auto_accept"))
    handle(state, period("AP1"))
    out = handle(state, entity("t1", has_own_periods=True, currencies=("USD",)))
    assert routing_keys(out) == []
    assert out.decisions == []
