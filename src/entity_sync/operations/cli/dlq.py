"""`dlq list|show|replay|purge|export`: failed messages for operators (docs/dead-letters.md).

Thin: options in, `operations.dlq` does the work, text out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from entity_sync.operations import dlq as core
from entity_sync.operations.cli.common import operations, table
from entity_sync.operations.context import Operations

_queue = click.option(
    "--queue",
    "-q",
    "queue",
    default=None,
    metavar="QUEUE",
    help="A dead-letter queue: object-shared, entity-admin, sync-request (or full name).",
)
_groups = click.option(
    "--group",
    "-g",
    "groups",
    multiple=True,
    metavar="GROUP",
    help="Only this group (error type, fingerprint, or TYPE/FINGERPRINT from `list`).",
)
_ids = click.option(
    "--id", "ids", multiple=True, metavar="ID", help="Only this message id (repeatable)."
)
_limit = click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most this many."
)


@click.group()
def dlq() -> None:
    """Failed messages (ingested from the dead-letter queues): inspect, replay, purge, export."""


@dlq.command("list")
@_queue
def dlq_list(queue: str | None) -> None:
    """Per dead-letter queue: count, groups by error type and fingerprint, oldest and newest."""
    with operations() as ops:
        summaries = core.summaries(ops, queue)
    for summary in summaries:
        extra = summary.copies - summary.count
        click.echo(
            f"{summary.queue}: {summary.count} message(s)"
            + (f" ({extra} duplicate copies merged)" if extra else "")
            + (f", oldest {summary.oldest}, newest {summary.newest}" if summary.count else "")
        )
        if summary.groups:
            table(
                None,
                ["group", "count", "example message"],
                [
                    (f"{g['error_type']}/{g['fingerprint']}", g["count"], g["example"][:120])
                    for g in summary.groups
                ],
            )


@dlq.command("show")
@_queue
@_groups
@_ids
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True)
def dlq_show(queue: str | None, groups: tuple[str, ...], ids: tuple[str, ...], limit: int) -> None:
    """Headers and pretty body of failed messages."""
    with operations() as ops:
        letters = core.letters(ops, core.Filter(ops.dlqs(queue), groups, ids), limit)
    if not letters:
        raise core.DlqError("no dead letter matches", reason="not_found")
    for letter in letters:
        copies = f" copies={letter.copies}" if letter.copies > 1 else ""
        click.echo(f"--- {letter.queue} id={letter.id} group={letter.group}{copies}")
        click.echo(f"routing key: {letter.routing_key}")
        for key, value in sorted(letter.properties.items()):
            if value is not None:
                click.echo(f"property {key}: {value}")
        for key, value in sorted(letter.headers.items()):
            click.echo(f"header {key}: {value}")
        click.echo(letter.pretty_body())


def _move(ops: Operations, name: str, flt: core.Filter, replay: bool, plan: core.Plan) -> int:
    verb = "replay" if replay else "purge"
    console = Console(stderr=True)
    with Progress(
        TextColumn(f"{verb} {name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(verb, total=None)

        def step(now: core.MoveResult) -> None:
            progress.update(task, completed=now.moved, total=now.matched)

        if replay:
            result = core.replay(ops, flt, plan, on_step=step)
        else:
            result = core.purge(ops, flt, plan, on_step=step)
    action = f"would {verb}" if plan.dry_run else ("replayed" if replay else "purged")
    merged = (
        f", merged {result.merged} duplicate copies" if result.merged and not plan.dry_run else ""
    )
    click.echo(f"{name}: {action} {result.matched}, left {result.skipped} unselected{merged}")
    if result.note:
        click.echo(f"{name}: {result.note}")
    return result.matched


def _each(
    queue: str | None,
    all_queues: bool,
    selection: tuple[tuple[str, ...], tuple[str, ...]],
    replay: bool,
    plan: core.Plan,
) -> None:
    """Act on each named DLQ in turn; --limit counts across them."""
    if queue is None and not all_queues:
        raise click.UsageError("name a --queue, or --all for every dead-letter queue")
    done = 0
    groups, ids = selection
    with operations() as ops:
        for name in ops.dlqs(None if all_queues else queue):
            left = None if plan.limit is None else plan.limit - done
            if left is not None and left <= 0:
                break
            flt = core.Filter([name], groups, ids)
            done += _move(ops, name, flt, replay, replace(plan, limit=left))


@dlq.command("replay")
@_queue
@click.option("--all", "all_queues", is_flag=True, help="Every dead-letter queue.")
@_groups
@_ids
@click.option("--dry-run", is_flag=True, help="Only count what would be replayed.")
@_limit
@click.option(
    "--rate", type=click.FloatRange(min=0.1), default=None, help="At most this many per second."
)
@click.option(
    "--canary",
    is_flag=True,
    help="Send one message first; go on only once the worker has applied it.",
)
def dlq_replay(
    queue: str | None,
    all_queues: bool,
    groups: tuple[str, ...],
    ids: tuple[str, ...],
    **plan: Any,
) -> None:
    """Send failed messages back to their original queue, without their failure headers.

    Each message is published (and confirmed by the broker) before it is marked replayed, so
    an interrupted replay loses nothing. Who replayed what and when is recorded in the
    history (`entity-sync dlq history`), in the message headers (x-replayed-by, x-replayed-at)
    and in one log line per message.
    """
    plan["canary"] = core.Canary() if plan["canary"] else None
    _each(queue, all_queues, (groups, ids), True, core.Plan(**plan))


@dlq.command("purge")
@_queue
@click.option("--all", "all_queues", is_flag=True, help="Every dead-letter queue.")
@_groups
@_ids
@_limit
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def dlq_purge(
    queue: str | None,
    all_queues: bool,
    groups: tuple[str, ...],
    ids: tuple[str, ...],
    limit: int | None,
    yes: bool,
) -> None:
    """Mark failed messages purged: never replayed, kept for the history (asks first)."""
    if queue is None and not all_queues:
        raise click.UsageError("name a --queue, or --all for every dead-letter queue")
    what = "every dead-letter queue" if all_queues else queue
    if groups or ids:
        what = f"{what} (only {', '.join([*groups, *ids])})"
    if not yes:
        click.confirm(f"Delete dead letters of {what} for good?", abort=True, err=True)
    _each(queue, all_queues, (groups, ids), False, core.Plan(limit=limit))


@dlq.command("export")
@_queue
@_groups
@_ids
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
    """Write failed messages as JSON lines (headers, properties, body).

    One line per message id; `copies` says how many broker copies of its failure were seen.
    """
    with operations() as ops:
        core.export(ops, core.Filter(ops.dlqs(queue), groups, ids), output)


@dlq.command("history")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
def dlq_history(limit: int) -> None:
    """Replays and purges, newest first: who, when, scope, counts."""
    with operations() as ops:
        entries = core.history(ops, limit)
    table(
        "replays and purges",
        ["id", "started", "by", "via", "action", "dry run", "selected", "done", "status", "scope"],
        [
            [
                e["id"],
                e["started_at"],
                e["actor"],
                e["via"],
                e["action"],
                e["dry_run"],
                e["selected"],
                e["done"],
                e["status"] + (f" ({e['note']})" if e["note"] else ""),
                ", ".join(f"{k}={v}" for k, v in e["scope"].items()),
            ]
            for e in entries
        ],
    )
