"""`entity-sync sync accounts|crm-accounts|products|history`: on-demand syncs from the
command line."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import click
import orjson
from pydantic import ValidationError

from entity_sync.handlers.errors import EntitySyncError, InvalidMessage
from entity_sync.operations.cli.common import app_context, broker_connection, echo_json
from entity_sync.operations.cli.main import cli
from entity_sync.operations.cli.sync_tables import history_table, results_table
from entity_sync.runtime import retry
from entity_sync.runtime.broker import ConfirmingPublisher, OutMessage
from entity_sync.runtime.topology import declare
from entity_sync.schemas.inputs import IDS_OF, SyncRequest
from entity_sync.store.sync_store import DbSyncStore


class SyncTimeout(EntitySyncError):
    reason = "timeout"


@cli.group()
def sync() -> None:
    """Sync billing accounts (or those of CRM accounts) or products into the CRM (DESIGN.md §5)."""


def _request(
    object_type: str, ids: tuple[str, ...], entity: str | None, origin: str, requested_by: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": str(uuid.uuid4()),
        "object_type": object_type,
        IDS_OF[object_type]: list(ids),
        "origin": origin,
        "requested_by": requested_by,
        "requested_at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
    }
    if entity:
        body["entity_by_id"] = dict.fromkeys(ids, entity)
    try:
        SyncRequest.model_validate(body)
    except ValidationError as exc:  # one line naming the field, not pydantic's report
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidMessage(f"{where}: {first['msg']}" if where else first["msg"]) from None
    return body


def _submit(
    object_type: str,
    ids: tuple[str, ...],
    entity: str | None,
    origin: str,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    with app_context() as app:
        body = _request(object_type, ids, entity, origin, requested_by="cli")
        with broker_connection(app.settings, retries=3) as conn:
            declare(conn, app.names, retry.delay_queues(app.settings))
            publisher = ConfirmingPublisher(conn)
            publisher.publish_many(
                [
                    OutMessage(
                        app.names.in_exchange,
                        "sync.request",
                        orjson.dumps(body),
                        message_id=body["request_id"],
                    )
                ]
            )
            publisher.close()
        if not wait:
            noun = "CRM accounts" if object_type == "crm_account" else "ids"
            click.echo(f"published sync request {body['request_id']} ({len(ids)} {noun})")
            return
        store = DbSyncStore(app.engine)
        deadline = time.monotonic() + timeout
        completed = store.get(body["request_id"])
        while completed is None:
            if time.monotonic() > deadline:
                raise SyncTimeout(
                    f"no result for {body['request_id']} after {timeout:.0f}s; "
                    "is `entity-sync run` consuming?"
                )
            time.sleep(0.2)
            completed = store.get(body["request_id"])
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
    _submit("billing_account", ids, entity, origin, wait, timeout, as_json)


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
    _submit("crm_account", ids, entity, origin, wait, timeout, as_json)


@sync.command("products")
@click.argument("ids", nargs=-1, required=True)
@_with_common
def sync_products(ids: tuple[str, ...], wait: bool, timeout: float, as_json: bool) -> None:
    """Sync products with their rate plans, charges and tiers."""
    _submit("product", ids, None, "api", wait, timeout, as_json)


@sync.command("history")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def sync_history(limit: int, as_json: bool) -> None:
    """The latest sync sessions (kept ENTITY_SYNC_SYNC_RETENTION_DAYS days)."""
    with app_context() as app:
        sessions = DbSyncStore(app.engine).history(limit)
    if as_json:
        return echo_json([{"object_type": kind, **session} for kind, session in sessions])
    history_table(sessions)
