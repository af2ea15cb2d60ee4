"""Rule 2: connection life cycle; only connected targets receive anything."""

from __future__ import annotations

import copy

import pytest
from builders import (
    Snapshot,
    add_target,
    connect,
    handle,
    only_decision,
    routing_keys,
    sent,
    share_tree,
)
from event_builders import GLOBAL, connection, entity, product, rate_plan

from entity_sync.handlers.errors import Rejected, RetryLater
from entity_sync.handlers.sharing import ids
from entity_sync.handlers.sharing.state import SharingState


def world(*targets: str) -> SharingState:
    state = SharingState()
    handle(state, entity(GLOBAL))
    for t in targets:
        add_target(state, t)
    return state


def status(state: SharingState, cid: str) -> str:
    return state.connections[cid].status


# --- legal transitions ------------------------------------------------------------------------


def test_request_makes_a_pending_connection() -> None:
    state = world("t1")
    out = handle(state, connection("c1", "t1", "request"))
    assert status(state, "c1") == "pending"
    d = only_decision(out)
    assert (d.decision, d.reason, d.target_entity) == ("connection", "pending", "t1")
    assert state.decisions[-1] == d
    assert out.outputs == []
    assert state.dirty.connections == {"c1"}


def test_accept_makes_a_pending_connection_connected() -> None:
    state = world("t1")
    handle(state, connection("c1", "t1", "request"))
    out = handle(state, connection("c1", "t1", "accept"))
    assert status(state, "c1") == "connected"
    assert (out.decisions[0].decision, out.decisions[0].reason) == ("connection", "connected")


def test_deny_makes_a_pending_connection_denied() -> None:
    state = world("t1")
    handle(state, connection("c1", "t1", "request"))
    out = handle(state, connection("c1", "t1", "deny"))
    assert status(state, "c1") == "denied"
    d = only_decision(out)
    assert (d.decision, d.reason) == ("connection", "denied")
    assert out.outputs == []


def test_disconnect_makes_a_connected_connection_disconnected() -> None:
    state = world("t1")
    connect(state, "t1", "c1")
    out = handle(state, connection("c1", "t1", "disconnect"))
    assert status(state, "c1") == "disconnected"
    d = only_decision(out)
    assert (d.decision, d.reason) == ("connection", "disconnected")
    assert out.outputs == []


# --- illegal transitions ----------------------------------------------------------------------

ILLEGAL_SEQUENCES = {
    "accept_twice": (["request", "accept"], "accept"),
    "accept_denied": (["request", "deny"], "accept"),
    "deny_twice": (["request", "deny"], "deny"),
    "deny_connected": (["request", "accept"], "deny"),
    "disconnect_pending": (["request"], "disconnect"),
    "disconnect_denied": (["request", "deny"], "disconnect"),
    "request_on_pending_id": (["request"], "request"),
    "request_on_connected_id": (["request", "accept"], "request"),
    "request_on_denied_id": (["request", "deny"], "request"),
    "accept_unknown_id": ([], "accept"),
    "deny_unknown_id": ([], "deny"),
    "disconnect_unknown_id": ([], "disconnect"),
    "request_after_disconnect": (["request", "accept", "disconnect"], "request"),
    "accept_after_disconnect": (["request", "accept", "disconnect"], "accept"),
    "deny_after_disconnect": (["request", "accept", "disconnect"], "deny"),
    "disconnect_after_disconnect": (["request", "accept", "disconnect"], "disconnect"),
}


@pytest.mark.parametrize(
    ("history", "action"), ILLEGAL_SEQUENCES.values(), ids=ILLEGAL_SEQUENCES.keys()
)
def test_illegal_transition_is_rejected_and_nothing_changes(
    history: list[str], action: str
) -> None:
    state = world("t1")
    handle(state, product("P1"))
    for step in history:
        handle(state, connection("c1", "t1", step))
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, connection("c1", "t1", action))
    assert exc.value.reason == "illegal_transition"
    assert Snapshot.of(state) == before


@pytest.mark.parametrize("first", ["pending", "connected"])
def test_second_active_connection_for_a_target_is_rejected(first: str) -> None:
    state = world("t1")
    handle(state, connection("c1", "t1", "request"))
    if first == "connected":
        handle(state, connection("c1", "t1", "accept"))
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, connection("c2", "t1", "request"))
    assert exc.value.reason == "connection_exists"
    assert Snapshot.of(state) == before


@pytest.mark.parametrize("ended", ["deny", "disconnect"])
def test_new_connection_allowed_after_the_old_one_ended(ended: str) -> None:
    state = world("t1")
    handle(state, connection("c1", "t1", "request"))
    if ended == "disconnect":
        handle(state, connection("c1", "t1", "accept"))
    handle(state, connection("c1", "t1", ended))
    handle(state, connection("c2", "t1", "request"))
    assert status(state, "c2") == "pending"


def test_connection_id_with_different_target_is_a_mismatch() -> None:
    state = world("t1", "t2")
    handle(state, connection("c1", "t1", "request"))
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, connection("c1", "t2", "accept"))
    assert exc.value.reason == "connection_mismatch"
    assert Snapshot.of(state) == before


