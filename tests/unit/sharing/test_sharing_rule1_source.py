"""Rule 1: only the global entity is a source; it is never a target."""

from __future__ import annotations

import pytest
from builders import Snapshot, add_target, connected_world, handle
from event_builders import GLOBAL, connection, entity, period, product, settings, shared

from entity_sync.handlers.errors import Rejected
from entity_sync.handlers.sharing.state import SharingState


@pytest.mark.parametrize("source", ["t1", "t2", "other"])
def test_object_from_non_global_source_is_rejected_and_nothing_changes(source: str) -> None:
    state = connected_world("t1")
    handle(state, product("P1"))
    before = Snapshot.of(state)
    ev = shared("product", "P1", version=2, data={"name": "x", "sku": "y"}, source=source)
    with pytest.raises(Rejected) as exc:
        handle(state, ev)
    assert exc.value.reason == "not_global_source"
    assert Snapshot.of(state) == before


def test_new_object_from_non_global_source_is_not_stored() -> None:
    state = connected_world("t1")
    with pytest.raises(Rejected) as exc:
        handle(state, shared("product", "P7", data={"sku": "s"}, source="t1"))
    assert exc.value.reason == "not_global_source"
    assert ("product", "P7") not in state.sources
    assert not state.dirty.sources


def test_delete_from_non_global_source_is_rejected_as_not_global_source() -> None:
    state = connected_world("t1")
    ev = shared("product", "P1", version=1, action="delete", data=None, source="t1")
    with pytest.raises(Rejected) as exc:
        handle(state, ev)
    assert exc.value.reason == "not_global_source"


def test_connection_from_non_global_source_is_rejected_and_nothing_changes() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    add_target(state, "t1")
    add_target(state, "t2")
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, connection("c1", "t2", "request", source="t1"))
    assert exc.value.reason == "not_global_source"
    assert Snapshot.of(state) == before


def test_connection_to_global_is_rejected_global_not_target() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, connection("c1", GLOBAL, "request"))
    assert exc.value.reason == "global_not_target"
    assert Snapshot.of(state) == before


def test_settings_for_global_is_rejected_global_not_target() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, settings(GLOBAL, "auto_accept"))
    assert exc.value.reason == "global_not_target"
    assert Snapshot.of(state) == before


def test_global_never_receives_a_copy() -> None:
    state = connected_world("t1")
    handle(state, product("P1"))
    handle(state, period("AP1"))
    assert state.copies
    assert all(c.target_entity != GLOBAL for c in state.copies.values())


def test_entity_claiming_global_but_not_configured_global_is_rejected() -> None:
    state = SharingState()
    with pytest.raises(Rejected) as exc:
        handle(state, entity("t1", is_global=True))
    assert exc.value.reason == "global_mismatch"
    assert state.entities == {}
    assert not state.dirty.entities


def test_configured_global_entity_denying_it_is_global_is_rejected() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    before = Snapshot.of(state)
    with pytest.raises(Rejected) as exc:
        handle(state, entity(GLOBAL, is_global=False))
    assert exc.value.reason == "global_mismatch"
    assert Snapshot.of(state) == before


def test_global_and_target_entities_with_matching_flags_are_stored() -> None:
    state = SharingState()
    handle(state, entity(GLOBAL))
    handle(state, entity("t1"))
    assert state.entities[GLOBAL].is_global is True
    assert state.entities["t1"].is_global is False
    assert state.dirty.entities == {GLOBAL, "t1"}
