"""`run`, `topology declare`, `db upgrade`."""

from __future__ import annotations

import contextlib
import gc
import signal

import click
import structlog

from entity_sync.handlers.errors import ConfigurationError
from entity_sync.operations.cli.common import app_context, broker_connection
from entity_sync.operations.cli.main import cli
from entity_sync.runtime import retry
from entity_sync.runtime.health import HealthServer, Readiness
from entity_sync.runtime.metrics import Metrics
from entity_sync.runtime.topology import declare


@cli.command()
@click.option(
    "--until-idle",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop after this long without a message (for scripts and demos).",
)
def run(until_idle: float | None) -> None:
    """Upgrade the database, declare the topology and consume until SIGTERM/SIGINT.

    With ENTITY_SYNC_METRICS_PORT set, serves /metrics, /healthz and /readyz on that port.
    """
    with app_context() as app, contextlib.ExitStack() as stack:
        # From the start: a SIGTERM while starting up (a rolling update, a restart loop)
        # ends the process cleanly before it consumes anything.
        signal.signal(signal.SIGTERM, app.stop)
        signal.signal(signal.SIGINT, app.stop)
        log = structlog.get_logger("entity_sync")
        metrics: Metrics | None = None
        if app.settings.metrics_port:
            # Up before the migrations: alive (/healthz) at once, ready (/readyz) once consuming.
            readiness = Readiness.of(app)
            metrics = stack.enter_context(
                Metrics(engine=app.engine, settings=app.settings, readiness=readiness.ready)
            )
            try:
                server = HealthServer(
                    metrics.registry, readiness.checks, port=app.settings.metrics_port
                )
            except OSError as exc:
                raise ConfigurationError(
                    f"ENTITY_SYNC_METRICS_PORT={app.settings.metrics_port}: cannot listen: "
                    f"{exc.strerror or exc}",
                    reason="listen_failed",
                ) from None
            stack.enter_context(server)
        before, after = app.upgrade_database()
        if before != after:
            log.info("database upgraded", before=before, after=after)
        # Start-up objects (modules, schemas, compiled SQL) are never garbage: frozen, they
        # are left out of full collections, which took a tenth of the consumer loop's time.
        gc.collect()
        gc.freeze()
        for stats in app.run(until_idle=until_idle, observer=metrics, sync_observer=metrics):
            log.info(
                "stopped", batches=stats.batches, published=stats.published, **dict(stats.fates)
            )


@cli.group()
def topology() -> None:
    """Exchanges and queues of DESIGN.md §2."""


@topology.command("declare")
def topology_declare() -> None:
    """Declare exchanges, queues and dead-letter queues (idempotent)."""
    with app_context() as app, broker_connection(app.settings, retries=3) as conn:
        for line in declare(conn, app.names, retry.delay_queues(app.settings)):
            click.echo(line)


@cli.group()
def db() -> None:
    """The state database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (run does this too)."""
    with app_context() as app:
        before, after = app.upgrade_database()
        click.echo(f"database {app.settings.safe_database_url()}: {before or 'empty'} -> {after}")
