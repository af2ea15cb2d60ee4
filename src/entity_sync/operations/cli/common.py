"""Helpers shared by the sub-commands: settings, app, and output."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
import orjson
import sqlalchemy as sa
from kombu.connection import Connection
from kombu.exceptions import OperationalError as KombuOperationalError
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from entity_sync import logs as wlog
from entity_sync.bootstrap import App, build, operations_for
from entity_sync.config import Settings
from entity_sync.handlers.errors import ConfigurationError
from entity_sync.operations.context import Operations, Unavailable, os_user
from entity_sync.runtime.broker import connect, ensure_connected


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        name = "ENTITY_SYNC_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
        raise ConfigurationError(f"{name}: {err['msg']}", reason="bad_setting") from None


@contextmanager
def app_context(*, log_level: str | None = None) -> Iterator[App]:
    settings = load_settings()
    wlog.configure(log_level or settings.log_level, settings.log_format)
    app = build(settings)
    try:
        yield app
    except sa.exc.OperationalError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0][:300]
        raise Unavailable(f"database {settings.safe_database_url()} unavailable: {first}") from None
    finally:
        app.close()


@contextmanager
def operations() -> Iterator[Operations]:
    """The operations layer for this command, acting as the OS user."""
    with app_context() as app:
        yield operations_for(app, actor=os_user(), via="cli")


@contextmanager
def broker_connection(settings: Settings, retries: int = 2) -> Iterator[Connection]:
    """A connection to the first broker of ENTITY_SYNC_BROKER_URL that answers.

    Every URL of a failover list is tried (`retries + 1` rounds). kombu fails over only when
    connecting: a node lost during the command ends it with an error; run it again. An
    unreachable broker is one `unavailable` error naming every URL, passwords masked.
    """
    conn = connect(settings)
    try:
        try:
            ensure_connected(conn, retries)
        except (*conn.connection_errors, KombuOperationalError) as exc:
            raise Unavailable(f"broker {settings.safe_broker_url()} unavailable: {exc}") from None
        yield conn
    finally:
        conn.release()


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    out = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        out.add_column(col, overflow="fold")
    for row in rows:
        out.add_row(*["" if v is None else str(v) for v in row])
    # Piped output gets a wide console: rich would otherwise wrap every cell at 80 columns.
    Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200).print(out)


def echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode())
