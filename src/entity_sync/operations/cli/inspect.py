"""`entities list`, `connections list`, `settings list`, `explain`."""

from __future__ import annotations

import click

from entity_sync.handlers.errors import EntitySyncError
from entity_sync.operations.cli.common import app_context, echo_json, table
from entity_sync.operations.cli.main import cli
from entity_sync.store import queries

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


class NotFound(EntitySyncError):
    reason = "not_found"


@cli.group()
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


@cli.group()
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


@cli.group("settings")
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


@cli.command()
@click.option("--target", required=True, help="Target entity id.")
@click.option("--object", "object_id", required=True, help="Source object id.")
@json_option
def explain(target: str, object_id: str, as_json: bool) -> None:
    """Why TARGET has or lacks OBJECT, from the decision log."""
    with app_context() as app:
        known = {e["entity_id"] for e in queries.entities(app.engine)}
        if target not in known:
            raise NotFound(f"no entity {target!r} is known")
        copies = queries.copies_in(app.engine, target, object_id)
        history = queries.history(app.engine, target, object_id)
        source = queries.source(app.engine, object_id)
        conns = [c for c in queries.connections(app.engine) if c["target_entity"] == target]
    if as_json:
        return echo_json({"copies": copies, "history": history, "source": source})
    if not source and not history:
        raise NotFound(f"object {object_id!r} has never been seen")
    for copy in copies:
        click.echo(
            f"{target} holds {copy['object_type']} {object_id} as {copy['target_object_id']} at "
            f"version {copy['version']} (connection {copy['connection_id']}, {copy['status']})"
        )
    if not copies:
        last = next((h for h in reversed(history) if h["target_entity"] == target), None)
        why = (
            f"{last['decision']} ({last['reason']}): {last['message']}"
            if last
            else _connection_reason(conns)
        )
        click.echo(f"{target} does not hold {object_id}: {why}")
    for src in source:
        click.echo(f"source: {src['object_type']} {object_id} at version {src['version']}")
    table(
        "decisions",
        ["at", "cause event", "version", "decision", "reason", "message"],
        [
            [h["at"], h["cause_event_id"], h["version"], h["decision"], h["reason"], h["message"]]
            for h in history
        ],
    )


def _connection_reason(conns: list[dict[str, object]]) -> str:
    """Why a target was never offered anything, from its connections (newest last)."""
    if not conns:
        return "it has no connection to the global entity; only connected targets receive objects"
    latest = conns[-1]
    return (
        f"its connection {latest['connection_id']} is {latest['status']}; only connected "
        "targets receive objects"
    )
