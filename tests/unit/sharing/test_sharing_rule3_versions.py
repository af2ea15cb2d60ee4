"""Rule 3: latest version wins, duplicates and reordering are harmless, backfill on accept."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from builders import add_target, connect, connected_world, copy_of, handle, routing_keys, sent
from event_builders import GLOBAL, charge, connection, entity, period, product, rate_plan, settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from entity_sync.handlers.errors import RetryLater
from entity_sync.handlers.sharing.model import Outcome
from entity_sync.handlers.sharing.state import Dirty, SharingState


def test_newer_version_updates_the_target() -> None:
    state = connected_world("t1")
    handle(state, product("P1", sku="SKU-1"))
    out = handle(state, product("P1", version=2, sku="SKU-2"))
    assert routing_keys(out) == ["target.t1.product"]
    body = out.outputs[0].body
    assert (body["action"], body["version"], body["changed"]) == ("update", 2, ["sku"])
    assert body["data"]["sku"] == "SKU-2"
    assert copy_of(state, "product", "P1").version == 2
    assert state.sources[("product", "P1")].version == 2


def test_newer_version_with_a_gap_is_applied() -> None:
    state = connected_world("t1")
    handle(state, product("P1"))
    out = handle(state, product("P1", version=7, sku="SKU-7"))
    assert out.outputs[0].body["version"] == 7


@pytest.mark.parametrize("version", [3, 2, 1])
def test_equal_or_older_version_is_stale_without_output(version: int) -> None:
    state = connected_world("t1", "t2")
    handle(state, product("P1", version=3, sku="SKU-3"))
    copies = copy.deepcopy(state.copies)
    source = copy.deepcopy(state.sources)
    out = handle(state, product("P1", version=version, sku="SKU-other"))
    assert out.outputs == []
    assert [(d.decision, d.reason, d.target_entity) for d in out.decisions] == [
        ("stale", "version_not_newer", "t1"),
        ("stale", "version_not_newer", "t2"),
    ]
    assert all(d.version == version for d in out.decisions)
    assert state.copies == copies
    assert state.sources == source


def test_redelivered_event_is_harmless() -> None:
    state = connected_world("t1")
    ev = product("P1", version=1)
    first = handle(state, ev)
    snapshot = copy.deepcopy(state.copies)
    again = handle(state, ev)
    assert len(first.outputs) == 1
    assert again.outputs == []
    assert [d.decision for d in again.decisions] == ["stale"]
    assert state.copies == snapshot


def test_older_version_arriving_late_does_not_roll_back() -> None:
    state = connected_world("t1")
    v2 = product("P1", version=2, sku="SKU-2")
    v1 = product("P1", version=1, sku="SKU-1")
    handle(state, v2)
    out = handle(state, v1)
    assert out.outputs == []
    assert copy_of(state, "product", "P1").data["sku"] == "SKU-2"
    assert state.sources[("product", "P1")].data["sku"] == "SKU-2"


# --- property: any order, any duplicates -----------------------------------------------------


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[int, list[int]]:
    n = draw(st.integers(min_value=1, max_value=8))
    copies = [draw(st.integers(min_value=1, max_value=3)) for _ in range(n)]
    order = [v for v in range(1, n + 1) for _ in range(copies[v - 1])]
    return n, draw(st.permutations(order))


@hsettings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(deliveries())
def test_any_permutation_with_duplicates_converges_on_the_latest_version(
    plan: tuple[int, list[int]],
) -> None:
    n, order = plan
    events = {
        v: product("P1", version=v, sku=f"SKU-{v}", name=f"name-{v}", description=f"d-{v}")
        for v in range(1, n + 1)
    }
    state = connected_world("t1")
    published: list[int] = []
    for v in order:
        out = handle(state, events[v])
        published.extend(o.body["version"] for o in out.outputs)

    final = copy_of(state, "product", "P1")
    assert final.version == n
    assert final.data["sku"] == f"SKU-{n}"  # source-controlled: data of version n
    first = order[0]
    assert final.data["name"] == f"name-{first}"  # target-controlled: kept since create
    assert published == sorted(set(published)), "a lower or repeated version was published"
    assert published[0] == first
    assert published[-1] == n
    assert state.sources[("product", "P1")].version == n


# --- backfill ---------------------------------------------------------------------------------


def populate(state: SharingState) -> None:
    """Ids chosen so that sorting by id alone would put children before parents."""
    handle(state, period("AP-0", "2026-01-01", "2026-01-31"))
    handle(state, product("Z-P2"))
    handle(state, product("Z-P1"))
    handle(state, rate_plan("M-RP1", "Z-P1"))
    handle(state, rate_plan("M-RP2", "Z-P2"))
    handle(state, charge("A-C2", "M-RP2"))
    handle(state, charge("A-C1", "M-RP1"))


def backfill_world(*, auto_accept: bool) -> tuple[SharingState, Outcome]:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1", earliest_activity_date="2026-06-01")
    populate(state)
    handle(state, connection("c1", "t1", "request"))
    if auto_accept:
        handle(state, settings("t1", "auto_accept"))
    return state, handle(state, connection("c1", "t1", "accept"))


def test_backfill_on_accept_sends_products_then_rate_plans_then_charges() -> None:
    _, out = backfill_world(auto_accept=False)
    assert sent(out) == [
        ("product", "Z-P1"),
        ("product", "Z-P2"),
        ("product_rate_plan", "M-RP1"),
        ("product_rate_plan", "M-RP2"),
        ("product_rate_plan_charge", "A-C1"),
        ("product_rate_plan_charge", "A-C2"),
    ]
    assert all(o.body["action"] == "create" for o in out.outputs)


def test_backfill_without_auto_accept_withholds_periods_with_a_decision() -> None:
    _, out = backfill_world(auto_accept=False)
    assert "target.t1.accounting_period" not in routing_keys(out)
    [d] = [d for d in out.decisions if d.object_type == "accounting_period"]
    assert (d.decision, d.reason, d.object_id) == ("not_accepted", "dont_accept", "AP-0")


def test_backfill_with_auto_accept_sends_periods_after_charges() -> None:
    _, out = backfill_world(auto_accept=True)
    order = sent(out)
    assert order[-1] == ("accounting_period", "AP-0")
    assert [t for t, _ in order].index("accounting_period") == 6


def test_backfill_decisions_say_backfill() -> None:
    _, out = backfill_world(auto_accept=True)
    sent_decisions = [d for d in out.decisions if d.decision == "sent"]
    assert len(sent_decisions) == 7
    assert {d.reason for d in sent_decisions} == {"backfill"}


def test_backfill_sends_the_current_version_of_each_object() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1")
    handle(state, product("P1", version=1, sku="SKU-1"))
    handle(state, product("P1", version=4, sku="SKU-4"))
    out = connect(state, "t1")
    [body] = [o.body for o in out.outputs]
    assert (body["version"], body["data"]["sku"]) == (4, "SKU-4")


def test_backfill_rate_plan_points_at_product_copy() -> None:
    _, out = backfill_world(auto_accept=False)
    bodies = {o.body["source_object_id"]: o.body for o in out.outputs}
    assert bodies["M-RP1"]["target_parent_id"] == bodies["Z-P1"]["target_object_id"]
    assert bodies["A-C2"]["target_parent_id"] == bodies["M-RP2"]["target_object_id"]
    assert bodies["Z-P1"]["target_parent_id"] is None


def test_backfill_goes_only_to_the_accepted_target() -> None:
    state = connected_world("t1")
    handle(state, product("P1"))
    add_target(state, "t2")
    out = connect(state, "t2")
    assert routing_keys(out) == ["target.t2.product"]
    assert all(d.target_entity in (None, "t2") for d in out.decisions)


@st.composite
def tree_deliveries(draw: st.DrawFn) -> list[tuple[str, int]]:
    """Versions of a product, a rate plan and a charge, shuffled, some delivered twice."""
    tops = {
        "P1": draw(st.integers(1, 4)),
        "RP1": draw(st.integers(1, 3)),
        "C1": draw(st.integers(1, 3)),
    }
    order = [
        (name, v)
        for name, top in tops.items()
        for v in range(1, top + 1)
        for _ in range(draw(st.integers(1, 2)))
    ]
    return draw(st.permutations(order))


@hsettings(max_examples=150, deadline=None, database=None)
@given(tree_deliveries())
def test_shuffled_tree_with_retries_converges_parents_first(plan: list[tuple[str, int]]) -> None:
    makers = {
        "P1": lambda v: product("P1", version=v, sku=f"P-{v}"),
        "RP1": lambda v: rate_plan("RP1", "P1", version=v, sku=f"RP-{v}"),
        "C1": lambda v: charge("C1", "RP1", version=v, sku=f"C-{v}"),
    }
    types = {"P1": "product", "RP1": "product_rate_plan", "C1": "product_rate_plan_charge"}
    events = {(name, v): makers[name](v) for name, v in set(plan)}
    state = connected_world("t1")
    queue = list(plan)
    published: list[dict[str, Any]] = []
    while queue:
        name, v = queue.pop(0)
        try:
            out = handle(state, events[(name, v)])
        except RetryLater:
            queue.append((name, v))  # the worker retries it later
            continue
        published.extend(o.body for o in out.outputs)

    top = {name: max(v for n, v in plan if n == name) for name in makers}
    ids_seen: dict[str, str] = {}
    versions: dict[str, list[int]] = {}
    for body in published:
        oid = body["source_object_id"]
        parent = {"RP1": "P1", "C1": "RP1"}.get(oid)
        if parent is not None:
            assert parent in ids_seen, f"{oid} published before its parent"
            assert body["target_parent_id"] == ids_seen[parent]
        ids_seen[oid] = body["target_object_id"]
        versions.setdefault(oid, []).append(body["version"])
    for oid, seen in versions.items():
        assert seen == sorted(set(seen)), f"{oid}: {seen}"
    for name, object_type in types.items():
        held = copy_of(state, object_type, name)
        assert held.version == top[name]
        assert held.data["sku"] == events[(name, top[name])].data["sku"]  # type: ignore[index]


def test_applied_change_marks_the_source_and_every_written_copy_dirty() -> None:
    state = connected_world("t1", "t2")
    state.dirty = Dirty()
    handle(state, product("P1"))
    assert state.dirty.sources == {("product", "P1")}
    assert state.dirty.copies == {("conn-t1", "product", "P1"), ("conn-t2", "product", "P1")}


def test_stale_change_marks_nothing_dirty() -> None:
    state = connected_world("t1")
    handle(state, product("P1", version=2))
    state.dirty = Dirty()
    handle(state, product("P1", version=2))
    assert state.dirty == Dirty()
