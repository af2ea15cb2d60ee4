"""The one place that builds the application from settings, and wires a process:
signals, metrics and health for `run`; the operations layer for the CLI and the console."""

from __future__ import annotations

import contextlib
import gc
import signal
import threading
from dataclasses import dataclass, field

import structlog
from flask import Flask
from sqlalchemy.engine import Engine
from waitress import create_server

from entity_sync.config import Settings
from entity_sync.handlers.errors import ConfigurationError
from entity_sync.handlers.observer import NULL_OBSERVER, SyncObserver
from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.handlers.soap.config import BillingSettings, CrmSettings
from entity_sync.handlers.sync.service import SyncLimits, SyncService
from entity_sync.operations.console.access import Access, Console, console_of
from entity_sync.operations.console.app import create_app
from entity_sync.operations.console.ingestor import Ingestor
from entity_sync.operations.console.jobs import Jobs
from entity_sync.operations.context import Operations
from entity_sync.runtime.batch import BatchProcessor
from entity_sync.runtime.bulk import BulkRunner
from entity_sync.runtime.consumer import Worker, WorkerStats
from entity_sync.runtime.health import HealthServer, Readiness
from entity_sync.runtime.metrics import Metrics
from entity_sync.runtime.observe import Observer
from entity_sync.runtime.sync_processor import SyncProcessor
from entity_sync.runtime.topology import Names
from entity_sync.store import migrate
from entity_sync.store.engine import create_engine
from entity_sync.store.sync_store import DbSyncLocks, DbSyncStore

log = structlog.get_logger("entity_sync")


