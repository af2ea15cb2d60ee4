"""`entity-sync console`: the operations console in the browser (docs/operations.md)."""

from __future__ import annotations

import click
import structlog
from waitress import create_server

from entity_sync.bootstrap import console_app
from entity_sync.operations.cli.common import app_context

log = structlog.get_logger("entity_sync.console")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8800, show_default=True, help="Port."
)
@click.option(
    "--insecure-local",
    is_flag=True,
    help="Without ENTITY_SYNC_CONSOLE_TOKEN: no sign-in, on 127.0.0.1 only (a laptop).",
)
def console(host: str, port: int, insecure_local: bool) -> None:
    """Serve the operations console: failed messages, replays, history, syncs, why, now.

    Sign-in with ENTITY_SYNC_CONSOLE_TOKEN (operator) or ENTITY_SYNC_CONSOLE_READONLY_TOKEN.
    """
    with app_context() as app:
        flask_app, ingestor = console_app(app, host=host, insecure_local=insecure_local)
        try:
            server = create_server(flask_app, host=host, port=port, threads=8, ident="")
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        ingestor.start()
        click.echo(f"entity-sync console on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
            ingestor.stop()
