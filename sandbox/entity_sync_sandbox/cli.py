"""`entity-sync sandbox billing|crm`: local SOAP servers of the billing system and the CRM.

The `entity-sync` command adds this group when the sandbox distribution is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, Unpack

import click

from entity_sync.handlers.errors import ConfigurationError
from entity_sync_sandbox.billing import start_billing_sandbox
from entity_sync_sandbox.crm import CrmOptions, start_crm_sandbox
from entity_sync_sandbox.seed import Seed, load_seed
from entity_sync_sandbox.server import SANDBOX_PASSWORD, SANDBOX_USER, SandboxServer, ServeOptions

F = TypeVar("F", bound=Callable[..., Any])
H = TypeVar("H")


def _options(command: F) -> F:
    """The options both sandboxes share."""
    options = [
        click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind."),
        click.option(
            "--port",
            type=click.IntRange(0, 65535),
            default=0,
            show_default=True,
            help="TCP port; 0 picks a free one.",
        ),
        click.option(
            "--seed",
            "seed_file",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help='JSON seed: {"<Object>": [{<field>: <value>}, ...]}; billing also '
            '"entities": {"<entity>": {"<Object>": [...]}}.',
        ),
        click.option(
            "--latency-ms",
            type=click.FloatRange(0, 60_000),
            default=0.0,
            show_default=True,
            help="Delay added to every call.",
        ),
        click.option(
            "--fault-rate",
            type=click.FloatRange(0, 1),
            default=0.0,
            show_default=True,
            help="Share of calls answered with an HTTP 500 page.",
        ),
        click.option(
            "--session-ttl",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Seconds a session lives (default: forever).",
        ),
        click.option("--username", default=SANDBOX_USER, show_default=True),
        click.option(
            "--password",
            default=SANDBOX_PASSWORD,
            show_default=True,
            help="The sandbox's own password (not a real one).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group()
def sandbox() -> None:
    """Local SOAP sandboxes for development, demos and tests."""


@sandbox.command()
@_options
@click.option(
    "--page-size",
    type=click.IntRange(1, 2000),
    default=2000,
    show_default=True,
    help="Records per query/queryMore page.",
)
@click.option(
    "--entity",
    "entities",
    multiple=True,
    help="Entity names login accepts besides the seed's (repeatable; default: any).",
)
def billing(
    seed_file: Path | None, entities: tuple[str, ...], **options: Unpack[ServeOptions]
) -> None:
    """Billing SOAP API (login, query, queryMore) until Ctrl-C."""
    handle = _listen(start_billing_sandbox, _seed(seed_file), entities=entities or None, **options)
    _serve("billing", handle.server, "ENTITY_SYNC_BILLING_ENDPOINT", options)


@sandbox.command()
@_options
@click.option(
    "--lock-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of upserted rows refused with UNABLE_TO_LOCK_ROW.",
)
def crm(seed_file: Path | None, **options: Unpack[CrmOptions]) -> None:
    """CRM partner SOAP API (login, upsert, query, queryMore) until Ctrl-C."""
    handle = _listen(start_crm_sandbox, _seed(seed_file), **options)
    _serve("crm", handle.server, "ENTITY_SYNC_CRM_ENDPOINT", options)


def _listen(start: Callable[..., H], seed: Seed | None, **options: Any) -> H:
    """Started in the foreground: `_serve` runs the server on this thread."""
    try:
        return start(seed, background=False, **options)
    except OSError as exc:  # port taken, address not local, ...
        where = f"{options.get('host')}:{options.get('port')}"
        raise ConfigurationError(
            f"cannot listen on {where}: {exc.strerror or exc}", reason="listen_failed"
        ) from None


def _seed(path: Path | None) -> Seed | None:
    if path is None:
        return None
    if not path.is_file():
        raise ConfigurationError(f"seed file not found: {path}", reason="seed_not_found")
    return load_seed(path)


def _serve(name: str, server: SandboxServer, env: str, options: ServeOptions) -> None:
    username = options.get("username", SANDBOX_USER)
    click.echo(f"{name} sandbox listening on {server.url} (user {username!r})")
    click.echo(f"  point the worker at it: {env}={server.url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo(f"{name} sandbox stopped")
