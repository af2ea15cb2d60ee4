"""The sync-request processor: one SOAP sync per request, then `sync.completed`.

An invalid request (too many ids, malformed or duplicated ids, an unknown entity, more billing
accounts behind its CRM accounts than the limit) is answered with status `rejected` by the sync
engine and is not dead-lettered; an undecodable or schema-invalid message is. A request whose
session is already stored (redelivered after a crash between saving and acking) is answered
again from the store, not synced twice.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from sqlalchemy.engine import Engine

from entity_sync.handlers.sync.service import SyncService
from entity_sync.runtime.batch import BatchResult, admit
from entity_sync.runtime.broker import OutMessage
from entity_sync.runtime.delivery import Delivery
from entity_sync.schemas.inputs import SyncRequest
from entity_sync.store.sharing import entity_ids
from entity_sync.store.sync_store import DbSyncStore

log = structlog.get_logger("entity_sync.sync")


class SyncProcessor:
    def __init__(
        self,
        engine: Engine,
        service: SyncService,
        store: DbSyncStore,
        out_exchange: str,
        *,
        global_entity: str,
        max_body_bytes: int,
    ) -> None:
        self.engine = engine
        self.service = service
        self.store = store
        self.out_exchange = out_exchange
        self.global_entity = global_entity
        self.max_body_bytes = max_body_bytes

    def known_entities(self) -> set[str]:
        return entity_ids(self.engine) | {self.global_entity}

    def process(self, deliveries: list[Delivery]) -> BatchResult:
        result = BatchResult()
        for delivery in deliveries:
            env = admit(delivery, self.max_body_bytes, result)
            if env is None:
                continue
            assert isinstance(env.model, SyncRequest)
            completed = self._completed(env.model, result)
            result.publish.append(
                OutMessage(
                    self.out_exchange,
                    "sync.completed",
                    orjson.dumps(completed),
                    message_id=str(env.model.request_id),
                )
            )
        return result

    def _completed(self, request: SyncRequest, result: BatchResult) -> dict[str, Any]:
        stored = self.store.get(str(request.request_id))  # database errors hold the batch
        if stored is not None:
            result.fates["duplicate"] += 1
            return stored
        structlog.contextvars.bind_contextvars(request_id=str(request.request_id))
        try:
            completed = self.service.handle(request, known_entities=self.known_entities())
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        log.info(
            "sync finished",
            request_id=str(request.request_id),
            status=completed["status"],
            object_type=request.object_type,
            ids=len(request.ids),
        )
        result.fates["applied"] += 1
        return completed
