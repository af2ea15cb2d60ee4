"""`entity-sync sync accounts|crm-accounts|products|history`: on-demand syncs from the
command line."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from entity_sync.operations import sync as syncs
from entity_sync.operations.cli.common import echo_json, operations
from entity_sync.operations.cli.sync_tables import history_table, results_table


@click.group()
def sync() -> None:
    """Sync billing accounts (or those of CRM accounts) or products into the CRM.

    See docs/design.md §5.
    """


def _submit(
    object_type: str,
    ids: tuple[str, ...],
    entity: str | None,
    origin: str,
    output: tuple[bool, float, bool],
) -> None:
    wait, timeout, as_json = output
    with operations() as ops:
        ops = replace(ops, actor="cli")  # requested_by of the session, as before
        request_id = syncs.start(ops, object_type, list(ids), entity=entity, origin=origin)
        if not wait:
            noun = "CRM accounts" if object_type == "crm_account" else "ids"
            click.echo(f"published sync request {request_id} ({len(ids)} {noun})")
            return
        completed = syncs.wait(ops, request_id, timeout)
    if as_json:
        echo_json(completed)
    else:
        results_table(completed, by_crm_account=object_type == "crm_account")
    if completed["status"] in ("failed", "rejected"):
        raise SystemExit(1)


_common = [
    click.option("--wait", is_flag=True, help="Wait for the result and print it."),
    click.option(
        "--timeout",
        type=float,
        default=300.0,
        show_default=True,
        help="Seconds to wait with --wait.",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print the sync.completed body."),
]


def _with_common(func: Any) -> Any:
    for option in reversed(_common):
        func = option(func)
    return func


@sync.command("accounts")
@click.argument("ids", nargs=-1, required=True)
@click.option("--entity", default=None, help="Entity of the accounts (multi-entity tenants).")
@click.option("--origin", type=click.Choice(["api", "ui"]), default="api", show_default=True)
@_with_common
def sync_accounts(
    ids: tuple[str, ...], entity: str | None, origin: str, wait: bool, timeout: float, as_json: bool
) -> None:
    """Sync billing accounts (up to 10 ids; 8 with --origin ui)."""
    _submit("billing_account", ids, entity, origin, (wait, timeout, as_json))


@sync.command("crm-accounts")
@click.argument("ids", nargs=-1, required=True)
@click.option(
    "--entity", default=None, help="Entity to look the billing accounts up in (multi-entity)."
)
@click.option("--origin", type=click.Choice(["api", "ui"]), default="api", show_default=True)
@_with_common
def sync_crm_accounts(
    ids: tuple[str, ...], entity: str | None, origin: str, wait: bool, timeout: float, as_json: bool
) -> None:
    """Sync every billing account of CRM accounts (15 or 18 characters; up to 10 CRM accounts
    and 10 billing accounts found, 8 with --origin ui)."""
    _submit("crm_account", ids, entity, origin, (wait, timeout, as_json))


@sync.command("products")
@click.argument("ids", nargs=-1, required=True)
@_with_common
def sync_products(ids: tuple[str, ...], wait: bool, timeout: float, as_json: bool) -> None:
    """Sync products with their rate plans, charges and tiers."""
    _submit("product", ids, None, "api", (wait, timeout, as_json))


@sync.command("history")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def sync_history(limit: int, as_json: bool) -> None:
    """The latest sync sessions (kept ENTITY_SYNC_SYNC_RETENTION_DAYS days)."""
    with operations() as ops:
        sessions = syncs.history(ops, limit)
    if as_json:
        return echo_json([{"object_type": kind, **session} for kind, session in sessions])
    history_table(sessions)
