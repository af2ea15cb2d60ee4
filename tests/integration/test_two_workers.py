"""Two `entity-sync run` processes on the same queues reach the same final state as one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from entity_sync.bootstrap import App, build
from tests.integration.harness import final_state, processed
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher
from tests.support.runner import running_worker, settings_for
from tests.support.services import delete_topology
from tests.support.waiting import wait_for

TARGETS = ["t-a", "t-b", "t-c"]


def _events(seed: int) -> tuple[list[sc.Event], list[sc.Event]]:
    admin: list[sc.Event] = [sc.entity(sc.GLOBAL, ["USD"])]
    for target in TARGETS:
        admin += [
            sc.entity(target, ["USD"]),
            sc.connection(f"c-{target}", target, "request"),
            sc.connection(f"c-{target}", target, "accept"),
        ]
    # every attribute source-controlled, so the final copies do not depend on arrival order
    admin.append(
        (
            "entity.control",
            {
                "event_id": sc.eid(),
                "occurred_at": sc.T,
                "levels": {"name": "source", "description": "source"},
            },
        )
    )
    rng = random.Random(seed)
    objects = [
        sc.obj(
            "product", f"p-{i}", v, {"sku": f"S{i}", "name": f"N{i} v{v}", "description": f"d{v}"}
        )
        for i in range(150)
        for v in range(1, 9)
    ]
    rng.shuffle(objects)
    objects += rng.sample(objects, 100)  # redelivered duplicates, same event ids
    return admin, objects


def _publish(broker_url: str, prefix: str, events: list[sc.Event]) -> None:
    publisher = PikaPublisher(broker_url, f"{prefix}.in")
    for routing_key, body in events:
        publisher.publish(routing_key, body)
    publisher.close()


def _unique(events: list[sc.Event]) -> int:
    return len({body["event_id"] for _, body in events})


def _feed(
    app: App, broker_url: str, prefix: str, admin: list[sc.Event], objects: list[sc.Event]
) -> None:
    """Admin events first (applied), then the objects; wait until every event is applied."""
    _publish(broker_url, prefix, admin)
    wait_for(
        lambda: processed(app) == _unique(admin),
        what="admin applied",
        status=lambda: f"{processed(app)} of {_unique(admin)} applied",
    )
    _publish(broker_url, prefix, objects)
    wait_for(
        lambda: processed(app) == _unique(admin) + _unique(objects),
        timeout=120,
        what="objects applied",
        status=lambda: f"{processed(app)} of {_unique(admin) + _unique(objects)} applied",
    )


def _run_with_one(
    broker_url: str, database_url: str, prefix: str, admin: list[sc.Event], objects: list[sc.Event]
) -> dict[str, Any]:
    with running_worker(settings_for(prefix, broker_url, database_url)) as (app, _):
        _feed(app, broker_url, prefix, admin, objects)
        return final_state(app)


def _run_with_two(
    broker_url: str,
    database_url: str,
    prefix: str,
    admin: list[sc.Event],
    objects: list[sc.Event],
    log_dir: Path,
) -> dict[str, Any]:
    settings = settings_for(prefix, broker_url, database_url)
    app = build(settings)
    app.upgrade_database()
    env = os.environ | {
        "ENTITY_SYNC_BROKER_URL": broker_url,
        "ENTITY_SYNC_DATABASE_URL": database_url,
        "ENTITY_SYNC_PREFIX": prefix,
        "ENTITY_SYNC_BATCH_SIZE": "50",
        "ENTITY_SYNC_PREFETCH": "100",
        "ENTITY_SYNC_LOG_FORMAT": "json",
    }
    exe = str(Path(sys.executable).with_name("entity-sync"))
    procs = [
        subprocess.Popen(
            [exe, "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(log_dir / f"worker-{i}.log").open("wb"),
        )
        for i in range(2)
    ]
    try:
        # both consume before anything is published, so both share the work
        wait_for(
            lambda: all(
                (log_dir / f"worker-{i}.log").read_text().count('"consuming"') for i in range(2)
            ),
            what="both workers consuming",
        )
        _feed(app, broker_url, prefix, admin, objects)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=60) for proc in procs]
    assert codes == [0, 0], "SIGTERM finishes the batch in hand and exits 0"
    logs = [(log_dir / f"worker-{i}.log").read_text() for i in range(2)]
    assert all('"applied"' in log for log in logs), "both workers applied events"
    state = final_state(app)
    app.close()
    return state


@pytest.mark.integration
def test_two_workers_reach_the_same_state_as_one(
    broker_url: str, new_database_url: Callable[[], str], tmp_path: Path
) -> None:
    admin, objects = _events(seed=7)
    one_db, two_db = new_database_url(), new_database_url()
    prefixes = [f"es-test-two-{os.getpid()}-{i}-{random.randrange(10**6)}" for i in range(2)]
    try:
        one = _run_with_one(broker_url, one_db, prefixes[0], admin, objects)
        two = _run_with_two(broker_url, two_db, prefixes[1], admin, objects, tmp_path)
    finally:
        for prefix in prefixes:
            delete_topology(broker_url, prefix)
    assert len(one["copies"]) == 150 * len(TARGETS)
    assert {c["version"] for c in one["copies"]} == {8}
    assert two == one
