"""Each failed message is one failure for an operator, even after a crash between the dead
letter's publish and the ack of its delivery (which leaves two copies in the DLQ)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from kombu.connection import Connection

from entity_sync.bootstrap import build
from entity_sync.config import Settings
from entity_sync.operations.cli.main import cli
from entity_sync.operations.letters import peek
from entity_sync.runtime.consumer import Worker
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.metrics import Metrics
from entity_sync.runtime.settle import Settler
from entity_sync.runtime.topology import Names, declare
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher, queue_depth
from tests.support.runner import running_worker, settings_for
from tests.support.waiting import wait_for


class _Died(BaseException):
    """The worker process ends here, as kill -9 would end it."""


class DiesBeforeAck(Settler):
    """Fault injection: the broker has confirmed the batch's dead letters; the ack never goes."""

    def ack(self, batch: list[Delivery]) -> None:
        raise _Died


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _scraped_depth(settings: Settings, dlq: str) -> float | None:
    """The DLQ's `entity_sync_queue_messages`, as a worker's /metrics shows it."""
    engine = sa.create_engine(settings.database_url)
    try:
        with Metrics(engine=engine, settings=settings, process_metrics=False) as scraped:
            return scraped.registry.get_sample_value(
                "entity_sync_queue_messages", {"queue": dlq, "kind": "dlq"}
            )
    finally:
        engine.dispose()


def _dead_lettered(metrics: Metrics, queue: str) -> float | None:
    return metrics.registry.get_sample_value(
        "entity_sync_messages_dead_lettered_total", {"queue": queue, "reason": "not_global_source"}
    )


def _wait_until_redelivery_acked(broker_url: str, queue: str, metrics: Metrics) -> None:
    """Handled means acked: the queue's ready count is 0 as soon as the worker has taken the
    redelivery, before it dead-letters and acks it (stopping the worker then would return it
    to the queue). The counter (preset at 0) moves once the batch is acked."""
    dlq = f"{queue}.dlq"

    def seen() -> str:
        return (
            f"queue {queue_depth(broker_url, queue)}, dlq {queue_depth(broker_url, dlq)}, "
            f"dead-lettered counted {_dead_lettered(metrics, queue)}"
        )

    wait_for(
        lambda: queue_depth(broker_url, queue) == 0 and (_dead_lettered(metrics, queue) or 0) >= 1,
        what="the redelivery handled",
        status=seen,
    )


def _check_one_failure_two_copies(dlq: str, event_id: str) -> None:
    """list, show, export and status: one failed message, with its two broker copies."""
    listed = _cli("dlq", "list", "-q", "object-shared")
    assert f"{dlq}: 1 message(s) (1 duplicate copies merged)" in listed.output
    assert "not_global_source/" in listed.output
    shown = _cli("dlq", "show", "-q", "object-shared")
    assert shown.output.count("--- ") == 1
    assert f"id={event_id} " in shown.output
    assert "copies=2" in shown.output
    exported = _cli("dlq", "export", "-q", "object-shared")
    records = [orjson.loads(line) for line in exported.output.splitlines()]
    assert [(r["id"], r["copies"]) for r in records] == [(event_id, 2)]
    status = orjson.loads(_cli("status", "--json").output)
    [row] = [q for q in status["queues"] if q["queue"] == dlq]
    assert (row["failed"], row["messages"]) == (1, 2)


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_a_crash_between_dead_letter_and_ack_is_still_one_failed_message(
    broker_url: str, database_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(prefix, broker_url, database_url)
    env = {"BROKER_URL": broker_url, "DATABASE_URL": database_url, "PREFIX": prefix}
    for key, value in env.items():
        monkeypatch.setenv(f"ENTITY_SYNC_{key}", value)
    queue = f"{prefix}.object-shared"
    dlq = f"{queue}.dlq"
    rk, body = sc.obj("product", "p-foreign", 1, {"name": "x"}, source="t-x")  # rule 1

    app = build(settings)
    app.upgrade_database()
    dying = Worker(settings, app.engine, app.sharing_worker().processor, [queue])
    dying.settler = DiesBeforeAck(app.engine, dying.stats, dying.observer)
    with Connection(broker_url) as conn:
        declare(conn, Names(prefix), {})
    pub = PikaPublisher(broker_url, f"{prefix}.in")
    pub.publish(rk, body)
    pub.close()
    with pytest.raises(_Died):
        dying.run(until_idle=10)
    app.close()
    assert queue_depth(broker_url, dlq) == 1  # dead-lettered and confirmed ...
    assert queue_depth(broker_url, queue) == 1  # ... and, never acked, back in its queue

    metrics = Metrics(settings=settings, process_metrics=False)
    with running_worker(settings, observer=metrics):
        _wait_until_redelivery_acked(broker_url, queue, metrics)
    assert queue_depth(broker_url, dlq) == 2  # two copies on the broker: at-least-once

    event_id = body["event_id"]
    dead = _dead_lettered(metrics, queue)
    assert dead == 1.0  # the worker that died never counted its copy

    _check_one_failure_two_copies(dlq, event_id)

    assert queue_depth(broker_url, dlq) == 0  # both copies ingested into one failed message
    assert _scraped_depth(settings, dlq) == 2.0  # what dashboards and the alert read
    dry = _cli("dlq", "replay", "-q", "object-shared", "--dry-run")
    assert "would replay 1, left 0 unselected" in dry.output
    replayed = _cli("dlq", "replay", "-q", "object-shared")
    assert "replayed 1, left 0 unselected, merged 1 duplicate copies" in replayed.output
    assert queue_depth(broker_url, dlq) == 0
    with Connection(broker_url) as conn:
        back = peek(conn, queue)
    assert [x.id for x in back] == [event_id]  # replayed once
    status = orjson.loads(_cli("status", "--json").output)
    [row] = [q for q in status["queues"] if q["queue"] == dlq]
    assert (row["failed"], row["messages"]) == (0, 0)
