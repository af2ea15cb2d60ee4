"""Rule 6: data control. Create copies everything; updates respect control levels."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from builders import Snapshot, connected_world, copy_of, handle, only_output, share_tree
from event_builders import (
    charge,
    control_levels,
    period,
    product,
    product_data,
    rate_plan,
    settings,
)

from entity_sync.handlers.errors import Rejected
from entity_sync.handlers.sharing.state import Dirty, SharingState
from entity_sync.schemas.inputs import ObjectShared


def products_world() -> SharingState:
    state = connected_world("t1", currencies=("USD", "EUR"))
    handle(state, product("P1", name="Name-1", sku="SKU-1", description="D-1"))
    return state


def test_create_copies_all_attributes_including_unknown_ones() -> None:
    state = connected_world("t1")
    out = handle(state, product("P1", colour="red", custom={"a": [1, 2]}))
    expected = product_data(colour="red", custom={"a": [1, 2]})
    body = only_output(out).body
    assert body["action"] == "create"
    assert body["data"] == expected
    assert body["changed"] == sorted(expected)
    assert copy_of(state, "product", "P1").data == expected


def test_update_overwrites_source_controlled_and_keeps_target_controlled() -> None:
    state = products_world()
    out = handle(
        state,
        product(
            "P1",
            version=2,
            name="Name-2",
            sku="SKU-2",
            description="D-2",
            effective_start_date="2027-01-01",
            effective_end_date="2031-12-31",
        ),
    )
    body = only_output(out).body
    assert body["changed"] == ["sku"]
    assert body["data"] == product_data(name="Name-1", sku="SKU-2", description="D-1")
    assert copy_of(state, "product", "P1").data == body["data"]


def test_update_keeps_the_targets_own_value_of_a_target_controlled_attribute() -> None:
    state = products_world()
    copy_of(state, "product", "P1").data["name"] = "Renamed in target"
    out = handle(state, product("P1", version=2, name="Name-2", sku="SKU-2"))
    assert only_output(out).body["data"]["name"] == "Renamed in target"


def test_source_controlled_attribute_overwrites_the_targets_value() -> None:
    state = products_world()
    copy_of(state, "product", "P1").data["sku"] = "target-sku"
    out = handle(state, product("P1", version=2, sku="SKU-2"))
    body = only_output(out).body
    assert body["data"]["sku"] == "SKU-2"
    assert body["changed"] == ["sku"]


def test_accounting_period_notes_and_status_are_target_controlled_rest_source() -> None:
    state = connected_world("t1")
    handle(state, settings("t1", "auto_accept"))
    handle(state, period("AP1", name="Jan", status="Open", notes="n1"))
    out = handle(
        state,
        period(
            "AP1",
            "2026-01-01",
            "2026-01-30",
            version=2,
            name="January",
            status="Closed",
            notes="n2",
            fiscal_year=2027,
        ),
    )
    body = only_output(out).body
    assert body["changed"] == ["end_date", "fiscal_year", "name"]
    assert body["data"]["status"] == "Open"
    assert body["data"]["notes"] == "n1"
    assert body["data"]["name"] == "January"
    assert body["data"]["end_date"] == "2026-01-30"


@pytest.mark.parametrize(
    ("object_type", "make"),
    [
        ("product_rate_plan", lambda v, **kw: rate_plan("RP1", "P1", version=v, **kw)),
        ("product_rate_plan_charge", lambda v, **kw: charge("C1", "RP1", version=v, **kw)),
    ],
)
def test_rate_plans_and_charges_follow_product_defaults(
    object_type: str, make: Callable[..., ObjectShared]
) -> None:
    state = connected_world("t1")
    share_tree(state)
    held = copy_of(state, object_type, "RP1" if object_type == "product_rate_plan" else "C1")
    had_description = "description" in held.data
    out = handle(state, make(2, name="Other", description="Other", sku="SKU-X"))
    body = only_output(out).body
    # sku is source-controlled; name stays the target's; a description the copy never had is
    # added (the target has no value of its own to keep)
    assert body["changed"] == (["sku"] if had_description else ["description", "sku"])
    assert body["data"]["sku"] == "SKU-X"
    assert body["data"]["name"] != "Other"
    assert copy_of(state, object_type, body["source_object_id"]).version == 2


def test_control_event_itself_sends_nothing_and_changes_no_copy() -> None:
    state = products_world()
    copies = Snapshot.of(state).parts["copies"]
    out = handle(state, control_levels(name="source", description="source"))
    assert out.outputs == []
    [d] = out.decisions
    assert (d.decision, d.reason) == ("setting", "control_levels")
    assert state.levels == {"name": "source", "description": "source"}
    assert state.dirty.levels == {"name", "description"}
    assert Snapshot.of(state).parts["copies"] == copies


def test_control_change_affects_only_later_updates() -> None:
    state = products_world()
    handle(state, product("P1", version=2, name="Name-2"))  # name target-controlled: kept
    assert copy_of(state, "product", "P1").data["name"] == "Name-1"
    handle(state, control_levels(name="source"))
    assert copy_of(state, "product", "P1").data["name"] == "Name-1"  # not applied retroactively
    out = handle(state, product("P1", version=3, name="Name-3"))
    body = only_output(out).body
    assert body["changed"] == ["name"]
    assert body["data"]["name"] == "Name-3"


def test_control_can_hand_sku_to_the_target() -> None:
    state = products_world()
    handle(state, control_levels(sku="target"))
    out = handle(state, product("P1", version=2, sku="SKU-2"))
    assert out.outputs == []
    assert copy_of(state, "product", "P1").data["sku"] == "SKU-1"


def test_control_is_a_partial_update_of_levels() -> None:
    state = products_world()
    handle(state, control_levels(name="source"))
    handle(state, control_levels(description="source"))
    assert state.levels == {"name": "source", "description": "source"}


@pytest.mark.parametrize("attribute", ["charge_type", "charge_model", "billing_timing"])
def test_control_setting_always_source_attribute_to_target_is_rejected(attribute: str) -> None:
    state = products_world()
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, control_levels(**{attribute: "target", "name": "source"}))
    assert exc.value.reason == "always_source_attribute"
    assert Snapshot.of(state) == before
    assert state.levels == {}


def test_charge_type_change_always_reaches_the_target() -> None:
    state = connected_world("t1")
    share_tree(state)
    out = handle(state, charge("C1", "RP1", version=2, charge_type="OneTime"))
    body = only_output(out).body
    assert body["changed"] == ["charge_type"]
    assert body["data"]["charge_type"] == "OneTime"


def test_tier_currency_follows_the_source_even_when_tiers_are_target_controlled() -> None:
    state = connected_world("t1", currencies=("USD", "EUR"))
    handle(state, product("P1"))
    handle(state, rate_plan("RP1", "P1"))
    handle(state, charge("C1", "RP1", tiers=[{"currency": "USD", "price": "1.00"}]))

    out = handle(
        state,
        charge(
            "C1",
            "RP1",
            version=2,
            tiers=[{"currency": "USD", "price": "2.00"}, {"currency": "EUR", "price": "3.00"}],
        ),
    )
    body = only_output(out).body
    assert body["changed"] == ["tiers"]
    assert body["data"]["tiers"] == [
        {"currency": "USD", "price": "1.00"},  # target keeps its amount
        {"currency": "EUR", "price": "3.00"},  # the new currency comes from the source
    ]

    out = handle(state, charge("C1", "RP1", version=3, tiers=[{"currency": "EUR", "price": "4"}]))
    assert only_output(out).body["data"]["tiers"] == [{"currency": "EUR", "price": "3.00"}]


def test_changed_lists_exactly_the_changed_attributes() -> None:
    state = products_world()
    handle(state, control_levels(name="source", description="source"))
    out = handle(state, product("P1", version=2, name="Name-2", sku="SKU-1", description="D-1"))
    assert only_output(out).body["changed"] == ["name"]
    out = handle(state, product("P1", version=3, name="Name-3", sku="SKU-3", description="D-3"))
    assert only_output(out).body["changed"] == ["description", "name", "sku"]


def test_update_changing_only_target_controlled_attributes_is_unchanged() -> None:
    state = products_world()
    state.dirty = Dirty()
    before = copy_of(state, "product", "P1").data.copy()
    out = handle(state, product("P1", version=2, name="Name-2", description="D-2"))
    assert out.outputs == []
    [d] = out.decisions
    assert (d.decision, d.reason, d.version) == ("unchanged", "no_source_controlled_change", 2)
    held = copy_of(state, "product", "P1")
    assert held.version == 2  # bumped, so version 2 is not offered again
    assert held.data == before
    assert ("conn-t1", "product", "P1") in state.dirty.copies


def test_after_unchanged_the_same_version_is_stale() -> None:
    state = products_world()
    ev = product("P1", version=2, name="Name-2")
    handle(state, ev)
    out = handle(state, ev)
    assert [d.decision for d in out.decisions] == ["stale"]
