"""Settling: a batch is acked once every publish up to its last is confirmed, in order, and
never when the broker refused one of them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from entity_sync.runtime.broker import PublishFailed
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.observe import NullObserver
from entity_sync.runtime.result import BatchResult
from entity_sync.runtime.settle import Settler
from entity_sync.runtime.stats import WorkerStats


class _Channel:
    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.acks.append((tag, multiple))


class _Publisher:
    """The publisher's confirm counters, set by the test as the broker would move them."""

    def __init__(self) -> None:
        self.published = 0
        self.acked_through = 0
        self.refused = False

    def confirmed(self) -> int:
        if self.refused:
            raise PublishFailed("the broker refused 1 message(s)")
        return self.acked_through

    def wait_for_confirms(self) -> None:
        self.acked_through = self.published
        if self.refused:
            raise PublishFailed("the broker refused 1 message(s)")


def _settler() -> tuple[Settler, _Channel, _Publisher]:
    settler = Settler(sa.create_engine("sqlite://"), WorkerStats(), NullObserver())
    channel, publisher = _Channel(), _Publisher()
    rabbit: Any = SimpleNamespace(transport=SimpleNamespace(driver_type="amqp"))
    settler.attach(rabbit, channel, publisher, generation=1)  # type: ignore[arg-type]
    return settler, channel, publisher


def _batch(*tags: int, generation: int = 1) -> list[Delivery]:
    return [Delivery("q", "rk", "ex", b"{}", delivery_tag=t, generation=generation) for t in tags]


def _hand_over(
    settler: Settler, publisher: _Publisher, tags: tuple[int, ...], outputs: int
) -> None:
    publisher.published += outputs  # the batch's outputs are out, not yet confirmed
    settler.hand_over(_batch(*tags), BatchResult(), started=0.0)


def test_batches_are_acked_in_order_as_their_publishes_are_confirmed() -> None:
    settler, channel, publisher = _settler()
    _hand_over(settler, publisher, (1, 2, 3), outputs=5)  # publishes 1-5
    _hand_over(settler, publisher, (4, 5, 6), outputs=4)  # publishes 6-9
    settler.settle_if_confirmed()
    assert channel.acks == []
    assert settler.backlog == 2
    publisher.acked_through = 7  # the first batch's confirms are all in, the second's not
    settler.settle_if_confirmed()
    assert channel.acks == [(3, True)]
    assert settler.backlog == 1
    assert settler.stats.batches == 1
    publisher.acked_through = 9
    settler.settle_if_confirmed()
    assert channel.acks == [(3, True), (6, True)]
    assert settler.backlog == 0
    assert settler.stats.batches == 2


def test_confirmed_batches_waiting_together_are_acked_in_one_go() -> None:
    settler, channel, publisher = _settler()
    _hand_over(settler, publisher, (1, 2), outputs=2)
    _hand_over(settler, publisher, (3, 4), outputs=0)  # every event a duplicate: nothing out
    publisher.acked_through = 2
    settler.settle_if_confirmed()
    assert channel.acks == [(4, True)]
    assert settler.stats.batches == 2


def test_settle_waits_for_every_confirm_and_acks_every_batch() -> None:
    settler, channel, publisher = _settler()
    _hand_over(settler, publisher, (1,), outputs=3)
    _hand_over(settler, publisher, (2,), outputs=3)
    settler.settle()
    assert channel.acks == [(2, True)]
    assert settler.backlog == 0


def test_nothing_is_acked_when_the_broker_refused_a_publish() -> None:
    settler, channel, publisher = _settler()
    _hand_over(settler, publisher, (1, 2), outputs=2)
    publisher.acked_through = 2
    publisher.refused = True
    with pytest.raises(PublishFailed):
        settler.settle_if_confirmed()
    with pytest.raises(PublishFailed):
        settler.settle()
    assert channel.acks == []


def test_deliveries_of_an_older_connection_are_never_acked() -> None:
    settler, channel, publisher = _settler()
    publisher.published = 1
    old = _batch(7, 8, generation=0)  # was in the database when its connection died
    settler.hand_over(old, BatchResult(), started=0.0)
    publisher.acked_through = 1
    settler.settle_if_confirmed()
    assert channel.acks == []
    assert settler.backlog == 0
