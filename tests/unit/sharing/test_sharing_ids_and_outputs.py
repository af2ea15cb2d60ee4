"""Deterministic ids (§3, §6) and output bodies that validate against schemas/outputs.py."""

from __future__ import annotations

import re
import uuid

from builders import add_target, connect, connected_world, handle, store_source
from event_builders import GLOBAL, charge, connection, entity, period, product, rate_plan, settings
from hypothesis import given
from hypothesis import strategies as st

from entity_sync.handlers.sharing import ids
from entity_sync.handlers.sharing.model import Output
from entity_sync.handlers.sharing.state import SharingState
from entity_sync.schemas.inputs import Message
from entity_sync.schemas.outputs import ShareException, TargetUpdate

E1 = "11111111-1111-4111-8111-111111111111"
E2 = "22222222-2222-4222-8222-222222222222"


def run_once() -> list[Output]:
    """A full scenario with fixed event ids; returns every output in order."""
    state = SharingState()
    outputs: list[Output] = []
    fixed = iter(f"00000000-0000-4000-8000-{i:012d}" for i in range(1, 100))

    def go(ev: Message) -> None:
        outputs.extend(handle(state, ev).outputs)

    go(entity(GLOBAL, event_id=next(fixed)))
    go(entity("t1", currencies=["USD"], event_id=next(fixed)))
    go(entity("t2", has_own_periods=True, event_id=next(fixed)))
    go(product("P1", event_id=next(fixed)))
    go(rate_plan("RP1", "P1", event_id=next(fixed)))
    go(charge("C1", "RP1", prices={"USD": "1", "EUR": "2"}, event_id=next(fixed)))
    go(period("AP1", event_id=next(fixed)))
    for t in ("t1", "t2"):
        go(connection(f"c-{t}", t, "request", event_id=next(fixed)))
        go(connection(f"c-{t}", t, "accept", event_id=next(fixed)))
    go(product("P1", version=2, sku="SKU-2", event_id=next(fixed)))
    go(entity("t1", currencies=["USD", "EUR"], event_id=next(fixed)))
    go(settings("t2", "auto_accept", event_id=next(fixed)))
    return outputs


def test_two_independent_runs_give_the_same_output_ids_and_bodies() -> None:
    first, second = run_once(), run_once()
    assert len(first) >= 10
    assert [o.event_id for o in first] == [o.event_id for o in second]
    assert [o.routing_key for o in first] == [o.routing_key for o in second]
    assert [o.body for o in first] == [o.body for o in second]


def test_output_ids_are_unique_within_a_run() -> None:
    outs = run_once()
    assert len({o.event_id for o in outs}) == len(outs)


def test_same_cause_connection_object_gives_the_same_event_id() -> None:
    def once() -> str:
        state = SharingState()
        handle(state, entity(GLOBAL))
        add_target(state, "t1")
        connect(state, "t1", "c1")
        return handle(state, product("P1", event_id=E1)).outputs[0].event_id

    assert once() == once() == ids.output_event_id(E1, "c1", "product", "P1")


def test_different_target_gives_a_different_event_id() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    for t in ("t1", "t2"):
        add_target(state, t)
        connect(state, t)
    out = handle(state, product("P1", event_id=E1))
    a, b = (o.event_id for o in out.outputs)
    assert a != b
    assert b == ids.output_event_id(E1, "conn-t2", "product", "P1")


def test_a_version_sent_by_its_event_or_by_a_backfill_has_one_id_per_connection() -> None:
    """Two workers may send one version to one connection at once (its own event, a child's
    cascade, a backfill): one id. A later connection of the same target gets new ids."""
    direct = connected_world("t1")
    sent = handle(direct, product("P1", event_id=E1)).outputs[0]
    late = SharingState()
    handle(late, entity(GLOBAL))
    handle(late, product("P1", event_id=E1))
    add_target(late, "t1")
    backfilled = connect(late, "t1").outputs[0]
    assert (backfilled.event_id, backfilled.body) == (sent.event_id, sent.body)
    handle(late, connection("conn-t1", "t1", "disconnect"))
    again = connect(late, "t1", "conn-t1-again").outputs[0]
    assert again.event_id != sent.event_id
    assert again.body["target_object_id"] != sent.body["target_object_id"]


def test_different_cause_or_object_gives_a_different_event_id() -> None:
    base = ids.output_event_id(E1, "t1", "product", "P1")
    assert base != ids.output_event_id(E2, "t1", "product", "P1")
    assert base != ids.output_event_id(E1, "t1", "product", "P2")
    assert base != ids.output_event_id(E1, "t1", "product_rate_plan", "P1")
    assert base != ids.exception_event_id(E1, "t1", "product", "P1")


