"""deploy/rabbitmq/definitions.json matches topology.declare: names and arguments."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pika
import pytest
from kombu.connection import Connection

from entity_sync.config import Settings
from entity_sync.runtime import retry
from entity_sync.runtime.topology import Names, declare
from tests.deploy.definitions import DEFINITIONS, expected_definitions, render
from tests.support.amqp import pika_params


def _file() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFINITIONS.read_text())
    return data


def test_the_file_is_what_declare_declares() -> None:
    assert DEFINITIONS.read_text() == render(), (
        "deploy/rabbitmq/definitions.json is stale: run `python -m tests.deploy.definitions`"
    )


def test_it_holds_every_name_of_the_design_topology() -> None:
    names = Names()
    data = _file()
    exchanges = {e["name"]: e for e in data["exchanges"]}
    queues = {q["name"]: q for q in data["queues"]}
    assert exchanges[names.in_exchange]["type"] == "topic"
    assert exchanges[names.out_exchange]["type"] == "topic"
    assert exchanges[names.out_exchange]["arguments"] == {"alternate-exchange": names.unrouted}
    for queue, key in names.bindings().items():
        assert queues[queue]["arguments"]["x-queue-type"] == "quorum"
        assert queues[queue]["arguments"]["x-dead-letter-routing-key"] == Names.dlq(queue)
        assert Names.dlq(queue) in queues
        assert {
            "source": names.in_exchange,
            "destination": queue,
            "routing_key": key,
        }.items() <= next(b for b in data["bindings"] if b["destination"] == queue).items()
    assert all(q["durable"] and not q["auto_delete"] for q in queues.values())


def test_policies_apply_to_exactly_the_input_queues() -> None:
    names = Names()
    (policy,) = _file()["policies"]
    pattern = re.compile(policy["pattern"])
    every = [q["name"] for q in _file()["queues"]]
    assert sorted(q for q in every if pattern.search(q)) == sorted(names.bindings())


@pytest.mark.integration
def test_rabbitmq_accepts_the_definitions_and_then_the_workers_declare(
    broker_url: str, prefix: str, rabbit_cleanup: None
) -> None:
    """Declare the file's entities (renamed to this test's prefix) on the real broker, then run
    the worker's `declare`: any difference of arguments would be PRECONDITION_FAILED."""
    data = expected_definitions(prefix)
    with pika.BlockingConnection(pika_params(broker_url)) as conn:
        ch = conn.channel()
        for ex in data["exchanges"]:
            ch.exchange_declare(
                ex["name"], ex["type"], durable=ex["durable"], arguments=ex["arguments"]
            )
        for q in data["queues"]:
            ch.queue_declare(q["name"], durable=q["durable"], arguments=q["arguments"])
        for b in data["bindings"]:
            ch.queue_bind(b["destination"], b["source"], b["routing_key"])
    try:
        with Connection(broker_url) as kconn:
            declared = declare(kconn, Names(prefix), retry.delay_queues(Settings(prefix=prefix)))
        assert declared
    finally:
        with pika.BlockingConnection(pika_params(broker_url)) as conn:
            for q in data["queues"]:
                ch = conn.channel()
                with contextlib.suppress(Exception):
                    ch.queue_delete(q["name"])
