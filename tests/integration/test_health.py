"""/healthz, /readyz and `entity-sync status` against real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from entity_sync.operations.cli.main import cli
from entity_sync.runtime.health import HealthServer, Readiness
from entity_sync.runtime.topology import Names
from entity_sync.store.engine import create_engine
from tests.deploy.live import live_worker
from tests.support.amqp import PikaPublisher, queue_depth
from tests.support.runner import settings_for
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("rabbit_cleanup")
def test_readyz_is_200_while_consuming_and_503_once_stopped(
    broker_url: str, database_url: str, prefix: str
) -> None:
    with live_worker(settings_for(prefix, broker_url, database_url)) as live:
        status, body = live.get("/readyz")
        assert status == 200, body
        assert orjson.loads(body) == {
            "ready": True,
            "checks": {"broker": "ok", "database": "ok", "migrations": "ok"},
        }
        assert live.get("/healthz")[0] == 200
        assert live.get("/nothing")[0] == 404
        live.stop()
        status, body = live.get("/readyz")
        assert status == 503
        assert orjson.loads(body)["checks"]["broker"] == "not consuming"
        assert live.get("/healthz")[0] == 200  # alive: only readiness changed


@pytest.mark.usefixtures("rabbit_cleanup")
def test_readyz_is_503_before_consuming_starts(
    broker_url: str, database_url: str, prefix: str
) -> None:
    with live_worker(settings_for(prefix, broker_url, database_url), consume=False) as live:
        status, body = live.get("/readyz")
    assert status == 503
    assert orjson.loads(body)["checks"]["broker"] == "not consuming"


def test_readyz_is_503_when_migrations_are_not_current(database_url: str) -> None:
    engine = create_engine(database_url)  # a fresh schema: no migration applied
    try:
        readiness = Readiness(lambda: True, engine, cache_seconds=0)
        with HealthServer(CollectorRegistry(), readiness.checks, port=0, host="127.0.0.1") as srv:
            live_checks = _get(srv.url + "/readyz")
    finally:
        engine.dispose()
    assert live_checks[0] == 503
    checks = orjson.loads(live_checks[1])["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"].startswith("not at head")


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    engine = sa.create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    readiness = Readiness(lambda: True, engine, cache_seconds=0)
    with HealthServer(CollectorRegistry(), readiness.checks, port=0, host="127.0.0.1") as srv:
        status, body = _get(srv.url + "/readyz")
    assert status == 503
    assert orjson.loads(body)["checks"]["database"].startswith("unreachable")
    assert not readiness.ready()


@pytest.mark.usefixtures("rabbit_cleanup")
def test_status_reports_queues_consumers_dead_letters_and_outbox(
    broker_url: str, database_url: str, prefix: str
) -> None:
    settings = settings_for(prefix, broker_url, database_url)
    names = Names(prefix)
    env = {
        "ENTITY_SYNC_PREFIX": prefix,
        "ENTITY_SYNC_BROKER_URL": broker_url,
        "ENTITY_SYNC_DATABASE_URL": database_url,
    }
    with live_worker(settings) as live:
        publisher = PikaPublisher(broker_url, names.in_exchange)
        publisher.publish("object.shared.product", b"{not json")
        publisher.close()
        dlq = Names.dlq(names.object_shared)
        wait_for(lambda: queue_depth(broker_url, dlq) == 1, 30, "the dead letter")
        result = CliRunner().invoke(cli, ["status", "--json"], env=env)
        assert result.exit_code == 0, result.output
        report = orjson.loads(result.output)
        screen = CliRunner().invoke(cli, ["status"], env=env, terminal_width=160)
        live.stop()
    queues = {q["queue"]: q for q in report["queues"]}
    assert queues[dlq]["messages"] == 1
    assert queues[dlq]["kind"] == "dlq"
    assert queues[names.object_shared]["consumers"] == 1
    assert queues[names.entity_admin]["consumers"] == 1
    assert queues[names.sync_request]["consumers"] == 1  # `run` consumes sync requests too
    assert queues[names.unrouted]["kind"] == "unrouted"
    assert report["outbox_backlog"] == 0
    assert report["schema"]["current"] == report["schema"]["head"]
    assert "sync_sessions" in report
    assert screen.exit_code == 0, screen.output
    assert dlq in screen.output
    assert "outbox backlog" in screen.output


def test_status_reports_an_unreachable_broker_and_an_empty_database(database_url: str) -> None:
    env = {
        "ENTITY_SYNC_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//",
        "ENTITY_SYNC_DATABASE_URL": database_url,
    }
    result = CliRunner().invoke(cli, ["status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output)
    assert "queues_error" in report
    assert report["schema"]["current"] is None
    assert "db upgrade" in report["database_error"]
    screen = CliRunner().invoke(cli, ["status"], env=env, terminal_width=160)
    assert screen.exit_code == 0, screen.output
    assert "broker unavailable" in screen.output


def _get(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - a local test URL
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
