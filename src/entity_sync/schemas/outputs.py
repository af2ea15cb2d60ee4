"""Messages the worker publishes to `<prefix>.out` (docs/design.md §3).

The hot path builds these bodies as plain dicts (see handlers/sharing/outputs.py); the models
exist for the published JSON Schema and for tests that check real outputs against it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from entity_sync.schemas.types import EntityId, ObjectId, ObjectType, Version


class OutputBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetUpdate(OutputBody):
    """`target.<entity_id>.<object_type>`: the new state of one target copy."""

    event_id: UUID = Field(
        description="Deterministic: uuid5 of the cause, the connection and the object; one "
        "version sent to one connection twice (two workers) has one id."
    )
    cause_event_id: UUID = Field(
        description="The event that made this version (a currency release: the activation)."
    )
    target_entity: EntityId
    object_type: ObjectType
    source_object_id: ObjectId
    target_object_id: str = Field(description="Id of the copy in the target entity.")
    target_parent_id: str | None
    version: Version = Field(description="Source version this copy reflects.")
    action: Literal["create", "update"]
    data: dict[str, Any] = Field(description="The copy's full attributes after the change.")
    changed: list[str] = Field(description="Attribute names this update changed.")


class ShareException(OutputBody):
    """`share.exception.<entity_id>`: a target could not receive an object."""

    event_id: UUID = Field(description="Deterministic: uuid5 of cause, target and object.")
    cause_event_id: UUID
    target_entity: EntityId
    object_type: ObjectType
    source_object_id: ObjectId
    version: Version
    reason: Literal["target_has_own_periods", "activity_before_first_period"]
    message: str


class SyncError(OutputBody):
    code: str
    message: str
    object: str | None
    zuora_id: str | None


class SyncResult(OutputBody):
    zuora_id: str | None = Field(
        description="The billing account or product; null only in a crm_account result that "
        "names no billing account (none found: `no_billing_accounts`; or the lookup failed)."
    )
    crm_account_id: str | None = Field(
        default=None,
        description="crm_account requests only: the requested CRM account this result is for.",
    )
    status: Literal["synced", "failed", "skipped"]
    counts: dict[str, int]
    errors: list[SyncError]


class SyncCompleted(OutputBody):
    """`sync.completed`: the result of a sync request."""

    request_id: UUID
    status: Literal["finished", "finished_with_errors", "failed", "rejected"]
    results: list[SyncResult]
    started_at: dt.datetime
    finished_at: dt.datetime
    reason: str | None = None