def test_output_event_id_is_a_uuid_and_matches_the_body() -> None:
    for o in run_once():
        assert str(uuid.UUID(o.event_id)) == o.event_id
        assert o.body["event_id"] == o.event_id


def test_target_object_id_is_deterministic_per_connection_type_and_object() -> None:
    a = ids.target_object_id("c1", "product", "X")
    assert a == ids.target_object_id("c1", "product", "X")
    assert a != ids.target_object_id("c2", "product", "X")
    assert a != ids.target_object_id("c1", "product_rate_plan", "X")
    assert a != ids.target_object_id("c1", "product", "Y")


def test_copies_use_the_deterministic_target_object_id() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1")
    connect(state, "t1", "c1")
    store_source(state, product("P1"))
    handle(state, rate_plan("RP1", "P1"))
    for (cid, object_type, object_id), held in state.copies.items():
        assert held.target_object_id == ids.target_object_id(cid, object_type, object_id)


def test_update_keeps_the_target_object_id_of_the_copy() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1")
    connect(state, "t1", "c1")
    first = handle(state, product("P1")).outputs[0].body["target_object_id"]
    second = handle(state, product("P1", version=2, sku="S2")).outputs[0].body["target_object_id"]
    assert first == second


# --- contract --------------------------------------------------------------------------------

TARGET_KEY = re.compile(r"^target\.([A-Za-z0-9_-]+)\.([a-z_]+)$")
EXCEPTION_KEY = re.compile(r"^share\.exception\.([A-Za-z0-9_-]+)$")


def test_every_output_validates_against_the_contract_models() -> None:
    outs = run_once()
    kinds = {"target": 0, "exception": 0}
    actions = set()
    for o in outs:
        if m := TARGET_KEY.match(o.routing_key):
            model = TargetUpdate.model_validate(o.body)
            assert (model.target_entity, model.object_type) == m.groups()
            assert str(model.event_id) == o.event_id
            actions.add(model.action)
            kinds["target"] += 1
        elif m := EXCEPTION_KEY.match(o.routing_key):
            exc = ShareException.model_validate(o.body)
            assert exc.target_entity == m.group(1)
            assert str(exc.event_id) == o.event_id
            kinds["exception"] += 1
        else:
            raise AssertionError(f"unexpected routing key {o.routing_key}")
    assert kinds["target"] >= 8
    assert kinds["exception"] >= 1
    assert actions == {"create", "update"}


def test_activity_exception_validates_against_the_contract() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1", earliest_activity_date="2020-01-01")
    connect(state, "t1")
    handle(state, settings("t1", "auto_accept"))
    [out] = handle(state, period("AP1", event_id=E1)).outputs
    exc = ShareException.model_validate(out.body)
    assert exc.reason == "activity_before_first_period"
    assert str(exc.cause_event_id) == E1
    assert exc.version == 1
    assert out.event_id == ids.exception_event_id(E1, "t1", "accounting_period", "AP1")


def test_target_update_body_fields() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1")
    connect(state, "t1", "c1")
    handle(state, product("P1"))
    [out] = handle(state, rate_plan("RP1", "P1", event_id=E1)).outputs
    model = TargetUpdate.model_validate(out.body)
    assert str(model.cause_event_id) == E1
    assert model.source_object_id == "RP1"
    assert model.target_object_id == ids.target_object_id("c1", "product_rate_plan", "RP1")
    assert model.target_parent_id == ids.target_object_id("c1", "product", "P1")
    assert model.version == 1


@given(st.text(), st.text(), st.text(), st.text())
def test_ids_are_the_uuid5_of_their_name(cause: str, target: str, kind: str, obj: str) -> None:
    """The fast path computes exactly uuid.uuid5 (ids of earlier releases stay the same)."""
    name = f"{cause}|{target}|{kind}|{obj}"
    assert ids.output_event_id(cause, target, kind, obj) == str(
        uuid.uuid5(ids.NAMESPACE, f"out|{name}")
    )
    assert ids.exception_event_id(cause, target, kind, obj) == str(
        uuid.uuid5(ids.NAMESPACE, f"exc|{name}")
    )
    assert ids.target_object_id(target, kind, obj) == (
        uuid.uuid5(ids.NAMESPACE, f"copy|{target}|{kind}|{obj}").hex
    )


def test_known_ids_never_change() -> None:
    assert ids.output_event_id(E1, "t1", "product", "P1") == "f37923cd-8af8-5a4e-8c38-38aa638ce56c"
    assert (
        ids.exception_event_id(E1, "t1", "accounting_period", "AP-1")
        == "66a4dac9-861d-5381-93e3-1e59dae01112"
    )
    assert (
        ids.target_object_id("c1", "product_rate_plan_charge", "ch-é")
        == "04cf0d78b5ba5a4f8fee842dff8b5050"
    )
