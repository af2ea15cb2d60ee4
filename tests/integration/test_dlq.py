"""Delayed retries and the `entity-sync dlq` commands against the real broker and database."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from kombu.connection import Connection

from entity_sync.bootstrap import build, operations_for
from entity_sync.config import Settings
from entity_sync.operations import dlq as dlq_ops
from entity_sync.operations import status
from entity_sync.operations.cli.main import cli
from entity_sync.operations.letters import DeadLetter, peek
from entity_sync.runtime.retry import delay_queues
from entity_sync.store import failed
from tests.integration.harness import processed
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher, kombu_publish, queue_depth
from tests.support.runner import running_worker, settings_for
from tests.support.waiting import wait_for


@pytest.fixture
def retry_cleanup(broker_url: str, prefix: str) -> Iterator[None]:
    yield
    with Connection(broker_url) as conn:
        channel = conn.channel()
        for queue, delays in delay_queues(Settings(prefix=prefix, retry_delays="1")).items():
            for name in [f"{queue}.retry.{d}s" for d in (*delays, 1, 5, 30, 120)]:
                with contextlib.suppress(Exception):
                    channel.queue_delete(name)
                if channel.is_open is False:
                    channel = conn.channel()


def _env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("ENTITY_SYNC_BROKER_URL", settings.broker_url)
    monkeypatch.setenv("ENTITY_SYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ENTITY_SYNC_PREFIX", settings.prefix)
    monkeypatch.setenv("ENTITY_SYNC_DATA_DIR", str(settings.data_dir))


def _dlq(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["dlq", *args], catch_exceptions=False)
    return result


def _failed(database_url: str, dlq: str) -> list[str]:
    """Ids of the failed messages of `dlq` still open in the store, oldest first."""
    engine = sa.create_engine(database_url)
    try:
        return [r["message_id"] for r in failed.rows(engine, failed.Filter(queues=[dlq]))]
    finally:
        engine.dispose()


def _orphan_connection() -> tuple[str, dict[str, Any]]:
    """A connection to an entity nobody announced: RetryLater until the entity arrives."""
    return sc.connection("c-late", "t-late", "request")


def _check_retried_then_dead(letter: DeadLetter, attempts: int) -> None:
    h = letter.headers
    assert h["x-error-type"] == "unknown_entity"
    assert h["x-exception-type"] == "RetryLater"
    assert h["x-attempts"] == attempts
    assert h["x-first-failure-at"] < h["x-last-failure-at"]
    assert h["x-original-routing-key"] == "entity.connection"
    assert isinstance(h["x-error-pid"], int)
    assert h["x-error-host"]


def _check_reading_ingests(settings: Settings, admin_dlq: str, late: dict[str, Any]) -> None:
    """list, show and export read the three dead letters, ingested, none redelivered."""
    listed = _dlq("list", "-q", "entity-admin")
    assert listed.exit_code == 0, listed.output
    assert f"{admin_dlq}: 3 message(s)" in listed.output
    # Reading ingested them: out of the broker's DLQ, into the store, none redelivered.
    assert queue_depth(settings.broker_url, admin_dlq) == 0
    assert len(_failed(settings.database_url, admin_dlq)) == 3
    assert "unknown_entity/" in listed.output
    assert "not_utf8/" in listed.output
    assert "invalid_json/" in listed.output

    shown = _dlq("show", "-q", "entity-admin", "--id", late["event_id"])
    assert shown.exit_code == 0, shown.output
    assert "header x-exception-type: RetryLater" in shown.output
    assert '"target_entity": "t-late"' in shown.output

    exported = _dlq("export", "-q", "entity-admin")
    records = [orjson.loads(line) for line in exported.output.splitlines()]
    assert len(records) == 3
    assert {r["headers"]["x-error-type"] for r in records} == {
        "unknown_entity",
        "not_utf8",
        "invalid_json",
    }
    assert any("body_base64" in r for r in records)  # not UTF-8, kept losslessly


def _check_purge_and_history(database_url: str, admin_dlq: str) -> None:
    refused = CliRunner().invoke(cli, ["dlq", "purge", "-q", "entity-admin"], input="n\n")
    assert refused.exit_code == 1
    assert len(_failed(database_url, admin_dlq)) == 2
    purged = _dlq("purge", "-q", "entity-admin", "--yes")
    assert "purged 2" in purged.output
    assert _failed(database_url, admin_dlq) == []
    assert f"{admin_dlq}: 0 message(s)" in _dlq("list", "-q", "entity-admin").output
    # Every replay and purge, dry runs too, is in the history with who did it.
    history = _dlq("history").output
    assert history.count(getpass.getuser()) == 3, history
    for action in ("replay", "purge"):
        assert action in history


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup", "retry_cleanup")
def test_retries_wait_in_delay_queues_then_dead_letter_and_replay_applies_them(
    broker_url: str, database_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(
        prefix,
        broker_url,
        database_url,
        retry_delays="1",
        retry_per_queue={"entity-admin": {"max_attempts": 3}},
    )
    _env(monkeypatch, settings)
    admin_dlq = f"{prefix}.entity-admin.dlq"
    with running_worker(settings) as (app, _worker):
        pub = PikaPublisher(broker_url, f"{prefix}.in")
        late = _orphan_connection()
        pub.publish(*late)
        for _rk, body, _ in sc.poison()[:2]:
            pub.publish("entity.upserted", body)
        wait_for(lambda: queue_depth(broker_url, admin_dlq) == 3, timeout=30, what="3 DLQ")

        letters = peek(Connection(broker_url), admin_dlq)
        assert queue_depth(broker_url, admin_dlq) == 3  # peeking leaves them in place
        [retried] = [x for x in letters if x.id == late[1]["event_id"]]
        _check_retried_then_dead(retried, attempts=3)
        # It went through the broker's delay queue twice (1 s each), not straight back.
        deaths = retried.headers["x-death"]
        assert deaths[0]["queue"] == f"{prefix}.entity-admin.retry.1s"
        assert deaths[0]["count"] == 2
        assert orjson.loads(retried.body) == late[1]  # the body untouched

        _check_reading_ingests(settings, admin_dlq, late[1])

        dry = _dlq("replay", "-q", "entity-admin", "-g", "unknown_entity", "--dry-run")
        assert "would replay 1" in dry.output
        assert len(_failed(database_url, admin_dlq)) == 3

        # The missing entity arrives; replaying the dead letter now succeeds.
        before = processed(app)
        pub.publish(*sc.entity("t-late", ["USD"]))
        wait_for(lambda: processed(app) == before + 1, what="entity applied")
        replayed = _dlq("replay", "-q", "entity-admin", "-g", "unknown_entity", "--rate", "50")
        assert replayed.exit_code == 0, replayed.output
        assert "replayed 1" in replayed.output
        wait_for(lambda: processed(app) == before + 2, what="replayed connection applied")
        assert len(_failed(database_url, admin_dlq)) == 2  # only the two poison messages left

        _check_purge_and_history(database_url, admin_dlq)
        pub.close()


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup", "retry_cleanup")
def test_replay_by_id_and_limit_leaves_the_rest_in_order(
    broker_url: str, database_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(prefix, broker_url, database_url)
    _env(monkeypatch, settings)
    dlq = f"{prefix}.object-shared.dlq"
    with running_worker(settings):
        pub = PikaPublisher(broker_url, f"{prefix}.in")
        rejected = [sc.obj("product", f"p-{i}", 1, {"name": "x"}, source="t-x") for i in range(5)]
        for rk, body in rejected:
            pub.publish(rk, body)
        wait_for(lambda: queue_depth(broker_url, dlq) == 5, what="5 dead letters")
        pub.close()
    ids = [body["event_id"] for _, body in rejected]
    # The worker is stopped: replayed messages wait in the input queue.
    one = _dlq("replay", "-q", "object-shared", "--id", ids[3])
    assert "replayed 1" in one.output, one.output
    two = _dlq("replay", "--all", "--limit", "2")
    assert "replayed 2" in two.output, two.output
    assert queue_depth(broker_url, f"{prefix}.object-shared") == 3
    assert _failed(database_url, dlq) == [ids[2], ids[4]]
    back = peek(Connection(broker_url), f"{prefix}.object-shared")
    assert [x.id for x in back] == [ids[3], ids[0], ids[1]]
    for letter in back:
        assert not any(k.startswith(("x-error", "x-death", "x-attempts")) for k in letter.headers)
        assert letter.headers["x-replayed-by"]
        assert letter.headers["x-replayed-from"] == dlq
        assert letter.headers["x-original-routing-key"] == "object.shared.product"
    bad = CliRunner().invoke(cli, ["dlq", "replay"])
    assert bad.exit_code == 2
    missing = CliRunner().invoke(cli, ["dlq", "show", "--id", "nope"])
    assert missing.exit_code == 1
    assert missing.output.strip() == "entity-sync: error: not_found: no dead letter matches"


@pytest.mark.embedded
def test_embedded_broker_delays_retries_and_replays(
    embedded_dir: Path, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(prefix, "", "", data_dir=embedded_dir, retry_delays="1", max_attempts=3)
    _env(monkeypatch, settings)
    with running_worker(settings) as (app, _worker):
        late = _orphan_connection()
        kombu_publish(settings.broker_url, prefix, [(late[0], orjson.dumps(late[1]))])
        admin_dlq = f"{prefix}.entity-admin.dlq"

        def dead() -> list[DeadLetter]:
            with Connection(settings.broker_url) as conn:
                return peek(conn, admin_dlq)

        wait_for(lambda: len(dead()) == 1, timeout=30, what="dead letter on the embedded broker")
        _check_retried_then_dead(dead()[0], attempts=3)
        before = processed(app)
        kombu_publish(
            settings.broker_url,
            prefix,
            [("entity.upserted", orjson.dumps(sc.entity("t-late", ["USD"])[1]))],
        )
        wait_for(lambda: processed(app) == before + 1, what="entity applied")
        replayed = _dlq("replay", "-q", "entity-admin")
        assert "replayed 1" in replayed.output, replayed.output
        wait_for(lambda: processed(app) == before + 2, what="replay applied")
        assert dead() == []


@pytest.mark.embedded
def test_reading_often_on_the_embedded_broker_holds_no_connections(embedded_dir: Path) -> None:
    """A console on the embedded broker reads on every page: each read gives back its
    channel's database connection (kombu's SQLAlchemy transport pools 15 at most)."""
    app = build(settings_for("es-reads", "", "", data_dir=embedded_dir))
    app.upgrade_database()
    ops = operations_for(app, actor="test", via="cli")
    try:
        for _ in range(40):
            assert [s.count for s in dlq_ops.summaries(ops, None)] == [0, 0, 0]
            assert "queues" in status.report(ops, sessions=1)
    finally:
        app.close()
