"""A list of brokers (kombu's failover syntax) whose first URLs are down.

kombu fails over only while connecting, and its `max_retries` counts attempts, not rounds over
the list: before `ensure_connected`, a third URL was never tried by the worker or `status`. Here
two closed ports come first and the test broker last; the worker, the CLI and the dlq tools
reach it, and no output shows any password of the list.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from kombu.connection import Connection
from structlog.testing import capture_logs

from entity_sync.operations.cli.main import cli
from tests.integration.harness import processed
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher, queue_depth
from tests.support.runner import running_worker, settings_for
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rabbit_cleanup")]


@pytest.fixture
def closed_ports() -> Iterator[list[int]]:
    """Two loopback ports that refuse connections: bound, never listening, held for the test."""
    sockets = [socket.socket(), socket.socket()]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    yield [int(sock.getsockname()[1]) for sock in sockets]
    for sock in sockets:
        sock.close()


def _down(ports: list[int]) -> list[str]:
    return [f"amqp://guest:s3cret-{i}@127.0.0.1:{port}//" for i, port in enumerate(ports)]


def _masked(url: str) -> str:
    password = Connection(url).password
    return url.replace(f":{password}@", ":***@") if password else url


def _cli(env: dict[str, str], *args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=stdin, terminal_width=200)


def _no_password(output: str, urls: list[str]) -> None:
    for url in urls:
        password = Connection(url).password
        assert not password or f":{password}@" not in output, output


def test_cli_and_dlq_tools_reach_the_third_broker_and_show_every_url_masked(
    broker_url: str, prefix: str, tmp_path: Path, closed_ports: list[int]
) -> None:
    urls = [*_down(closed_ports), broker_url]
    env = {
        "ENTITY_SYNC_BROKER_URL": ";".join(urls),
        "ENTITY_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "ENTITY_SYNC_PREFIX": prefix,
        "ENTITY_SYNC_DATA_DIR": str(tmp_path),
    }
    shown = ";".join(_masked(u) for u in urls)

    declared = _cli(env, "topology", "declare")
    assert declared.exit_code == 0, declared.output
    assert f"queue {prefix}.object-shared.dlq" in declared.output

    _, body = sc.entity("global", ["USD"])
    published = _cli(env, "publish", "entity.upserted", "-", stdin=orjson.dumps(body))
    assert published.exit_code == 0, published.output
    assert queue_depth(broker_url, f"{prefix}.entity-admin") == 1

    listed = _cli(env, "dlq", "list")
    assert listed.exit_code == 0, listed.output
    assert f"{prefix}.object-shared.dlq: 0 message(s)" in listed.output

    report = _cli(env, "status", "--json")
    assert report.exit_code == 0, report.output
    status = orjson.loads(report.output)
    assert status["broker"] == shown
    assert "queues_error" not in status, status
    depth = {q["queue"]: q["messages"] for q in status["queues"]}
    assert depth[f"{prefix}.entity-admin"] == 1

    screen = _cli(env, "status")
    assert screen.exit_code == 0, screen.output
    for url in urls:
        assert _masked(url) in screen.output, screen.output  # one URL per line, none cut
    for result in (declared, published, listed, report, screen):
        _no_password(result.output, urls)


def test_an_unreachable_list_is_one_error_naming_every_url_masked(
    prefix: str, tmp_path: Path, closed_ports: list[int]
) -> None:
    urls = _down(closed_ports)
    env = {
        "ENTITY_SYNC_BROKER_URL": ";".join(urls),
        "ENTITY_SYNC_PREFIX": prefix,
        "ENTITY_SYNC_DATA_DIR": str(tmp_path),
    }
    result = _cli(env, "dlq", "list")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert f"unavailable: broker {';'.join(_masked(u) for u in urls)} unavailable" in result.output
    _no_password(result.output, urls)


def test_the_worker_consumes_from_the_third_broker_and_logs_it_masked(
    broker_url: str, database_url: str, prefix: str, closed_ports: list[int]
) -> None:
    urls = [*_down(closed_ports), broker_url]
    settings = settings_for(prefix, ";".join(urls), database_url)
    live = Connection(broker_url)
    with capture_logs() as logs, running_worker(settings) as (app, _):
        publisher = PikaPublisher(broker_url, f"{prefix}.in")
        publisher.publish(*sc.entity("global", ["USD"]))
        publisher.close()
        wait_for(lambda: processed(app) == 1, 30, "the event consumed", lambda: processed(app))
    consuming = [e for e in logs if e["event"] == "consuming"]
    assert consuming, logs
    assert consuming[0]["node"] == f"{live.hostname}:{live.port}"
    assert consuming[0]["broker"] == ";".join(_masked(u) for u in urls)
    _no_password(repr(logs), urls)
