"""`dlq replay --canary`: one message first; the rest only once the worker has applied it."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from entity_sync.config import Settings
from entity_sync.operations.cli.main import cli
from entity_sync.store import audit, failed
from tests.integration.harness import processed
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher, queue_depth
from tests.support.runner import running_worker, settings_for
from tests.support.waiting import wait_for


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("ENTITY_SYNC_BROKER_URL", settings.broker_url)
    monkeypatch.setenv("ENTITY_SYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ENTITY_SYNC_PREFIX", settings.prefix)


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_a_canary_that_fails_again_stops_the_replay(
    broker_url: str, database_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(prefix, broker_url, database_url)
    _env(monkeypatch, settings)
    dlq = f"{prefix}.object-shared.dlq"
    with running_worker(settings) as (app, _worker):
        pub = PikaPublisher(broker_url, f"{prefix}.in")
        for i in range(3):  # the rules reject these every time: not from the global entity
            pub.publish(*sc.obj("product", f"p-{i}", 1, {"name": "x"}, source="t-x"))
        pub.close()
        wait_for(lambda: queue_depth(broker_url, dlq) == 3, what="3 dead letters")
        out = _cli("dlq", "replay", "-q", "object-shared", "--canary")
        assert "failed again; the rest was not sent" in out, out

    rows = failed.rows(app.engine, failed.Filter(queues=[dlq]))
    assert len(rows) == 3  # all still failed: the two others were never sent
    assert sorted(r["failures"] for r in rows) == [1, 1, 2]  # the canary failed a second time
    [entry] = audit.recent(app.engine)
    assert (entry["status"], entry["selected"], entry["done"]) == ("stopped", 3, 1)
    assert entry["scope"]["canary"] is True


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_a_canary_that_is_applied_lets_the_rest_go(
    broker_url: str, database_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(
        prefix, broker_url, database_url, retry_per_queue={"entity-admin": {"max_attempts": 1}}
    )
    _env(monkeypatch, settings)
    dlq = f"{prefix}.entity-admin.dlq"
    with running_worker(settings) as (app, _worker):
        pub = PikaPublisher(broker_url, f"{prefix}.in")
        for n in range(2):  # connections to an entity nobody announced yet
            pub.publish(*sc.connection(f"c-late-{n}", f"t-late-{n}", "request"))
        wait_for(lambda: queue_depth(broker_url, dlq) == 2, what="2 dead letters")
        before = processed(app)
        for n in range(2):  # the cause is fixed
            pub.publish(*sc.entity(f"t-late-{n}", ["USD"]))
        wait_for(lambda: processed(app) == before + 2, what="entities applied")
        pub.close()
        out = _cli("dlq", "replay", "-q", "entity-admin", "--canary")
        assert "replayed 2, left 0 unselected" in out, out
        wait_for(lambda: processed(app) == before + 4, what="both replays applied")
    assert failed.count(app.engine, failed.Filter(queues=[dlq])) == 0
    with sa.create_engine(database_url).connect() as conn:
        status = conn.execute(sa.select(audit.H.c.status)).scalar_one()
    assert status == "finished"