def test_request_for_unknown_entity_is_retried_later() -> None:
    state = world()
    before = Snapshot.of(state)
    with pytest.raises(RetryLater) as exc:
        handle(state, connection("c1", "t9", "request"))
    assert exc.value.reason == "unknown_entity"
    assert Snapshot.of(state) == before


def test_two_targets_may_each_have_a_connection() -> None:
    state = world("t1", "t2")
    connect(state, "t1", "c1")
    connect(state, "t2", "c2")
    assert (status(state, "c1"), status(state, "c2")) == ("connected", "connected")


# --- only connected targets receive -----------------------------------------------------------


def test_only_connected_targets_receive_outputs_copies_and_decisions() -> None:
    state = world("t_pending", "t_denied", "t_gone", "t_on")
    handle(state, connection("cp", "t_pending", "request"))
    handle(state, connection("cd", "t_denied", "request"))
    handle(state, connection("cd", "t_denied", "deny"))
    connect(state, "t_gone", "cg")
    handle(state, connection("cg", "t_gone", "disconnect"))
    connect(state, "t_on", "con")
    out = handle(state, product("P1"))
    assert routing_keys(out) == ["target.t_on.product"]
    assert {d.target_entity for d in out.decisions} == {"t_on"}
    assert {c.target_entity for c in state.copies.values()} == {"t_on"}


def test_pending_target_receives_nothing_until_accepted_then_gets_backfill() -> None:
    state = world("t1")
    handle(state, connection("c1", "t1", "request"))
    assert handle(state, product("P1")).outputs == []
    assert state.copies == {}
    out = handle(state, connection("c1", "t1", "accept"))
    assert sent(out) == [("product", "P1")]


def test_accept_backfill_bodies_target_the_new_connection() -> None:
    state = world("t1")
    handle(state, product("P1"))
    out = connect(state, "t1", "c1")
    body = out.outputs[0].body
    assert out.outputs[0].routing_key == "target.t1.product"
    assert body["target_object_id"] == ids.target_object_id("c1", "product", "P1")
    assert body["action"] == "create"
    assert ("c1", "product", "P1") in state.dirty.copies


# --- disconnect and reconnect -----------------------------------------------------------------


def test_disconnect_keeps_copies_and_sends_nothing_more() -> None:
    state = world("t1")
    connect(state, "t1", "c1")
    share_tree(state)
    old_copies = copy.deepcopy(state.copies)
    handle(state, connection("c1", "t1", "disconnect"))
    assert state.copies == old_copies
    out = handle(state, product("P1", version=2, sku="SKU-2"))
    assert out.outputs == []
    assert out.decisions == []
    assert state.copies == old_copies


def test_reconnect_backfills_new_copies_with_new_ids_and_leaves_old_ones_alone() -> None:
    state = world("t1")
    connect(state, "t1", "c1")
    share_tree(state)
    handle(state, connection("c1", "t1", "disconnect"))
    old_copies = copy.deepcopy(state.copies)
    old_ids = {c.target_object_id for c in old_copies.values()}

    out = connect(state, "t1", "c2")

    assert sent(out) == [
        ("product", "P1"),
        ("product_rate_plan", "RP1"),
        ("product_rate_plan_charge", "C1"),
    ]
    assert all(o.body["action"] == "create" for o in out.outputs)
    new_ids = {o.body["target_object_id"] for o in out.outputs}
    assert new_ids.isdisjoint(old_ids)
    assert len(new_ids) == 3
    for key, old in old_copies.items():
        assert state.copies[key] == old
    new_keys = {k for k in state.copies if k[0] == "c2"}
    assert new_keys == {
        ("c2", "product", "P1"),
        ("c2", "product_rate_plan", "RP1"),
        ("c2", "product_rate_plan_charge", "C1"),
    }
    # the rate plan's new copy points at the new product copy, not the old one
    rp = state.copies[("c2", "product_rate_plan", "RP1")]
    assert rp.target_parent_id == state.copies[("c2", "product", "P1")].target_object_id


def test_after_reconnect_updates_go_to_the_new_copies_only() -> None:
    state = world("t1")
    connect(state, "t1", "c1")
    handle(state, product("P1"))
    handle(state, connection("c1", "t1", "disconnect"))
    connect(state, "t1", "c2")
    old = copy.deepcopy(state.copies[("c1", "product", "P1")])
    out = handle(state, product("P1", version=2, sku="SKU-2"))
    assert len(out.outputs) == 1
    assert out.outputs[0].body["target_object_id"] == ids.target_object_id("c2", "product", "P1")
    assert state.copies[("c1", "product", "P1")] == old
    assert state.copies[("c2", "product", "P1")].data["sku"] == "SKU-2"


def test_reconnect_with_the_old_connection_id_is_illegal() -> None:
    state = world("t1")
    connect(state, "t1", "c1")
    handle(state, connection("c1", "t1", "disconnect"))
    with pytest.raises(Rejected) as exc:
        handle(state, connection("c1", "t1", "request"))
    assert exc.value.reason == "illegal_transition"


def test_rate_plan_shared_to_pending_target_is_not_copied() -> None:
    state = world("t1")
    handle(state, connection("c1", "t1", "request"))
    handle(state, product("P1"))
    out = handle(state, rate_plan("RP1", "P1"))
    assert out.outputs == []
    assert state.copies == {}
