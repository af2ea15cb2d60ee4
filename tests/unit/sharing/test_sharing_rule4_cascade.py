"""Rule 4: every connected target gets products, rate plans and charges; parents go first."""

from __future__ import annotations

import pytest
from builders import Snapshot, connected_world, handle, routing_keys, sent, share_tree, store_source
from event_builders import charge, product, rate_plan

from entity_sync.handlers.errors import RetryLater
from entity_sync.schemas.inputs import ObjectShared


def test_every_connected_target_receives_products_rate_plans_and_charges() -> None:
    state = connected_world("t1", "t2", "t3")
    outs = [handle(state, product("P1")), handle(state, rate_plan()), handle(state, charge())]
    for out, object_type in zip(
        outs, ["product", "product_rate_plan", "product_rate_plan_charge"], strict=True
    ):
        assert routing_keys(out) == [f"target.{t}.{object_type}" for t in ("t1", "t2", "t3")]
        assert [d.decision for d in out.decisions] == ["sent"] * 3


def test_child_with_parent_copy_present_is_not_cascaded() -> None:
    state = connected_world("t1")
    handle(state, product("P1"))
    out = handle(state, rate_plan("RP1", "P1"))
    assert sent(out) == [("product_rate_plan", "RP1")]
    assert (
        out.outputs[0].body["target_parent_id"]
        == state.copies[("conn-t1", "product", "P1")].target_object_id
    )


def test_rate_plan_whose_product_copy_is_missing_cascades_the_stored_product() -> None:
    state = connected_world("t1")
    store_source(state, product("P1", version=3, sku="SKU-3"))
    out = handle(state, rate_plan("RP1", "P1"))

    assert sent(out) == [("product", "P1"), ("product_rate_plan", "RP1")]
    parent_body, child_body = (o.body for o in out.outputs)
    assert (parent_body["action"], parent_body["version"]) == ("create", 3)
    assert parent_body["data"]["sku"] == "SKU-3"
    assert child_body["target_parent_id"] == parent_body["target_object_id"]
    assert [(d.object_id, d.decision, d.reason) for d in out.decisions] == [
        ("P1", "sent", "cascade"),
        ("RP1", "sent", "create"),
    ]
    assert ("conn-t1", "product", "P1") in state.copies


def test_charge_whose_rate_plan_and_product_copies_are_missing_cascades_twice_in_order() -> None:
    state = connected_world("t1")
    store_source(state, product("P1"))
    store_source(state, rate_plan("RP1", "P1"))
    out = handle(state, charge("C1", "RP1"))

    assert sent(out) == [
        ("product", "P1"),
        ("product_rate_plan", "RP1"),
        ("product_rate_plan_charge", "C1"),
    ]
    p, rp, c = (o.body for o in out.outputs)
    assert rp["target_parent_id"] == p["target_object_id"]
    assert c["target_parent_id"] == rp["target_object_id"]
    assert [(d.object_id, d.reason) for d in out.decisions] == [
        ("P1", "cascade"),
        ("RP1", "cascade"),
        ("C1", "create"),
    ]


def test_charge_whose_rate_plan_copy_alone_is_missing_cascades_once() -> None:
    state = connected_world("t1")
    handle(state, product("P1"))
    store_source(state, rate_plan("RP1", "P1"))
    out = handle(state, charge("C1", "RP1"))
    assert sent(out) == [("product_rate_plan", "RP1"), ("product_rate_plan_charge", "C1")]
    assert out.decisions[0].reason == "cascade"


def test_cascade_happens_per_target_and_only_while_the_parent_copy_is_missing() -> None:
    state = connected_world("t1", "t2")
    store_source(state, product("P1"))
    first = handle(state, rate_plan("RP1", "P1"))
    assert routing_keys(first) == [
        "target.t1.product",
        "target.t1.product_rate_plan",
        "target.t2.product",
        "target.t2.product_rate_plan",
    ]
    second = handle(state, rate_plan("RP2", "P1"))
    assert routing_keys(second) == ["target.t1.product_rate_plan", "target.t2.product_rate_plan"]
    assert {d.reason for d in second.decisions} == {"create"}


def test_cascaded_parent_and_child_ids_are_distinct_output_events() -> None:
    state = connected_world("t1")
    store_source(state, product("P1"))
    out = handle(state, rate_plan("RP1", "P1"))
    assert len({o.event_id for o in out.outputs}) == 2


def test_a_cascaded_parent_has_the_id_its_own_event_gives_it() -> None:
    """Two workers may send one parent version at once: by its own event and by a child's
    cascade. Both updates carry the same event id, so consumers see a plain duplicate."""
    own = product("P1")
    direct = handle(connected_world("t1"), own).outputs
    state = connected_world("t1")
    store_source(state, own)
    cascaded = handle(state, rate_plan("RP1", "P1")).outputs[0]
    assert cascaded.event_id == direct[0].event_id
    assert cascaded.body == direct[0].body


@pytest.mark.parametrize(
    "event",
    [
        rate_plan("RP9", "P-unknown"),
        charge("C9", "RP-unknown"),
        rate_plan("RP1", "P-unknown", version=2),
    ],
    ids=["rate_plan_without_product", "charge_without_rate_plan", "known_rate_plan_moved"],
)
def test_unknown_parent_is_retried_later_and_nothing_changes(event: ObjectShared) -> None:
    state = connected_world("t1")
    share_tree(state)  # other objects exist; the named parent does not
    before = Snapshot.of(state)
    with pytest.raises(RetryLater) as exc:
        handle(state, event)
    assert exc.value.reason == "parent_unknown"
    assert Snapshot.of(state) == before


def test_child_is_applied_once_its_parent_arrives() -> None:
    state = connected_world("t1")
    early = rate_plan("RP1", "P1")
    with pytest.raises(RetryLater):
        handle(state, early)
    handle(state, product("P1"))
    out = handle(state, early)  # the redelivered rate plan
    assert sent(out) == [("product_rate_plan", "RP1")]
