"""RabbitMQ definitions derived from topology.declare, by recording what it declares.

`python -m tests.deploy.definitions` rewrites deploy/rabbitmq/definitions.json; the tests
check that the file equals what this derives, so the file never drifts from the code.
"""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from kombu.transport.pyamqp import Channel as PyamqpChannel

from entity_sync.config import Settings
from entity_sync.runtime import retry
from entity_sync.runtime.topology import DELIVERY_LIMIT, Names, declare

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"
VHOST = "/"


class _RecordingChannel(AbstractContextManager["_RecordingChannel"]):
    """Stands in for an AMQP channel: records declarations instead of sending them."""

    def __init__(self) -> None:
        self.exchanges: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.bindings: list[dict[str, Any]] = []

    def __exit__(self, *exc: object) -> None:
        return None

    def prepare_queue_arguments(self, arguments: dict[str, Any], **kwargs: Any) -> Any:
        return PyamqpChannel.prepare_queue_arguments(self, arguments, **kwargs)  # type: ignore[arg-type]

    def exchange_declare(  # noqa: PLR0913 - py-amqp Channel.exchange_declare's signature, not ours
        self,
        exchange: str,
        type: str,  # the AMQP argument name
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = True,
        arguments: dict[str, Any] | None = None,
        nowait: bool = False,
        **_: Any,
    ) -> None:
        self.exchanges[exchange] = {
            "name": exchange,
            "vhost": VHOST,
            "type": type,
            "durable": durable,
            "auto_delete": auto_delete,
            "internal": False,
            "arguments": dict(arguments or {}),
        }

    def queue_declare(  # noqa: PLR0913 - py-amqp Channel.queue_declare's signature, not ours
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = True,
        arguments: dict[str, Any] | None = None,
        nowait: bool = False,
        **_: Any,
    ) -> tuple[str, int, int]:
        self.queues[queue] = {
            "name": queue,
            "vhost": VHOST,
            "durable": durable,
            "auto_delete": auto_delete,
            "arguments": dict(arguments or {}),
        }
        return (queue, 0, 0)

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        nowait: bool = False,
        arguments: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        self.bindings.append(
            {
                "source": exchange,
                "vhost": VHOST,
                "destination": queue,
                "destination_type": "queue",
                "routing_key": routing_key,
                "arguments": dict(arguments or {}),
            }
        )


class _Transport:
    driver_type = "amqp"


class _RecordingConnection:
    def __init__(self) -> None:
        self.transport = _Transport()
        self.recorder = _RecordingChannel()

    def channel(self) -> _RecordingChannel:
        return self.recorder


def recorded(prefix: str = "entity-sync") -> _RecordingChannel:
    """What `declare` declares on RabbitMQ with the default settings."""
    conn = _RecordingConnection()
    declare(conn, Names(prefix), retry.delay_queues(Settings(prefix=prefix)))  # type: ignore[arg-type]
    return conn.recorder


def policies(prefix: str = "entity-sync") -> list[dict[str, Any]]:
    names = Names(prefix)
    inputs = "|".join(q.removeprefix(f"{prefix}.") for q in names.bindings())
    return [
        {
            "vhost": VHOST,
            "name": f"{prefix}-inputs",
            "pattern": f"^{prefix}\\.({inputs})$",
            "apply-to": "queues",
            "priority": 0,
            "definition": {"delivery-limit": DELIVERY_LIMIT},
        }
    ]


def expected_definitions(prefix: str = "entity-sync") -> dict[str, Any]:
    rec = recorded(prefix)
    return {
        "vhosts": [{"name": VHOST}],
        "exchanges": sorted(rec.exchanges.values(), key=lambda e: e["name"]),
        "queues": sorted(rec.queues.values(), key=lambda q: q["name"]),
        "bindings": sorted(rec.bindings, key=lambda b: (b["source"], b["destination"])),
        "policies": policies(prefix),
    }


def render(prefix: str = "entity-sync") -> str:
    return json.dumps(expected_definitions(prefix), indent=2) + "\n"


if __name__ == "__main__":
    DEFINITIONS.parent.mkdir(parents=True, exist_ok=True)
    DEFINITIONS.write_text(render())
    sys.stdout.write(f"wrote {DEFINITIONS.relative_to(ROOT)}\n")
