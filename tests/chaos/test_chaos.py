"""Chaos: the real `entity-sync run` killed, its broker restarted, its database stopped.

Every scenario publishes object-shared events to three connected targets with poison messages
mixed in, disturbs the run, waits (by condition, with a deadline) until the work is done, and
then checks against an independent model of the events: every target holds the final version
of every product with the final source-controlled values, every final update was published
(duplicates only with the same event id), every poison message is in its DLQ with its reason
and nothing else is. Each prints: events, kills, duplicates, lost (must be 0).
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from tests.chaos.checks import finish_and_check
from tests.chaos.harness import _admin, chaos_run, plan
from tests.chaos.servers import PrivatePostgres, PrivateRabbit
from tests.support.waiting import wait_for

pytestmark = pytest.mark.chaos


def test_kill_minus_9_at_random_moments(
    private_rabbit: PrivateRabbit,
    private_pg: PrivatePostgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rng = random.Random(os.environ.get("CHAOS_SEED", "4"))
    with chaos_run("kill9", private_rabbit, private_pg, tmp_path) as run:
        run.plan = plan(10_000, seed=rng.randrange(10**6))
        publisher = threading.Thread(
            target=run.publish,
            args=(run.plan.messages, float(os.environ.get("CHAOS_PUBLISH_RATE", "500"))),
            daemon=True,
        )
        publisher.start()
        total = len(_admin()) + len(run.plan.valid_ids)
        kills = 0
        while run.processed() < total and kills < 8:
            time.sleep(rng.uniform(1.5, 3.5))  # pacing chaos, not synchronisation
            if run.processed() >= total:
                break
            run.worker.kill9()
            kills += 1
            run.worker.start()
        publisher.join(timeout=120)
        assert not publisher.is_alive()
        assert kills >= 5, f"only {kills} kills happened before the work was done"
        finish_and_check(run, kills, capsys)


def test_rabbitmq_restart_in_the_middle(
    private_rabbit: PrivateRabbit,
    private_pg: PrivatePostgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with chaos_run("rabbit-restart", private_rabbit, private_pg, tmp_path) as run:
        run.plan = plan(4_000, seed=11)
        run.publish(run.plan.messages)
        total = len(_admin()) + len(run.plan.valid_ids)
        wait_for(lambda: run.processed() > total // 5, 120, "a fifth processed")
        assert run.processed() < total, "the restart happens in the middle of the run"
        private_rabbit.restart()
        finish_and_check(run, 0, capsys)


def test_postgresql_stopped_for_10_seconds(
    private_rabbit: PrivateRabbit,
    private_pg: PrivatePostgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with chaos_run("pg-outage", private_rabbit, private_pg, tmp_path) as run:
        run.plan = plan(4_000, seed=12)
        run.publish(run.plan.messages)
        total = len(_admin()) + len(run.plan.valid_ids)
        wait_for(lambda: run.processed() > total // 5, 120, "a fifth processed")
        assert run.processed() < total, "the outage happens in the middle of the run"
        private_pg.stop()
        time.sleep(10)  # the outage itself
        private_pg.start()
        finish_and_check(run, 0, capsys)


def test_broker_memory_alarm_for_10_seconds(
    private_rabbit: PrivateRabbit,
    private_pg: PrivatePostgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """RabbitMQ blocks every publishing connection while a memory alarm lasts: it stops reading
    their sockets. The worker waits it out on the same connection; it must not take the full
    socket for a dead broker, reconnect, and so get its unacked deliveries again (each such
    round counts toward the quorum queue's delivery limit, then the DLQ)."""
    with chaos_run("memory-alarm", private_rabbit, private_pg, tmp_path) as run:
        run.plan = plan(4_000, seed=13)
        publisher = threading.Thread(
            target=run.publish, args=(run.plan.messages, 400.0), daemon=True
        )
        publisher.start()
        total = len(_admin()) + len(run.plan.valid_ids)
        wait_for(lambda: run.processed() > total // 5, 120, "a fifth processed")
        assert run.processed() < total, "the alarm starts in the middle of the run"
        private_rabbit.ctl("set_vm_memory_high_watermark", "0.00001")
        try:
            wait_for(lambda: "memory" in _alarms(private_rabbit), 30, "the memory alarm on")
            time.sleep(10)  # the alarm itself
        finally:
            private_rabbit.ctl("set_vm_memory_high_watermark", "0.6")
        publisher.join(timeout=120)
        assert not publisher.is_alive()
        finish_and_check(run, 0, capsys)
        reconnects = run.worker.log.read_text().count("reconnecting")
        assert reconnects == 0, f"the worker reconnected {reconnects} times during the alarm"


def _alarms(rabbit: PrivateRabbit) -> str:
    return rabbit.ctl("eval", "rabbit_alarm:get_alarms().")
