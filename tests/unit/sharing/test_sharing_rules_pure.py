"""Direct tests of the pure per-event and per-target decisions in handlers/sharing/rules.py
(the state transitions are in test_sharing_rules_transitions.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from entity_sync.handlers.errors import Rejected, RetryLater
from entity_sync.handlers.sharing import rules
from entity_sync.handlers.sharing.model import Copy, SourceObject

D = dt.date


def target(
    *,
    acceptance: str = "auto_accept",
    currencies: tuple[str, ...] = ("USD",),
    has_own: bool = False,
    earliest: dt.date | None = None,
) -> rules.TargetView:
    return rules.TargetView(
        entity_id="t1",
        active_currencies=currencies,
        acceptance=acceptance,  # type: ignore[arg-type]
        has_own_accounting_periods=has_own,
        earliest_activity_date=earliest,
    )


def held_source(
    version: int, data: dict[str, Any] | None = None, object_type: str = "product"
) -> SourceObject:
    return SourceObject(object_type, "X1", None, version, data or {}, "e")


def held_copy(version: int, data: dict[str, Any], object_type: str = "product") -> Copy:
    return Copy("c1", "t1", object_type, "X1", "tid", None, version, data)


# --- rule 1 ---------------------------------------------------------------------------------


def test_check_source_accepts_the_global_entity() -> None:
    rules.check_source("global", "global")


def test_check_source_rejects_any_other_entity_with_not_global_source() -> None:
    with pytest.raises(Rejected) as exc:
        rules.check_source("t1", "global")
    assert exc.value.reason == "not_global_source"


# --- rules 3, 4, 7: check_object_event ------------------------------------------------------


def check(**kw: Any) -> str:
    args: dict[str, Any] = {
        "object_type": "product",
        "action": "upsert",
        "version": 2,
        "data": {"name": "x"},
        "held": None,
        "parent_id": None,
        "parent_known": True,
    }
    args.update(kw)
    return rules.check_object_event(**args)


def test_check_object_event_applies_a_first_version() -> None:
    assert check() == "apply"


def test_check_object_event_applies_a_newer_version() -> None:
    assert check(version=3, held=held_source(2)) == "apply"


@pytest.mark.parametrize("version", [1, 2])
def test_check_object_event_equal_or_older_version_is_stale(version: int) -> None:
    assert check(version=version, held=held_source(2)) == "stale"


def test_check_object_event_rejects_delete_even_of_an_unknown_object() -> None:
    with pytest.raises(Rejected) as exc:
        check(action="delete", data=None)
    assert exc.value.reason == "shared_object_delete"


def test_check_object_event_rejects_delete_even_when_stale() -> None:
    with pytest.raises(Rejected) as exc:
        check(action="delete", data=None, version=1, held=held_source(5))
    assert exc.value.reason == "shared_object_delete"


@pytest.mark.parametrize("attribute", ["charge_model", "billing_timing"])
def test_check_object_event_rejects_change_of_immutable_charge_attribute(attribute: str) -> None:
    old = {"charge_model": "FlatFee", "billing_timing": "InAdvance", "charge_type": "Recurring"}
    new = dict(old, **{attribute: "Changed"})
    with pytest.raises(Rejected) as exc:
        check(
            object_type="product_rate_plan_charge",
            version=2,
            data=new,
            held=held_source(1, old, "product_rate_plan_charge"),
            parent_id="RP1",
        )
    assert exc.value.reason == "immutable_attribute"
    assert attribute in exc.value.message


def test_check_object_event_allows_other_charge_changes() -> None:
    old = {"charge_model": "FlatFee", "billing_timing": "InAdvance", "name": "a"}
    new = dict(old, name="b", charge_type="OneTime")
    verdict = check(
        object_type="product_rate_plan_charge",
        data=new,
        held=held_source(1, old, "product_rate_plan_charge"),
        parent_id="RP1",
    )
    assert verdict == "apply"


def test_check_object_event_immutable_check_only_applies_to_charges() -> None:
    old = {"charge_model": "FlatFee"}
    assert check(data={"charge_model": "Tiered"}, held=held_source(1, old)) == "apply"


def test_check_object_event_unknown_parent_is_retry_later() -> None:
    with pytest.raises(RetryLater) as exc:
        check(object_type="product_rate_plan", parent_id="P9", parent_known=False)
    assert exc.value.reason == "parent_unknown"


def test_check_object_event_known_parent_applies() -> None:
    assert check(object_type="product_rate_plan", parent_id="P1", parent_known=True) == "apply"


# --- rule 5: period_block -------------------------------------------------------------------


def test_period_block_dont_accept_is_not_accepted() -> None:
    block = rules.period_block(target(acceptance="dont_accept"), D(2026, 1, 1))
    assert block is not None
    assert (block.kind, block.reason) == ("not_accepted", "dont_accept")


def test_period_block_acceptance_is_checked_before_own_periods() -> None:
    block = rules.period_block(target(acceptance="dont_accept", has_own=True), None)
    assert block is not None
    assert block.kind == "not_accepted"


def test_period_block_own_periods_is_blocked() -> None:
    block = rules.period_block(target(has_own=True), D(2026, 1, 1))
    assert block is not None
    assert (block.kind, block.reason) == ("blocked", "target_has_own_periods")


@pytest.mark.parametrize(
    ("earliest", "blocked"),
    [
        (D(2025, 12, 31), True),  # earlier than the first period's start
        (D(2026, 1, 1), True),  # equal: must be strictly later
        (D(2026, 1, 2), False),  # later
        (None, False),  # no activity yet
    ],
)
def test_period_block_earliest_activity_must_be_later_than_first_start(
    earliest: dt.date | None, blocked: bool
) -> None:
    block = rules.period_block(target(earliest=earliest), D(2026, 1, 1))
    if blocked:
        assert block is not None
        assert (block.kind, block.reason) == ("blocked", "activity_before_first_period")
    else:
        assert block is None


def test_period_block_without_any_source_period_start_passes() -> None:
    assert rules.period_block(target(earliest=D(2000, 1, 1)), None) is None


# --- rules 3, 6, 8: decide_target -----------------------------------------------------------


def decide(**kw: Any) -> rules.TargetDecision:
    args: dict[str, Any] = {
        "object_type": "product",
        "version": 2,
        "source_data": {"name": "n", "sku": "s"},
        "held": None,
        "target": target(),
        "levels": {},
        "first_period_start": None,
    }
    args.update(kw)
    return rules.decide_target(**args)


def test_decide_target_create_copies_every_attribute_and_lists_them_all() -> None:
    verdict = decide(source_data={"name": "n", "sku": "s", "description": "d"})
    assert verdict.kind == "create"
    assert verdict.data == {"name": "n", "sku": "s", "description": "d"}
    assert verdict.changed == ("description", "name", "sku")


@pytest.mark.parametrize("version", [1, 2])
def test_decide_target_not_newer_than_the_copy_is_stale(version: int) -> None:
    verdict = decide(version=version, held=held_copy(2, {"sku": "old"}))
    assert (verdict.kind, verdict.reason) == ("stale", "version_not_newer")


def test_decide_target_stale_wins_over_period_block() -> None:
    verdict = decide(
        object_type="accounting_period",
        version=1,
        held=held_copy(1, {}, "accounting_period"),
        target=target(acceptance="dont_accept"),
    )
    assert verdict.kind == "stale"


def test_decide_target_update_of_source_controlled_attribute() -> None:
    verdict = decide(
        version=3,
        source_data={"name": "new name", "sku": "new sku"},
        held=held_copy(2, {"name": "target name", "sku": "old sku"}),
    )
    assert verdict.kind == "update"
    assert verdict.data == {"name": "target name", "sku": "new sku"}
    assert verdict.changed == ("sku",)


def test_decide_target_update_changing_only_target_attributes_is_unchanged() -> None:
    verdict = decide(
        version=3,
        source_data={"name": "new name", "sku": "s"},
        held=held_copy(2, {"name": "target name", "sku": "s"}),
    )
    assert (verdict.kind, verdict.reason) == ("unchanged", "no_source_controlled_change")
    assert verdict.changed == ()


def test_decide_target_period_to_dont_accept_target_is_not_accepted() -> None:
    verdict = decide(
        object_type="accounting_period",
        source_data={"start_date": "2026-01-01"},
        target=target(acceptance="dont_accept"),
    )
    assert verdict.kind == "not_accepted"


def test_decide_target_period_to_target_with_own_periods_is_blocked() -> None:
    verdict = decide(
        object_type="accounting_period",
        source_data={"start_date": "2026-01-01"},
        target=target(has_own=True),
    )
    assert (verdict.kind, verdict.reason) == ("blocked", "target_has_own_periods")


def test_decide_target_products_ignore_period_settings() -> None:
    verdict = decide(target=target(acceptance="dont_accept", has_own=True, earliest=D(1990, 1, 1)))
    assert verdict.kind == "create"


def test_decide_target_create_withholds_inactive_currencies_and_says_so() -> None:
    verdict = decide(
        object_type="product_rate_plan_charge",
        source_data={"prices": {"USD": "1", "EUR": "2"}, "tiers": [{"currency": "EUR"}]},
        target=target(currencies=("USD",)),
    )
    assert verdict.kind == "create"
    assert verdict.data == {"prices": {"USD": "1"}, "tiers": []}
    assert "EUR" in verdict.message
