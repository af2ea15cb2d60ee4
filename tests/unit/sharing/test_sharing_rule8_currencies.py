"""Rule 8: prices reach a target only for its active currencies; withheld ones follow later."""

from __future__ import annotations

from typing import Any

from builders import add_target, connected_world, copy_of, handle, only_output, routing_keys
from event_builders import GLOBAL, charge, connection, entity, product, rate_plan

from entity_sync.handlers.sharing.state import SharingState

PRICES = {"USD": "49.00", "EUR": "45.00", "GBP": "40.00"}
TIERS = [
    {"currency": "USD", "price": "1.00"},
    {"currency": "EUR", "price": "2.00"},
    {"currency": "GBP", "price": "3.00"},
]


def world(currencies: tuple[str, ...] = ("USD",), **charge_kw: Any) -> SharingState:
    state = connected_world("t1", currencies=currencies)
    handle(state, product("P1"))
    handle(state, rate_plan("RP1", "P1"))
    handle(state, charge("C1", "RP1", **charge_kw))
    return state


def test_create_sends_prices_and_tiers_only_for_active_currencies() -> None:
    state = world(("USD", "GBP"), prices=PRICES, tiers=TIERS)
    held = copy_of(state, "product_rate_plan_charge", "C1")
    assert held.data["prices"] == {"USD": "49.00", "GBP": "40.00"}
    assert held.data["tiers"] == [TIERS[0], TIERS[2]]
    [d] = [d for d in state.decisions if d.object_id == "C1"]
    assert "EUR" in d.message


def test_each_target_gets_its_own_currencies() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    for target, currencies in (("t1", ["USD"]), ("t2", ["EUR", "GBP"])):
        add_target(state, target, currencies=currencies)
        handle(state, connection(f"c-{target}", target, "request"))
        handle(state, connection(f"c-{target}", target, "accept"))
    handle(state, product("P1"))
    handle(state, rate_plan("RP1", "P1"))
    out = handle(state, charge("C1", "RP1", prices=PRICES))
    prices = {o.body["target_entity"]: o.body["data"]["prices"] for o in out.outputs}
    assert prices == {"t1": {"USD": "49.00"}, "t2": {"EUR": "45.00", "GBP": "40.00"}}


def test_activating_a_currency_releases_withheld_prices() -> None:
    state = world(("USD",), prices=PRICES, tiers=[])
    out = handle(state, entity("t1", currencies=["USD", "EUR"]))
    output = only_output(out)
    assert output.routing_key == "target.t1.product_rate_plan_charge"
    body = output.body
    assert body["action"] == "update"
    assert body["changed"] == ["prices"]
    assert body["data"]["prices"] == {"USD": "49.00", "EUR": "45.00"}
    assert body["version"] == 1
    [d] = out.decisions
    assert (d.decision, d.reason, d.target_entity, d.object_id) == (
        "sent",
        "currency_release",
        "t1",
        "C1",
    )
    assert copy_of(state, "product_rate_plan_charge", "C1").data["prices"] == body["data"]["prices"]
    assert ("conn-t1", "product_rate_plan_charge", "C1") in state.dirty.copies


def test_activating_a_currency_releases_withheld_tiers_too() -> None:
    state = world(("USD",), prices=PRICES, tiers=TIERS)
    body = only_output(handle(state, entity("t1", currencies=["USD", "GBP"]))).body
    assert body["changed"] == ["prices", "tiers"]
    assert body["data"]["tiers"] == [TIERS[0], TIERS[2]]
    assert body["data"]["prices"] == {"USD": "49.00", "GBP": "40.00"}


def test_release_covers_every_charge_of_the_target() -> None:
    state = world(("USD",), prices=PRICES)
    handle(state, charge("C2", "RP1", prices={"EUR": "9.00"}))
    out = handle(state, entity("t1", currencies=["USD", "EUR"]))
    assert [o.body["source_object_id"] for o in out.outputs] == ["C1", "C2"]
    assert len({o.event_id for o in out.outputs}) == 2


def test_no_new_currency_sends_nothing() -> None:
    state = world(("USD",), prices=PRICES)
    assert handle(state, entity("t1", currencies=["USD"])).outputs == []


def test_deactivating_a_currency_sends_nothing() -> None:
    state = world(("USD", "EUR"), prices=PRICES)
    assert handle(state, entity("t1", currencies=["USD"])).outputs == []


def test_activating_a_currency_no_charge_uses_sends_nothing() -> None:
    state = world(("USD",), prices=PRICES)
    out = handle(state, entity("t1", currencies=["USD", "JPY"]))
    assert out.outputs == []
    assert out.decisions == []


def test_activation_while_pending_is_not_sent_but_backfill_includes_the_currency() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1", currencies=["USD"])
    handle(state, product("P1"))
    handle(state, rate_plan("RP1", "P1"))
    handle(state, charge("C1", "RP1", prices=PRICES))
    handle(state, connection("c1", "t1", "request"))
    assert handle(state, entity("t1", currencies=["USD", "EUR"])).outputs == []
    out = handle(state, connection("c1", "t1", "accept"))
    [charge_body] = [o.body for o in out.outputs if o.body["source_object_id"] == "C1"]
    assert charge_body["data"]["prices"] == {"USD": "49.00", "EUR": "45.00"}


def test_activation_in_one_target_does_not_touch_another() -> None:
    state = connected_world("t1", "t2", currencies=("USD",))
    handle(state, product("P1"))
    handle(state, rate_plan("RP1", "P1"))
    handle(state, charge("C1", "RP1", prices=PRICES))
    out = handle(state, entity("t2", currencies=["USD", "EUR"]))
    assert routing_keys(out) == ["target.t2.product_rate_plan_charge"]


def test_later_update_after_release_keeps_the_released_currency() -> None:
    state = world(("USD",), prices=PRICES)
    handle(state, entity("t1", currencies=["USD", "EUR"]))
    handle(state, charge("C1", "RP1", version=2, prices=PRICES, name="renamed"))
    held = copy_of(state, "product_rate_plan_charge", "C1")
    assert held.data["prices"] == {"USD": "49.00", "EUR": "45.00"}


def test_a_currency_activated_earlier_in_the_same_state_reaches_the_next_object() -> None:
    """The rules' view of a target is kept per batch (send.target_view): an entity upsert in
    the batch must replace it, or the next charge would still lose the new currency."""
    state = world(("USD",), prices=PRICES, tiers=[])  # t1's view is built: USD only
    handle(state, entity("t1", currencies=["USD", "GBP"]))
    out = handle(state, charge("C2", "RP1", prices=PRICES))
    assert only_output(out).body["data"]["prices"] == {"USD": "49.00", "GBP": "40.00"}
