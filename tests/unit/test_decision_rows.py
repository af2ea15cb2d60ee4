"""The decision log shares one row among targets with the same decision, keeping each target's
order of decisions about an object."""

from __future__ import annotations

import datetime as dt
from typing import Any

from entity_sync.handlers.sharing.model import Decision, DecisionKind
from entity_sync.store.decisions import decision_rows

AT = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)


def d(target: str | None, decision: DecisionKind = "sent", obj: str = "X", **kw: Any) -> Decision:
    return Decision(
        cause_event_id=kw.pop("cause", "E"),
        decision=decision,
        reason=kw.pop("reason", "create"),
        message=kw.pop("message", ""),
        target_entity=target,
        object_type="product",
        object_id=obj,
        version=kw.pop("version", 1),
    )


def shape(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["object_id"], r["decision"], r["target_entity"], r["targets"]) for r in rows]


def test_a_fan_out_is_one_row_listing_its_targets() -> None:
    rows = decision_rows([d(f"t{i}") for i in range(10)], AT)
    assert shape(rows) == [("X", "sent", None, [f"t{i}" for i in range(10)])]
    assert rows[0]["at"] == AT


def test_different_decisions_and_single_targets_keep_one_row_each() -> None:
    rows = decision_rows(
        [
            d("t1"),
            d("t2", "not_accepted", reason="dont_accept"),
            d("t3"),
            d(None, "rejected", reason="immutable_attribute"),
            d("t4", cause="F"),
        ],
        AT,
    )
    assert shape(rows) == [
        ("X", "sent", None, ["t1", "t3"]),
        ("X", "not_accepted", "t2", None),
        ("X", "rejected", None, None),
        ("X", "sent", "t4", None),
    ]


def test_a_target_never_sees_its_decisions_about_an_object_reordered() -> None:
    rows = decision_rows(
        [
            d("t1"),
            d("t1", "unchanged", reason="no_change"),
            d("t2"),  # joins the first row: t2 has nothing later about X
            d("t1"),  # the same as the first, but after t1's "unchanged": a row of its own
            d("t1", obj="Y"),  # another object: joins nothing of X
        ],
        AT,
    )
    assert shape(rows) == [
        ("X", "sent", None, ["t1", "t2"]),
        ("X", "unchanged", "t1", None),
        ("X", "sent", "t1", None),
        ("Y", "sent", "t1", None),
    ]
