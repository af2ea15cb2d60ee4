"""A real worker with its metrics and health endpoint, in this process, and scraping it."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from entity_sync.bootstrap import App, build
from entity_sync.config import Settings
from entity_sync.runtime.health import HealthServer, Readiness
from entity_sync.runtime.metrics import Metrics
from tests.support.waiting import wait_for

Labels = frozenset[tuple[str, str]]


@dataclass
class LiveWorker:
    app: App
    metrics: Metrics
    server: HealthServer
    stop: Callable[[], None]

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.server.url + path, timeout=10) as resp:  # noqa: S310
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def scrape(self) -> Scrape:
        status, body = self.get("/metrics")
        assert status == 200, body[:300]
        return Scrape.parse(body.decode())


SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "unknown": ("",),
}


@dataclass
class Scrape:
    samples: dict[tuple[str, Labels], float]
    families: dict[str, str]  # name -> type, from # TYPE (also for families without samples)

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples: dict[tuple[str, Labels], float] = {}
        families: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = s.value
        return cls(samples, families)

    @property
    def names(self) -> set[str]:
        """Every series name a query may use: each declared family with the suffixes of its
        type (a labelled counter nobody has incremented yet still exports `<name>_total`)."""
        declared = {f + sfx for f, kind in self.families.items() for sfx in SUFFIXES[kind]}
        return declared | {name for name, _ in self.samples}

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 if none)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def series(self, name: str) -> dict[Labels, float]:
        return {ls: v for (n, ls), v in self.samples.items() if n == name}


@contextmanager
def live_worker(settings: Settings, *, consume: bool = True) -> Iterator[LiveWorker]:
    """The worker as `entity-sync run` wires it (metrics observer, hooks, /metrics, /readyz),
    on a free local port; with consume=False only the endpoint runs (nothing consumes)."""
    app = build(settings)
    app.upgrade_database()
    readiness = Readiness.of(app, cache_seconds=0)
    metrics = Metrics(
        engine=app.engine, settings=settings, readiness=readiness.ready, queue_cache_seconds=0
    )
    server = HealthServer(metrics.registry, readiness.checks, port=0, host="127.0.0.1")
    errors: list[BaseException] = []

    def target() -> None:
        try:
            app.run(observer=metrics, sync_observer=metrics)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="live-worker", daemon=True)

    def stop() -> None:
        app.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "worker did not stop"

    with metrics, server:
        if consume:
            thread.start()
            wait_for(lambda: app.is_ready() or bool(errors), 30, "the worker to consume")
            if errors:
                raise errors[0]
        try:
            yield LiveWorker(app, metrics, server, stop)
        finally:
            if thread.is_alive():
                stop()
            app.close()
    if errors:
        raise errors[0]
