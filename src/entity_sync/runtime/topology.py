"""The topology of docs/design.md §2, declared idempotently.

On RabbitMQ, input queues are quorum queues whose broker-side dead-lettering (delivery limit,
the poison cap) goes to their `.dlq` at least once; the out exchange has an alternate exchange
so an output nobody is bound for is kept in `<prefix>.unrouted`, never dropped. On the
embedded broker, where bindings live in each process, `<prefix>.unrouted` receives every
output. Each input queue also has delay queues `<queue>.retry.<N>s` for its retry schedule
(runtime/retry.py): new queues, so the input queues' arguments never change. These arguments
are fixed here: RabbitMQ refuses to redeclare a queue with other arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue

DELIVERY_LIMIT = 20


@dataclass(frozen=True, slots=True)
class Names:
    prefix: str = "entity-sync"

    @property
    def in_exchange(self) -> str:
        return f"{self.prefix}.in"

    @property
    def out_exchange(self) -> str:
        return f"{self.prefix}.out"

    @property
    def unrouted(self) -> str:
        return f"{self.prefix}.unrouted"

    @property
    def sync_request(self) -> str:
        return f"{self.prefix}.sync-request"

    @property
    def object_shared(self) -> str:
        return f"{self.prefix}.object-shared"

    @property
    def entity_admin(self) -> str:
        return f"{self.prefix}.entity-admin"

    def bindings(self) -> dict[str, str]:
        """Input queue -> binding key on the in exchange."""
        return {
            self.sync_request: "sync.request",
            self.object_shared: "object.shared.*",
            self.entity_admin: "entity.*",
        }

    @staticmethod
    def dlq(queue: str) -> str:
        return f"{queue}.dlq"

    @staticmethod
    def retry_queue(queue: str, delay_seconds: int) -> str:
        """The fixed-delay queue that returns a retry to `queue` after `delay_seconds`."""
        return f"{queue}.retry.{delay_seconds}s"


def is_rabbitmq(conn: Connection) -> bool:
    return bool(conn.transport.driver_type == "amqp")


def _queue_args(names: Names, queue: str, rabbit: bool) -> dict[str, Any]:
    if not rabbit:
        return {}
    args: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": names.dlq(queue),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-delivery-limit": DELIVERY_LIMIT,
    }
    if queue == names.entity_admin:
        # Admin events depend on their order (request before accept); competing consumers would
        # reorder them. One worker consumes this queue at a time; the others stand by.
        args["x-single-active-consumer"] = True
    return args


def _retry_args(queue: str, delay_seconds: int, rabbit: bool) -> dict[str, Any]:
    if not rabbit:
        return {}
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": delay_seconds * 1000,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def retry_queues(queue: str, delays: Iterable[int], rabbit: bool) -> list[Queue]:
    """Delay queues of `queue`; on RabbitMQ their TTL dead-letters back into `queue`."""
    return [
        Queue(
            Names.retry_queue(queue, d),
            durable=True,
            queue_arguments=_retry_args(queue, d, rabbit),
        )
        for d in sorted(set(delays))
    ]


def exchanges(names: Names, rabbit: bool) -> tuple[Exchange, Exchange]:
    out_args = {"alternate-exchange": names.unrouted} if rabbit else {}
    return (
        Exchange(names.in_exchange, type="topic", durable=True),
        Exchange(names.out_exchange, type="topic", durable=True, arguments=out_args),
    )


def input_queues(names: Names, rabbit: bool) -> list[Queue]:
    in_ex, _ = exchanges(names, rabbit)
    return [
        Queue(
            queue,
            in_ex,
            routing_key=key,
            durable=True,
            queue_arguments=_queue_args(names, queue, rabbit),
        )
        for queue, key in names.bindings().items()
    ]


def declare(conn: Connection, names: Names, delays: Mapping[str, Iterable[int]]) -> list[str]:
    """Declare everything; returns the names declared. Safe to run any number of times.

    `delays`: input queue -> retry delays (seconds) to declare delay queues for, from the
    settings by `runtime.retry.delay_queues(settings)`; `{}` for none (the worker declares
    them when first used).
    """
    rabbit = is_rabbitmq(conn)
    quorum = {"x-queue-type": "quorum"} if rabbit else {}
    declared: list[str] = []
    with conn.channel() as channel:
        in_ex, out_ex = exchanges(names, rabbit)
        if rabbit:
            unrouted_ex = Exchange(names.unrouted, type="fanout", durable=True)
            unrouted_ex(channel).declare()
            Queue(names.unrouted, unrouted_ex, durable=True, queue_arguments=quorum)(
                channel
            ).declare()
            declared += [f"exchange {names.unrouted}", f"queue {names.unrouted}"]
        in_ex(channel).declare()
        out_ex(channel).declare()
        declared += [f"exchange {in_ex.name}", f"exchange {out_ex.name}"]
        if not rabbit:
            # Virtual transports keep bindings per process: the worker cannot see bindings that
            # other processes made, so every output is also kept in `<prefix>.unrouted`.
            Queue(names.unrouted, out_ex, routing_key="#", durable=True)(channel).declare()
            declared.append(f"queue {names.unrouted} <- # (embedded broker)")
        for queue in input_queues(names, rabbit):
            dlq = Queue(names.dlq(queue.name), durable=True, queue_arguments=quorum)
            dlq(channel).declare()
            queue(channel).declare()
            declared += [f"queue {queue.name} <- {queue.routing_key}", f"queue {dlq.name}"]
            for delayed in retry_queues(queue.name, delays.get(queue.name, ()), rabbit):
                delayed(channel).declare()
                declared.append(f"queue {delayed.name} -> {queue.name} (retry delay)")
    return declared
