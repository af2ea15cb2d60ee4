"""`run`, `topology declare`, `db upgrade`."""

from __future__ import annotations

import click
import structlog

from entity_sync.bootstrap import serve
from entity_sync.operations.cli.common import app_context, broker_connection
from entity_sync.runtime import retry
from entity_sync.runtime.topology import declare


@click.command()
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
    with app_context() as app:
        for stats in serve(app, until_idle=until_idle):
            structlog.get_logger("entity_sync").info(
                "stopped", batches=stats.batches, published=stats.published, **dict(stats.fates)
            )


@click.group()
def topology() -> None:
    """Exchanges and queues of the topology (docs/design.md §2)."""


@topology.command("declare")
def topology_declare() -> None:
    """Declare exchanges, queues and dead-letter queues (idempotent)."""
    with app_context() as app, broker_connection(app.settings, retries=3) as conn:
        for line in declare(conn, app.names, retry.delay_queues(app.settings)):
            click.echo(line)


@click.group()
def db() -> None:
    """The state database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (run does this too)."""
    with app_context() as app:
        before, after = app.upgrade_database()
        click.echo(f"database {app.settings.safe_database_url()}: {before or 'empty'} -> {after}")
