"""Chaos on a 3-node RabbitMQ cluster: a node stopped in the middle of a run.

The worker gets every node in ENTITY_SYNC_BROKER_URL (kombu's `;` failover list). Each scenario
puts the worker, the input queue's leader and the upstream publisher on three different nodes:
the worker declares the topology connected to c1, so the quorum queues' leaders are there; it is
then stopped cleanly (SIGTERM) and started again with its list starting at c2; the publisher
sends through c3. While 5,000 events (and poison) arrive at a steady rate, one node is stopped
(`rabbitmqctl stop`): the worker's (c2), or the leader's (c1). Then the checks of the other
scenarios (`finish_and_check`: lost = 0, the summary line), and: the worker handles events again
within 30 s, connected to a surviving node.

The time to resume runs from the stop command until the worker has committed more events than
it could have held unacked when the node went down (the prefetch), so at least one of them was
delivered after the stop: an upper bound, which includes the stop itself and the backlog of the
outage. When the worker had to reconnect, its own `consuming` log line gives the time and node.
Both are printed after the summary line. Marked `cluster` (about 2 minutes on 2 cores, a third of
it booting the cluster) so a run can leave them out: `pytest -m "not cluster"`.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.chaos.checks import finish_and_check
from tests.chaos.harness import Run, chaos_run, plan, publish_paced
from tests.chaos.servers import PrivateCluster, PrivatePostgres, PrivateRabbit
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.cluster]

EVENTS = 5_000
PUBLISH_RATE = 500.0  # events per second from upstream: the run lasts about 10 s
RESUME_WITHIN = 30.0
PREFETCH = 2000  # the worker's ENTITY_SYNC_PREFETCH (the default, as in production)


@contextmanager
def cluster_run(
    name: str, cluster: PrivateCluster, pg: PrivatePostgres, tmp_path: Path
) -> Iterator[Run]:
    """`chaos_run` on the cluster; afterwards every node runs again and the test's queues and
    exchanges are deleted."""
    prefixes: list[str] = []
    try:
        with chaos_run(name, cluster, pg, tmp_path) as run:
            prefixes.append(run.prefix)
            run.worker.env["ENTITY_SYNC_PREFETCH"] = str(PREFETCH)
            run.worker.env["ENTITY_SYNC_LOG_LEVEL"] = "info"  # `consuming` names the node
            yield run
    finally:
        cluster.start_stopped()
        for prefix in prefixes:
            cluster.delete_prefix(prefix)


def _move_worker_to(run: Run, cluster: PrivateCluster, first: PrivateRabbit) -> None:
    """Restart the worker cleanly with the list rotated to start at `first`; wait until it is
    connected there (and only there)."""
    assert run.worker.stop() == 0, "SIGTERM ends the worker cleanly"
    i = cluster.nodes.index(first)
    run.worker.env["ENTITY_SYNC_BROKER_URL"] = cluster.url_from(
        *cluster.nodes[i:], *cluster.nodes[:i]
    )
    run.worker.start()
    wait_for(
        lambda: set(cluster.client_ports()) == {first.port},
        60,
        f"the worker connected to {cluster.label(first)} only",
        status=cluster.client_ports,
    )


class Upstream(threading.Thread):
    """The upstream system, connected to one node, at PUBLISH_RATE (pacing, not synchronisation)."""

    def __init__(self, node: PrivateRabbit, run: Run) -> None:
        super().__init__(name="upstream", daemon=True)
        assert run.plan is not None
        self.url = node.url
        self.exchange = f"{run.prefix}.in"
        self.messages = run.plan.messages
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            publish_paced(self.url, self.exchange, self.messages, PUBLISH_RATE)
        except BaseException as exc:  # noqa: BLE001 - raised in the test thread by `finish`
            self.error = exc

    def finish(self) -> None:
        self.join(timeout=120)
        assert not self.is_alive(), "the upstream publisher finished"
        if self.error is not None:
            raise self.error


def _reconnected(run: Run, cluster: PrivateCluster, since: dt.datetime) -> str:
    """When and where the worker logged `consuming` again after `since`, from its own log."""
    for line in run.worker.log.read_text().splitlines():
        entry = orjson.loads(line) if line.startswith("{") else {}
        if entry.get("event") != "consuming" or not entry.get("node"):
            continue
        at = dt.datetime.fromisoformat(entry["timestamp"])
        if at > since:
            node = cluster.node_on_port(int(entry["node"].rsplit(":", 1)[1]))
            return f"reconnected to {cluster.label(node)} in {(at - since).total_seconds():.1f} s"
    return "stayed connected"


@dataclass(frozen=True)
class Scenario:
    """One stop-a-node run: its name, which node to stop once the worker runs, the plan's seed."""

    name: str
    victim_of: Callable[[Run], PrivateRabbit]
    seed: int


