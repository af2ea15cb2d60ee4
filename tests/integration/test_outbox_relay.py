"""Outputs committed but never published (the worker died in between) are relayed later."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from sqlalchemy.engine import Engine

from entity_sync.bootstrap import build
from entity_sync.handlers.sharing.model import Output
from entity_sync.runtime import outbox, retry
from entity_sync.runtime.broker import connect
from entity_sync.runtime.topology import declare
from entity_sync.store import tables as t
from tests.support.amqp import bind_output_queue, collect
from tests.support.runner import running_worker, settings_for
from tests.support.waiting import wait_for

HOSTILE = 'Ünï "q" \\ \u2028 </script> \U0001f600 1e400'


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_batches_left_in_the_outbox_are_published_once_and_removed(
    broker_url: str, database_url: str, prefix: str
) -> None:
    settings = settings_for(prefix, broker_url, database_url, outbox_relay_age_seconds=0)
    app = build(settings)
    app.upgrade_database()
    outputs = [
        Output(
            f"target.t-{i}.product",
            f"00000000-0000-4000-8000-00000000000{i}",
            {"event_id": f"00000000-0000-4000-8000-00000000000{i}", "n": i},
        )
        for i in range(3)
    ]
    outputs[0].body["name"] = HOSTILE  # relayed as the bytes a publish after commit sends
    with app.engine.begin() as conn:  # a batch committed; then the worker died
        outbox.store(conn, outputs[:2], app.names.out_exchange)
    with app.engine.begin() as conn:
        outbox.store(conn, outputs[2:], app.names.out_exchange)
    outputs += _rows_of_earlier_releases(app.engine)
    assert outbox.backlog(app.engine) == 5
    with connect(settings) as conn:
        declare(conn, app.names, retry.delay_queues(settings))
    queue = bind_output_queue(broker_url, prefix)
    app.close()

    with running_worker(settings) as (app, _worker):
        # the relay runs on start, and again when idle, for rows older than the relay age
        got = collect(broker_url, queue, 5, timeout=30)
        wait_for(lambda: outbox.backlog(app.engine) == 0, what="outbox emptied")
    assert sorted(m.message_id or "" for m in got) == sorted(o.event_id for o in outputs)
    assert {m.routing_key for m in got} == {o.routing_key for o in outputs}
    assert {m.body for m in got} == {
        orjson.dumps(outputs[0].body),
        b'{"event_id":"00000000-0000-4000-8000-000000000001","n":1}',
        b'{"event_id":"00000000-0000-4000-8000-000000000002","n":2}',
        b'{"n":9}',
        b'{"n":8}',
    }


def _rows_of_earlier_releases(engine: Engine) -> list[Output]:
    """A row of the per-output table, and a batch row whose bodies are strings of their JSON
    (both as earlier releases wrote them, and still relayed)."""
    legacy = Output("target.t-9.product", "00000000-0000-4000-8000-000000000009", {"n": 9})
    earlier = Output("target.t-8.product", "00000000-0000-4000-8000-000000000008", {"n": 8})
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            t.outbox.insert().values(
                event_id=legacy.event_id,
                routing_key=legacy.routing_key,
                body='{"n":9}',
                created_at=now,
            )
        )
        conn.execute(
            t.outbox_batches.insert().values(
                created_at=now,
                size=1,
                messages=orjson.dumps(
                    [[earlier.event_id, earlier.routing_key, '{"n":8}']]
                ).decode(),
            )
        )
    return [legacy, earlier]