@dataclass
class App:
    settings: Settings
    engine: Engine
    names: Names
    workers: list[Worker] = field(default_factory=list)
    stopping: bool = False  # stop() came, maybe before run(): run() then consumes nothing
    billing: BillingSettings | None = None  # default: from ENTITY_SYNC_BILLING_* at first use
    crm: CrmSettings | None = None  # default: from ENTITY_SYNC_CRM_*

    def sharing_worker(self, observer: Observer | None = None) -> Worker:
        processor = BatchProcessor(
            self.engine,
            SharingContext(global_entity=self.settings.global_entity),
            self.names.out_exchange,
            max_body_bytes=self.settings.max_body_bytes,
            max_attempts=self.settings.max_attempts,
        )
        queues = [self.names.entity_admin, self.names.object_shared]
        bulk = BulkRunner(
            self.engine,
            processor.context,
            self.names.out_exchange,
            chunk_size=self.settings.bulk_chunk_size,
            observer=observer,
        )
        return Worker(self.settings, self.engine, processor, queues, observer, bulk=bulk)

    def sync_worker(
        self, observer: Observer | None = None, sync_observer: SyncObserver | None = None
    ) -> Worker:
        """Consumes sync requests with few in hand: each one takes seconds of SOAP calls.
        `sync_observer` gets the SOAP call timings and the session statuses (metrics)."""
        settings = self.settings
        store = DbSyncStore(self.engine, settings.sync_retention_days)
        service = SyncService(
            self.billing or BillingSettings(),
            self.crm or CrmSettings(),
            locks=DbSyncLocks(self.engine),
            store=store,
            limits=SyncLimits(settings.sync_concurrency, settings.sync_lock_ttl_seconds),
            observer=sync_observer or NULL_OBSERVER,
        )
        processor = SyncProcessor(
            self.engine,
            service,
            store,
            self.names.out_exchange,
            global_entity=settings.global_entity,
            max_body_bytes=settings.max_body_bytes,
        )
        tuned = settings.model_copy(
            update={"prefetch": settings.sync_prefetch, "batch_size": 1, "batch_linger_ms": 0}
        )
        return Worker(tuned, self.engine, processor, [self.names.sync_request], observer)

    def run(
        self,
        *,
        until_idle: float | None = None,
        observer: Observer | None = None,
        sync_observer: SyncObserver | None = None,
    ) -> list[WorkerStats]:
        """Run every consumer of this process, each on its own connection and thread.

        Returns when all have stopped: after `stop()` (SIGTERM/SIGINT), or when all were idle
        for `until_idle` seconds. An error in one stops the others and is raised here.
        """
        self.workers = [self.sharing_worker(observer)]
        if self.settings.sync_enabled:
            self.workers.append(self.sync_worker(observer, sync_observer))
        if self.stopping:
            return []
        errors: list[BaseException] = []

        def guarded(worker: Worker) -> None:
            try:
                worker.run(until_idle=until_idle)
            except BaseException as exc:  # noqa: BLE001 - re-raised below on the main thread
                errors.append(exc)
                self.stop()

        threads = [
            threading.Thread(target=guarded, args=(w,), name=f"consumer-{i}", daemon=True)
            for i, w in enumerate(self.workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():  # join in slices so signals reach the main thread
                thread.join(timeout=0.5)
        if errors:
            raise errors[0]
        return [w.stats for w in self.workers]

    def stop(self, *_: object) -> None:
        """Finish the batches in hand, then stop (safe from a signal handler)."""
        self.stopping = True
        for worker in self.workers:
            worker.stop()

    def is_ready(self) -> bool:
        return bool(self.workers) and all(w.ready.is_set() for w in self.workers)

    def upgrade_database(self) -> tuple[str | None, str | None]:
        return migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings | None = None) -> App:
    settings = settings or Settings()
    if settings.embedded_broker or settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return App(settings, create_engine(settings.database_url), Names(settings.prefix))


def operations_for(app: App, *, actor: str, via: str) -> Operations:
    """The operations layer (operations/) on this app's settings, engine and names."""
    return Operations(app.settings, app.engine, app.names, actor=actor, via=via)


def serve(app: App, *, until_idle: float | None = None) -> list[WorkerStats]:
    """`entity-sync run`: signals, then /metrics and health, migrations, and the consumers.

    With ENTITY_SYNC_METRICS_PORT set, serves /metrics, /healthz and /readyz on that port.
    """
    # From the start: a SIGTERM while starting up (a rolling update, a restart loop) ends the
    # process cleanly before it consumes anything.
    signal.signal(signal.SIGTERM, app.stop)
    signal.signal(signal.SIGINT, app.stop)
    with contextlib.ExitStack() as stack:
        metrics = _metrics(app, stack) if app.settings.metrics_port else None
        before, after = app.upgrade_database()
        if before != after:
            log.info("database upgraded", before=before, after=after)
        # Start-up objects (modules, schemas, compiled SQL) are never garbage: frozen, they
        # are left out of full collections, which took a tenth of the consumer loop's time.
        gc.collect()
        gc.freeze()
        return app.run(until_idle=until_idle, observer=metrics, sync_observer=metrics)


def _metrics(app: App, stack: contextlib.ExitStack) -> Metrics:
    """Up before the migrations: alive (/healthz) at once, ready (/readyz) once consuming."""
    readiness = Readiness.of(app)
    metrics = stack.enter_context(
        Metrics(engine=app.engine, settings=app.settings, readiness=readiness.ready)
    )
    try:
        server = HealthServer(metrics.registry, readiness.checks, port=app.settings.metrics_port)
    except OSError as exc:
        raise ConfigurationError(
            f"ENTITY_SYNC_METRICS_PORT={app.settings.metrics_port}: cannot listen: "
            f"{exc.strerror or exc}",
            reason="listen_failed",
        ) from None
    stack.enter_context(server)
    return metrics


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def console_app(app: App, *, host: str, insecure_local: bool) -> tuple[Flask, Ingestor]:
    """The console on this app: tokens checked, schema current, background ingestion."""
    settings = app.settings
    operator = settings.console_token.get_secret_value() if settings.console_token else None
    reader = (
        settings.console_readonly_token.get_secret_value()
        if settings.console_readonly_token
        else None
    )
    if not operator and not (insecure_local and host in LOOPBACK):
        raise ConfigurationError(
            "ENTITY_SYNC_CONSOLE_TOKEN is not set: the console needs a sign-in token "
            "(or --insecure-local, on 127.0.0.1 only)",
            reason="no_token",
        )
    for name, token in (("TOKEN", operator), ("READONLY_TOKEN", reader)):
        if token is not None and len(token) < 16:
            raise ConfigurationError(
                f"ENTITY_SYNC_CONSOLE_{name} is too short: use 16 characters or more",
                reason="weak_token",
            )
    app.upgrade_database()  # the console reads failed messages and history from the database

    def acting(role: str) -> Operations:
        return operations_for(app, actor=f"console:{role}", via="console")

    access = Access(operator, reader, insecure_local=not operator)
    console = Console(ops=acting, jobs=Jobs(), access=access)
    flask_app = create_app(console, secure_cookie=settings.console_secure_cookie)
    ingestor = Ingestor(acting("ingest"), settings.console_ingest_seconds)
    return flask_app, ingestor


def serve_console(app: App, *, host: str, port: int, insecure_local: bool) -> None:
    """`entity-sync console`: serve until SIGTERM or SIGINT, then stop ingesting and exit."""
    flask_app, ingestor = console_app(app, host=host, insecure_local=insecure_local)
    try:
        server = create_server(flask_app, host=host, port=port, threads=8, ident="")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", reason="listen_failed"
        ) from None

    def stop(*_: object) -> None:
        raise KeyboardInterrupt  # ends server.run() on the main thread

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ingestor.start()
    log.info("console listening", url=f"http://{host}:{port}/")
    try:
        server.run()  # returns on KeyboardInterrupt (waitress catches it)
    except KeyboardInterrupt:
        pass
    finally:
        log.info("console stopping")
        server.close()
        console_of(flask_app).jobs.stop(timeout=30)
        ingestor.stop()