def _stop_in_the_middle(
    scenario: Scenario,
    cluster: PrivateCluster,
    pg: PrivatePostgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, victim_of, seed = scenario.name, scenario.victim_of, scenario.seed
    c1, c2, c3 = cluster.nodes
    with cluster_run(name, cluster, pg, tmp_path) as run:
        input_queue = f"{run.prefix}.object-shared"
        assert cluster.leader(input_queue) is c1, "declared by the worker connected to c1"
        _move_worker_to(run, cluster, c2)
        run.plan = plan(EVENTS, seed=seed)
        total = run.processed() + len(run.plan.valid_ids)
        upstream = Upstream(c3, run)
        upstream.start()
        wait_for(lambda: run.processed() > total // 4, 120, "a quarter processed")

        victim = victim_of(run)
        before = run.processed()
        stopped_at, stopped_wall = time.monotonic(), dt.datetime.now(dt.UTC)
        victim.stop()
        assert before + PREFETCH < total, "the node stops in the middle of the run"
        wait_for(
            lambda: run.processed() > before + PREFETCH,
            120,
            "the worker handling events delivered after the stop",
            status=run.processed,
        )
        resumed = time.monotonic() - stopped_at
        ports = cluster.client_ports()
        upstream.finish()
        finish_and_check(run, 0, capsys)
        with capsys.disabled():
            print(  # noqa: T201 - the resume time CI logs show, next to the summary line
                f"chaos {name}: stopped {cluster.label(victim)}; worker "
                f"{_reconnected(run, cluster, stopped_wall)}, on "
                f"{'+'.join(sorted({cluster.label(cluster.node_on_port(p)) for p in ports}))}; "
                f"handling new events {resumed:.1f} s after the stop",
                flush=True,
            )
        assert ports, "the worker is connected"
        assert victim.port not in ports, "the worker runs on a surviving node"
        assert resumed <= RESUME_WITHIN, f"resumed in {resumed:.1f} s"


def test_stop_the_node_the_worker_is_connected_to(
    cluster: PrivateCluster,
    private_pg: PrivatePostgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def worker_node(run: Run) -> PrivateRabbit:
        ports = set(cluster.client_ports())
        assert len(ports) == 1, f"the worker's connections are on one node: {ports}"
        node = cluster.node_on_port(ports.pop())
        assert node is not cluster.leader(f"{run.prefix}.object-shared")
        return node

    _stop_in_the_middle(
        Scenario("cluster-worker-node", worker_node, seed=21), cluster, private_pg, tmp_path, capsys
    )


def test_stop_the_node_holding_the_input_queue_leader(
    cluster: PrivateCluster,
    private_pg: PrivatePostgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def leader_node(run: Run) -> PrivateRabbit:
        node = cluster.leader(f"{run.prefix}.object-shared")
        assert node.port not in cluster.client_ports(), "the worker is on another node"
        return node

    _stop_in_the_middle(
        Scenario("cluster-leader-node", leader_node, seed=22), cluster, private_pg, tmp_path, capsys
    )
