"""`entities list`, `connections list`, `settings list`, `explain`."""

from __future__ import annotations

import click

from entity_sync.operations.cli.common import app_context, echo_json, operations, table
from entity_sync.operations.explain import NotFound
from entity_sync.operations.explain import explain as why_of
from entity_sync.store import queries

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group()
def entities() -> None:
    """Entities known to the worker."""


@entities.command("list")
@json_option
def entities_list(as_json: bool) -> None:
    with app_context() as app:
        rows = queries.entities(app.engine)
    if as_json:
        return echo_json(rows)
    table(
        "entities",
        ["entity", "name", "global", "currencies", "own periods", "earliest activity"],
        [
            [
                r["entity_id"],
                r["display_name"] or r["name"],
                r["is_global"],
                ",".join(r["active_currencies"]),
                r["has_own_accounting_periods"],
                r["earliest_activity_date"],
            ]
            for r in rows
        ],
    )


@click.group()
def connections() -> None:
    """Connections from the global entity to targets."""


@connections.command("list")
@json_option
def connections_list(as_json: bool) -> None:
    with app_context() as app:
        rows = queries.connections(app.engine)
    if as_json:
        return echo_json(rows)
    table(
        "connections",
        ["connection", "source", "target", "status", "since"],
        [
            [
                r["connection_id"],
                r["source_entity"],
                r["target_entity"],
                r["status"],
                r["updated_at"],
            ]
            for r in rows
        ],
    )


@click.group("settings")
def settings_group() -> None:
    """Acceptance settings and data control levels."""


@settings_group.command("list")
@json_option
def settings_list(as_json: bool) -> None:
    with app_context() as app:
        rows = queries.settings(app.engine)
        levels = queries.control_levels(app.engine)
    if as_json:
        return echo_json({"acceptance": rows, "control_levels": levels})
    table(
        "acceptance (default dont_accept)",
        ["target", "object type", "acceptance"],
        [[r["target_entity"], r["object_type"], r["acceptance"]] for r in rows],
    )
    table(
        "control levels (defaults: sku source, others target)",
        ["attribute", "level"],
        [[r["attribute"], r["level"]] for r in levels],
    )


@click.command()
@click.option("--target", required=True, help="Target entity id.")
@click.option("--object", "object_id", required=True, help="Source object id.")
@json_option
def explain(target: str, object_id: str, as_json: bool) -> None:
    """Why TARGET has or lacks OBJECT, from the decision log."""
    with operations() as ops:
        why = why_of(ops, target, object_id)
    if as_json:
        return echo_json(why.as_json())
    if not why.seen:
        raise NotFound(f"object {object_id!r} has never been seen")
    for line in why.holds():
        click.echo(line)
    lacks = why.lacks()
    if lacks:
        click.echo(lacks)
    for src in why.source:
        click.echo(f"source: {src['object_type']} {object_id} at version {src['version']}")
    table(
        "decisions",
        ["at", "cause event", "version", "decision", "reason", "message"],
        [
            [h["at"], h["cause_event_id"], h["version"], h["decision"], h["reason"], h["message"]]
            for h in why.history
        ],
    )
