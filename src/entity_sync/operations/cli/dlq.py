"""`dlq list|show|replay|purge|export`: dead letters for operators (docs/dead-letters.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import click
import orjson
from kombu.connection import Connection
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from entity_sync.operations import dlq as core
from entity_sync.operations.cli.common import broker_connection, load_settings, table
from entity_sync.operations.cli.main import cli
from entity_sync.runtime import retry
from entity_sync.runtime.topology import Names, declare


@contextmanager
def _broker() -> Iterator[tuple[Connection, Names]]:
    settings = load_settings()
    names = Names(settings.prefix)
    if settings.embedded_broker:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    with broker_connection(settings, retries=2) as conn:
        if settings.embedded_broker:
            declare(
                conn, names, retry.delay_queues(settings)
            )  # the embedded broker knows queues only once declared
        yield conn, names


def _queues_opt(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--queue",
        "-q",
        "queue",
        default=None,
        metavar="QUEUE",
        help="A dead-letter queue: object-shared, entity-admin, sync-request (or full name).",
    )(func)


def _filters(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option(
        "--group",
        "-g",
        "groups",
        multiple=True,
        metavar="GROUP",
        help="Only this group (error type, fingerprint, or TYPE/FINGERPRINT from `list`).",
    )(func)
    return click.option(
        "--id", "ids", multiple=True, metavar="ID", help="Only this message id (repeatable)."
    )(func)


@cli.group()
def dlq() -> None:
    """Dead-letter queues: inspect, replay, purge, export."""


@dlq.command("list")
@_queues_opt
def dlq_list(queue: str | None) -> None:
    """Per dead-letter queue: count, groups by error type and fingerprint, oldest and newest."""
    with _broker() as (conn, names):
        for name in core.resolve(names, queue):
            summary = core.summarize(name, core.browse(conn, name))
            extra = summary.copies - summary.count
            click.echo(
                f"{name}: {summary.count} message(s)"
                + (f" ({extra} duplicate copies merged)" if extra else "")
                + (f", oldest {summary.oldest}, newest {summary.newest}" if summary.count else "")
            )
            if summary.groups:
                table(
                    None,
                    ["group", "count", "example message"],
                    [
                        (f"{g.error_type}/{g.fingerprint}", g.count, g.example)
                        for g in summary.groups
                    ],
                )


@dlq.command("show")
@_queues_opt
@_filters
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True)
def dlq_show(queue: str | None, groups: tuple[str, ...], ids: tuple[str, ...], limit: int) -> None:
    """Headers and pretty body of dead letters (all left in place)."""
    selection = core.Selection(groups, ids)
    shown = 0
    with _broker() as (conn, names):
        for name in core.resolve(names, queue):
            for letter in core.distinct(core.browse(conn, name)):
                if not selection.matches(letter) or shown >= limit:
                    continue
                shown += 1
                copies = f" copies={letter.copies}" if letter.copies > 1 else ""
                click.echo(f"--- {name} id={letter.id} group={letter.group}{copies}")
                click.echo(f"routing key: {letter.routing_key}")
                for key, value in sorted(letter.properties.items()):
                    if value is not None:
                        click.echo(f"property {key}: {value}")
                for key, value in sorted(letter.headers.items()):
                    click.echo(f"header {key}: {value}")
                click.echo(letter.pretty_body())
    if not shown:
        raise core.DlqError("no dead letter matches", reason="not_found")


def _move(
    *,
    replay: bool,
    queue: str | None,
    all_queues: bool,
    groups: tuple[str, ...],
    ids: tuple[str, ...],
    dry_run: bool,
    limit: int | None,
    rate: float | None,
) -> int:
    if queue is None and not all_queues:
        raise click.UsageError("name a --queue, or --all for every dead-letter queue")
    selection = core.Selection(groups, ids)
    verb = "replay" if replay else "purge"
    done = 0
    console = Console(stderr=True)
    with _broker() as (conn, names):
        for name in core.resolve(names, None if all_queues else queue):
            left = None if limit is None else limit - done
            if left is not None and left <= 0:
                break
            with Progress(
                TextColumn(f"{verb} {name}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
                disable=not console.is_terminal,
            ) as progress:
                task = progress.add_task(verb, total=None)

                def step(
                    _: core.DeadLetter, total: int, task: TaskID = task, left: int | None = left
                ) -> None:
                    progress.update(task, advance=1, total=min(total, left or total))

                result = core.move(
                    conn,
                    name,
                    selection,
                    replay=replay,
                    dry_run=dry_run,
                    limit=left,
                    rate=rate,
                    on_step=step,
                )
            done += result.matched
            action = ("would " + verb) if dry_run else (verb + "ed").replace("eed", "ed")
            merged = f", merged {result.merged} duplicate copies" if result.merged else ""
            click.echo(
                f"{name}: {action} {result.matched}, left {result.skipped} unselected{merged}"
            )
    return done


@dlq.command("replay")
@_queues_opt
@click.option("--all", "all_queues", is_flag=True, help="Every dead-letter queue.")
@_filters
@click.option("--dry-run", is_flag=True, help="Only count what would be replayed.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option(
    "--rate", type=click.FloatRange(min=0.1), default=None, help="At most this many per second."
)
def dlq_replay(
    queue: str | None,
    all_queues: bool,
    groups: tuple[str, ...],
    ids: tuple[str, ...],
    dry_run: bool,
    limit: int | None,
    rate: float | None,
) -> None:
    """Send dead letters back to their original queue, without their failure headers.

    Each message is published (and confirmed by the broker) before it leaves the DLQ, so an
    interrupted replay loses nothing. Who replayed what and when is recorded in the message
    headers (x-replayed-by, x-replayed-at) and in one log line per message.
    """
    _move(
        replay=True,
        queue=queue,
        all_queues=all_queues,
        groups=groups,
        ids=ids,
        dry_run=dry_run,
        limit=limit,
        rate=rate,
    )


@dlq.command("purge")
@_queues_opt
@click.option("--all", "all_queues", is_flag=True, help="Every dead-letter queue.")
@_filters
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def dlq_purge(
    queue: str | None,
    all_queues: bool,
    groups: tuple[str, ...],
    ids: tuple[str, ...],
    limit: int | None,
    yes: bool,
) -> None:
    """Delete dead letters for good (asks first unless --yes)."""
    if queue is None and not all_queues:
        raise click.UsageError("name a --queue, or --all for every dead-letter queue")
    what = "every dead-letter queue" if all_queues else queue
    if groups or ids:
        what = f"{what} (only {', '.join([*groups, *ids])})"
    if not yes:
        click.confirm(f"Delete dead letters of {what} for good?", abort=True, err=True)
    _move(
        replay=False,
        queue=queue,
        all_queues=all_queues,
        groups=groups,
        ids=ids,
        dry_run=False,
        limit=limit,
        rate=None,
    )


@dlq.command("export")
@_queues_opt
@_filters
@click.option(
    "--output",
    "-o",
    type=click.File("wb"),
    default="-",
    show_default=True,
    help="JSON lines file (- for stdout).",
)
def dlq_export(
    queue: str | None, groups: tuple[str, ...], ids: tuple[str, ...], output: IO[bytes]
) -> None:
    """Write dead letters as JSON lines (headers, properties, body); all left in place.

    One line per message id; `copies` says how many copies of it the queue holds.
    """
    selection = core.Selection(groups, ids)
    with _broker() as (conn, names):
        for name in core.resolve(names, queue):
            for letter in core.distinct(core.browse(conn, name)):
                if selection.matches(letter):
                    output.write(orjson.dumps(letter.as_json(), default=str) + b"\n")
