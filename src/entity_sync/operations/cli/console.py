"""`entity-sync console`: the operations console in the browser (docs/operations.md)."""

from __future__ import annotations

import click

from entity_sync.bootstrap import serve_console
from entity_sync.operations.cli.common import app_context


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
        serve_console(app, host=host, port=port, insecure_local=insecure_local)
