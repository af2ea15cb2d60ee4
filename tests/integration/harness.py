"""One scenario, two backends: RabbitMQ + PostgreSQL, and the embedded default."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import sqlalchemy as sa

from entity_sync.bootstrap import App
from entity_sync.runtime import outbox
from entity_sync.schemas.outputs import ShareException, TargetUpdate
from entity_sync.store import tables as t
from tests.support import scenario as sc
from tests.support.amqp import Received
from tests.support.waiting import wait_for


class Backend(Protocol):
    def publish(self, events: list[tuple[str, dict[str, Any] | bytes]]) -> None: ...
    def outputs(self, count: int) -> list[Received]: ...
    def dead_letters(self, queue: str, count: int) -> list[Received]: ...


def settled(app: App, count: int) -> bool:
    """`count` events applied and every bulk fan-out they started finished.

    A fan-out runs after its event (runtime/bulk.py); a scenario that wants one exact set of
    outputs waits for it before the next phase, as objects changed meanwhile would otherwise be
    offered twice (once by their own event, once by the fan-out). Both counts come from one
    statement, so from one snapshot: read one after the other, a batch committing in between
    (its jobs recorded with it) made a phase look settled while its jobs had not run.
    """
    jobs = t.bulk_jobs.c
    running = (
        sa.select(sa.func.count()).select_from(t.bulk_jobs).where(jobs.status == "running")
    ).scalar_subquery()
    applied = sa.select(sa.func.count()).select_from(t.processed_events).scalar_subquery()
    with app.engine.connect() as conn:
        done, left = conn.execute(sa.select(applied, running)).one()
    return bool(done == count and left == 0)


def processed(app: App) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(t.processed_events)).scalar_one()
        )


def copies(app: App) -> dict[tuple[str, str], dict[str, Any]]:
    with app.engine.connect() as conn:
        rows = conn.execute(sa.select(t.target_copies)).all()
    return {(r.target_entity, r.source_object_id): dict(r._mapping) for r in rows}


def final_state(app: App) -> dict[str, Any]:
    """Everything that defines the sharing state, without timestamps."""
    with app.engine.connect() as conn:

        def rows(table: sa.Table, *order: str) -> list[dict[str, Any]]:
            stmt = sa.select(table).order_by(*[table.c[o] for o in order])
            return [
                {k: v for k, v in r._mapping.items() if k not in ("updated_at", "event_id")}
                for r in conn.execute(stmt)
            ]

        return {
            "entities": rows(t.entities, "entity_id"),
            "connections": rows(t.connections, "connection_id"),
            "settings": rows(t.share_settings, "target_entity"),
            "levels": rows(t.control_levels, "attribute"),
            "sources": rows(t.source_objects, "object_type", "object_id"),
            "copies": rows(t.target_copies, "connection_id", "object_type", "source_object_id"),
        }


def run_scenario(app: App, backend: Backend, prefix: str) -> dict[str, Any]:
    """Publishes the scenario phase by phase and checks every observable result."""
    observed = publish_phases(app, backend, prefix)
    try:
        updates = check_outputs(observed.outputs)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nbulk jobs: {_jobs(app)}") from None
    check_update_contents(updates)
    check_dead_letters(observed)
    check_state(app)
    return final_state(app)


@dataclass(frozen=True)
class Observed:
    """What a scenario run left on the broker, with the bad input it was given."""

    outputs: list[Received]
    object_dlq: list[Received]
    admin_dlq: list[Received]
    poison: list[tuple[str, bytes, str]]  # routing key, body, expected x-error-type
    rejected: dict[str, str]  # event id -> expected x-error-type, for change-phase rejections


def publish_phases(app: App, backend: Backend, prefix: str) -> Observed:
    """Admin, objects, changes (with poison), release: each phase waits for the last to apply."""
    admin = sc.admin_phase()
    backend.publish(list(admin))
    wait_for(lambda: settled(app, len(admin)), what="admin events applied")

    objects = sc.object_phase()
    backend.publish(list(objects))
    wait_for(lambda: settled(app, len(admin) + len(objects)), what="objects applied")

    changes, rejected = sc.change_phase()
    backend.publish(list(changes))
    poison = sc.poison()
    backend.publish([(rk, body) for rk, body, _ in poison])
    applied_changes = 1  # the update; its duplicate, the stale event and rejections are not new
    stale = 1
    wait_for(
        lambda: processed(app) == len(admin) + len(objects) + applied_changes + stale,
        what="changes applied",
    )
    release = sc.release_phase()
    backend.publish(list(release))

    outputs = backend.outputs(18)
    object_dlq = backend.dead_letters(f"{prefix}.object-shared.dlq", 8)
    admin_dlq = backend.dead_letters(f"{prefix}.entity-admin.dlq", 2)
    wait_for(
        lambda: processed(app) == len(admin) + len(objects) + 2 + len(release),
        what="release applied",
    )
    return Observed(outputs, object_dlq, admin_dlq, poison, rejected)


def _jobs(app: App) -> list[tuple[Any, ...]]:
    """The bulk jobs, to say which admin event caused an output no event explains."""
    c = t.bulk_jobs.c
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.cause_event_id, c.kind, c.target_entity, c.object_types, c.status, c.done)
        )
        return [tuple(r) for r in rows]


def check_outputs(outputs: list[Received]) -> list[Received]:
    """One update per receiving target, each valid against the contract; returns the updates."""
    updates = [o for o in outputs if o.routing_key.startswith("target.")]
    exceptions = [o for o in outputs if o.routing_key.startswith("share.exception.")]
    for o in updates:
        body = TargetUpdate.model_validate(o.json())
        assert o.routing_key == f"target.{body.target_entity}.{body.object_type}"
        assert o.message_id == str(body.event_id)
    assert len({o.message_id for o in outputs}) == len(outputs), "output ids are unique"
    per_target = Counter(o.json()["target_entity"] for o in updates)
    seen = [(o.routing_key, o.json().get("source_object_id"), o.json().get("cause_event_id"))
            for o in outputs]  # fmt: skip
    assert per_target == {"t-auto": 6, "t-manual": 6, "t-own": 5}, f"outputs: {seen}"
    assert "t-pending" not in per_target
    assert len(exceptions) == 1
    exc = ShareException.model_validate(exceptions[0].json())
    assert (exc.target_entity, exc.reason) == ("t-own", "target_has_own_periods")
    assert exceptions[0].routing_key == "share.exception.t-own"
    return updates


def check_update_contents(updates: list[Received]) -> None:
    """What the updates carry: controlled fields, currencies, parents, the release, hostile text."""
    by_key = {
        (o.json()["target_entity"], o.json()["source_object_id"], o.json()["action"]): o.json()
        for o in updates
        if o.json()["changed"] != ["prices"]
    }
    update = by_key[("t-auto", sc.PRODUCT, "update")]
    assert update["changed"] == ["name"]  # name is source-controlled now; description is not
    assert update["data"]["name"] == "Analytics Pro"
    assert update["data"]["description"] == "d1"
    assert by_key[("t-manual", sc.CHARGE, "create")]["data"]["prices"] == {"USD": "49.00"}
    assert by_key[("t-auto", sc.CHARGE, "create")]["data"]["prices"] == {
        "USD": "49.00",
        "EUR": "45.00",
    }
    assert (
        by_key[("t-auto", sc.RATE_PLAN, "create")]["target_parent_id"]
        == by_key[("t-auto", sc.PRODUCT, "create")]["target_object_id"]
    )
    release_out = [o.json() for o in updates if o.json()["changed"] == ["prices"]]
    assert len(release_out) == 1
    assert release_out[0]["target_entity"] == "t-manual"
    assert release_out[0]["data"]["prices"] == {"USD": "49.00", "EUR": "45.00"}
    hostile = by_key[("t-auto", sc.HOSTILE_PRODUCT, "create")]
    assert hostile["data"]["name"] == sc.HOSTILE_NAME  # verbatim, never interpreted


DLQ_HEADERS = (
    "x-error-type",
    "x-error-message",
    "x-error-at",
    "x-attempts",
    "x-original-queue",
    "x-original-routing-key",
)


def check_dead_letters(observed: Observed) -> None:
    """Dead letters: at once, with the §6 headers and the original body."""
    object_dlq, admin_dlq = observed.object_dlq, observed.admin_dlq
    poison, rejected = observed.poison, observed.rejected
    reasons = Counter(d.headers["x-error-type"] for d in object_dlq)
    expected = Counter(reason for *_, reason in poison if reason != "unknown_routing_key")
    expected.update(rejected.values())
    expected["schema_invalid"] -= 1  # the entity.upserted array goes to the admin DLQ
    assert reasons == +expected
    assert Counter(d.headers["x-error-type"] for d in admin_dlq) == {
        "schema_invalid": 1,
        "unknown_routing_key": 1,
    }
    for d in object_dlq + admin_dlq:
        for header in DLQ_HEADERS:
            assert header in d.headers, header
        assert d.headers["x-attempts"] == 1
    originals = {body for _, body, _ in poison}
    assert {
        d.body for d in object_dlq + admin_dlq if d.headers["x-error-type"] not in rejected.values()
    } <= originals
    for d in object_dlq:
        if d.headers["x-error-type"] in rejected.values():
            assert rejected[orjson.loads(d.body)["event_id"]] == d.headers["x-error-type"]


def check_state(app: App) -> None:
    """The copies held per target, and an empty outbox once the worker is idle."""
    held = copies(app)
    assert held[("t-auto", sc.PRODUCT)]["version"] == 2
    assert held[("t-auto", sc.PERIOD)]["version"] == 1
    assert ("t-manual", sc.PERIOD) not in held
    assert ("t-own", sc.PERIOD) not in held
    assert held[("t-manual", sc.CHARGE)]["data"]["prices"] == {"USD": "49.00", "EUR": "45.00"}
    assert held[("t-auto", sc.HOSTILE_PRODUCT)]["data"]["name"] == sc.HOSTILE_NAME
    assert not any(k[0] == "t-pending" for k in held)
    # confirmed batches leave nothing in the outbox once the worker is idle
    wait_for(lambda: outbox.backlog(app.engine) == 0, what="outbox emptied")
