"""The three-worker chaos run's workload: product trees in shuffled versions, with an
accept, a currency activation and a control change mid-stream, and the model of their end."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.support import scenario as sc

T = "2026-11-20T09:00:00Z"
TARGETS = {"t-a": ["USD"], "t-b": ["USD"], "t-c": ["USD"]}  # t-b activates EUR mid-stream
FINAL_CURRENCIES = {"t-a": {"USD"}, "t-b": {"USD", "EUR"}, "t-c": {"USD"}}
Message = tuple[str, bytes, str]  # routing key, body, message id


def _msg(routing_key: str, body: dict[str, Any]) -> Message:
    return routing_key, orjson.dumps(body), body["event_id"]


def _entity(entity_id: str, currencies: list[str]) -> Message:
    return _msg(*sc.entity(entity_id, currencies))


def _connection(target: str, action: str) -> Message:
    return _msg(*sc.connection(f"c-{target}", target, action))


def _object(kind: str, object_id: str, parent: str | None, version: int, k: int) -> Message:
    data: dict[str, Any] = {"name": f"{object_id}", "description": "d3" if version == 3 else "d0"}
    if kind == "product":
        data["sku"] = f"{object_id}-v{version}"
    if kind == "product_rate_plan_charge":
        data |= {
            "charge_type": "recurring",
            "charge_model": "flat_fee",
            "billing_timing": "in_advance",
            "prices": {"USD": f"{k}.{version}0", "EUR": f"{k}.{version}5"},
        }
    return _msg(
        f"object.shared.{kind}",
        {
            "event_id": str(uuid.uuid4()),
            "occurred_at": T,
            "source_entity": "global",
            "object_type": kind,
            "object_id": object_id,
            "parent_id": parent,
            "version": version,
            "action": "upsert",
            "data": data,
        },
    )


@dataclass
class TreePlan:
    """Three phases: admin; the first half of versions 1-2; then (after the mid-stream admin
    events are applied) the rest of versions 1-2 shuffled with every version 3."""

    admin: list[Message] = field(default_factory=list)
    first: list[Message] = field(default_factory=list)
    middle: list[Message] = field(default_factory=list)
    last: list[Message] = field(default_factory=list)
    expected: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (target, id)

    @property
    def total(self) -> int:
        return len(self.admin) + len(self.first) + len(self.middle) + len(self.last)


def tree_plan(trees: int, seed: int) -> TreePlan:
    rng = random.Random(seed)
    plan = TreePlan()
    plan.admin = [_entity("global", ["USD", "EUR"])]
    for target, currencies in TARGETS.items():
        plan.admin += [_entity(target, currencies), _connection(target, "request")]
        if target != "t-c":
            plan.admin.append(_connection(target, "accept"))
    early: list[Message] = []
    late: list[Message] = []
    for k in range(trees):
        objects = [
            ("product", f"P{k}", None),
            ("product_rate_plan", f"R{k}", f"P{k}"),
            ("product_rate_plan_charge", f"C{k}a", f"R{k}"),
            ("product_rate_plan_charge", f"C{k}b", f"R{k}"),
        ]
        for kind, object_id, parent in objects:
            early += [_object(kind, object_id, parent, v, k) for v in (1, 2)]
            late.append(_object(kind, object_id, parent, 3, k))
            # The model (docs/design.md §4): every target ends at version 3; after the control
            # change `description` and `prices` are source-controlled, and every version 3 is
            # applied after it; prices only in the target's active currencies (rule 8).
            for target, active in FINAL_CURRENCIES.items():
                want: dict[str, Any] = {"name": object_id, "description": "d3"}
                if kind == "product":
                    want["sku"] = f"{object_id}-v3"
                if kind == "product_rate_plan_charge":
                    prices = {"USD": f"{k}.30", "EUR": f"{k}.35"}
                    want["prices"] = {c: a for c, a in prices.items() if c in active}
                plan.expected[(target, object_id)] = want
    rng.shuffle(early)
    half = len(early) // 2
    plan.first = early[:half]
    plan.middle = [
        _connection("t-c", "accept"),  # a backfill while objects change
        _entity("t-b", ["USD", "EUR"]),  # a currency activation: withheld prices released
        _msg(
            "entity.control",
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": T,
                "levels": {"description": "source", "prices": "source"},
            },
        ),
    ]
    plan.last = early[half:] + late
    rng.shuffle(plan.last)
    return plan
