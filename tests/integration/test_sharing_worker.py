"""The sharing worker end to end, on RabbitMQ + PostgreSQL and on the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.harness import run_scenario
from tests.support.amqp import PikaPublisher, Received, bind_output_queue, collect, kombu_publish
from tests.support.runner import running_worker, settings_for


class RabbitBackend:
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.publisher = PikaPublisher(url, f"{prefix}.in")
        self.out_queue = bind_output_queue(url, prefix)

    def publish(self, events: list[tuple[str, dict[str, Any] | bytes]]) -> None:
        for routing_key, body in events:
            self.publisher.publish(routing_key, body)

    def outputs(self, count: int) -> list[Received]:
        return collect(self.url, self.out_queue, count)

    def dead_letters(self, queue: str, count: int) -> list[Received]:
        return collect(self.url, queue, count)


class EmbeddedBackend:
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix

    def publish(self, events: list[tuple[str, dict[str, Any] | bytes]]) -> None:
        kombu_publish(
            self.url,
            self.prefix,
            [(rk, body if isinstance(body, bytes) else orjson.dumps(body)) for rk, body in events],
        )

    def outputs(self, count: int) -> list[Received]:
        return collect(self.url, f"{self.prefix}.unrouted", count)

    def dead_letters(self, queue: str, count: int) -> list[Received]:
        return collect(self.url, queue, count)


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_scenario_on_rabbitmq_and_postgresql(
    broker_url: str, database_url: str, prefix: str
) -> None:
    settings = settings_for(prefix, broker_url, database_url)
    with running_worker(settings) as (app, _worker):
        backend = RabbitBackend(broker_url, prefix)
        run_scenario(app, backend, prefix)
        backend.publisher.close()


@pytest.mark.embedded
def test_scenario_on_the_embedded_default(embedded_dir: Path, prefix: str) -> None:
    settings = settings_for(prefix, "", "", data_dir=embedded_dir)
    assert settings.embedded_broker
    assert settings.database_url.startswith("sqlite")
    with running_worker(settings) as (app, _worker):
        run_scenario(app, EmbeddedBackend(settings.broker_url, prefix), prefix)
