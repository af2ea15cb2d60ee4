"""Rule 7: the source may not delete a shared object or change charge_model/billing_timing."""

from __future__ import annotations

import pytest
from builders import Snapshot, connected_world, copy_of, handle, only_output, share_tree
from event_builders import GLOBAL, charge, delete, entity, period, product, rate_plan, settings

from entity_sync.handlers.errors import Rejected
from entity_sync.handlers.sharing.state import SharingState


def world() -> SharingState:
    state = connected_world("t1", "t2")
    handle(state, settings("t1", "auto_accept"))
    share_tree(state)
    handle(state, period("AP1"))
    return state


@pytest.mark.parametrize(
    ("object_type", "object_id", "parent_id"),
    [
        ("product", "P1", None),
        ("product_rate_plan", "RP1", "P1"),
        ("product_rate_plan_charge", "C1", "RP1"),
        ("accounting_period", "AP1", None),
    ],
)
def test_delete_of_a_shared_object_is_rejected_and_no_target_changes(
    object_type: str, object_id: str, parent_id: str | None
) -> None:
    state = world()
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, delete(object_type, object_id, version=2, parent_id=parent_id))
    assert exc.value.reason == "shared_object_delete"
    assert Snapshot.of(state) == before


def test_delete_of_an_unknown_object_is_rejected_too() -> None:
    state = world()
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, delete("product", "P-never-seen", version=1))
    assert exc.value.reason == "shared_object_delete"
    assert Snapshot.of(state) == before


@pytest.mark.parametrize(
    "change",
    [
        {"charge_model": "PerUnit"},
        {"billing_timing": "InArrears"},
        {"charge_model": "Tiered", "billing_timing": "InArrears"},
        {"charge_model": "PerUnit", "name": "also renamed", "charge_type": "OneTime"},
    ],
    ids=["charge_model", "billing_timing", "both", "with_allowed_changes"],
)
def test_immutable_charge_attribute_change_is_rejected_and_nothing_changes(
    change: dict[str, str],
) -> None:
    state = world()
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, charge("C1", "RP1", version=2, **change))
    assert exc.value.reason == "immutable_attribute"
    assert Snapshot.of(state) == before
    assert state.sources[("product_rate_plan_charge", "C1")].version == 1
    assert state.sources[("product_rate_plan_charge", "C1")].data["charge_model"] == "FlatFee"


def test_immutable_change_is_rejected_even_without_connected_targets() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    handle(state, product("P1"))
    handle(state, rate_plan("RP1", "P1"))
    handle(state, charge("C1", "RP1"))
    with pytest.raises(Rejected) as exc:
        handle(state, charge("C1", "RP1", version=2, billing_timing="InArrears"))
    assert exc.value.reason == "immutable_attribute"


def test_after_a_rejected_change_a_valid_next_version_still_applies() -> None:
    state = world()
    with pytest.raises(Rejected):
        handle(state, charge("C1", "RP1", version=2, charge_model="PerUnit"))
    out = handle(state, charge("C1", "RP1", version=3, charge_type="OneTime"))
    assert [o.routing_key for o in out.outputs] == [
        "target.t1.product_rate_plan_charge",
        "target.t2.product_rate_plan_charge",
    ]
    assert copy_of(state, "product_rate_plan_charge", "C1").version == 3


def test_the_first_version_of_a_charge_may_set_any_model() -> None:
    state = connected_world("t1")
    share_tree(state)
    out = handle(state, charge("C2", "RP1", charge_model="Tiered", billing_timing="InArrears"))
    assert only_output(out).body["data"]["charge_model"] == "Tiered"
