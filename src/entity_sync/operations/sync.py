"""On-demand syncs: build and publish a `sync.request`, wait for its session, list sessions."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import orjson
from pydantic import ValidationError

from entity_sync.handlers.errors import EntitySyncError, InvalidMessage
from entity_sync.operations.context import Operations
from entity_sync.runtime import retry
from entity_sync.runtime.broker import ConfirmingPublisher, OutMessage
from entity_sync.runtime.topology import declare
from entity_sync.schemas.inputs import IDS_OF, SyncRequest
from entity_sync.store.sync_store import DbSyncStore


class SyncTimeout(EntitySyncError):
    reason = "timeout"


def request(
    object_type: str, ids: list[str], entity: str | None, origin: str, requested_by: str
) -> dict[str, Any]:
    """A valid `sync.request` body, or one line naming the field that is wrong."""
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


def start(
    ops: Operations,
    object_type: str,
    ids: list[str],
    *,
    entity: str | None = None,
    origin: str = "api",
) -> str:
    """Publish a sync request (confirmed by the broker); returns its request id."""
    body = request(object_type, ids, entity, origin, requested_by=ops.actor)
    with ops.broker(retries=3) as conn:
        declare(conn, ops.names, retry.delay_queues(ops.settings))
        publisher = ConfirmingPublisher(conn)
        try:
            publisher.publish_many(
                [
                    OutMessage(
                        ops.names.in_exchange,
                        "sync.request",
                        orjson.dumps(body),
                        message_id=body["request_id"],
                    )
                ]
            )
        finally:
            publisher.close()
    return str(body["request_id"])


def wait(ops: Operations, request_id: str, timeout: float) -> dict[str, Any]:
    """The session's `sync.completed` body once a worker has saved it."""
    store = DbSyncStore(ops.engine)
    deadline = time.monotonic() + timeout
    while (completed := store.get(request_id)) is None:
        if time.monotonic() > deadline:
            raise SyncTimeout(
                f"no result for {request_id} after {timeout:.0f}s; is `entity-sync run` consuming?"
            )
        time.sleep(0.2)  # polling the worker's result, bounded by the deadline
    return completed


def session(ops: Operations, request_id: str) -> dict[str, Any] | None:
    return DbSyncStore(ops.engine).get(request_id)


def history(ops: Operations, limit: int = 20) -> list[tuple[str, dict[str, Any]]]:
    """The newest sessions as (object type, `sync.completed` body)."""
    return DbSyncStore(ops.engine).history(limit)
