"""Messages that upstream systems publish to `<prefix>.in` (docs/design.md §3).

Unknown extra fields are ignored; missing or ill-typed required fields make a message invalid.
Booleans and integers are strict: `"3"` is not a version and `"true"` is not a flag.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from entity_sync.schemas.types import (
    AttributeName,
    ConnectionId,
    ControlLevel,
    CurrencyCode,
    EntityId,
    LongText,
    Money,
    ObjectId,
    ObjectType,
    ShortText,
    Timestamp,
    Version,
)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Tier(BaseModel):
    """One price tier of a charge. Only `currency` is interpreted; the rest is copied verbatim."""

    model_config = ConfigDict(extra="allow", frozen=True)
    currency: CurrencyCode
    price: Money | None = None
    starting_unit: Annotated[float, Field(ge=0)] | None = None
    ending_unit: Annotated[float, Field(ge=0)] | None = None


class ProductData(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: LongText | None = None
    sku: ShortText | None = None
    description: LongText | None = None
    effective_start_date: dt.date | None = None
    effective_end_date: dt.date | None = None


class RatePlanData(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: LongText | None = None
    description: LongText | None = None


class ChargeData(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: LongText | None = None
    charge_type: ShortText | None = None
    charge_model: ShortText | None = None
    billing_timing: ShortText | None = None
    prices: dict[CurrencyCode, Money] | None = None
    tiers: list[Tier] | None = None


class AccountingPeriodData(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: LongText | None = None
    start_date: dt.date
    end_date: dt.date
    fiscal_year: Annotated[int, Field(strict=True, ge=1700, le=4000)] | None = None
    status: ShortText | None = None
    notes: LongText | None = None


DATA_MODELS: dict[str, type[BaseModel]] = {
    "product": ProductData,
    "product_rate_plan": RatePlanData,
    "product_rate_plan_charge": ChargeData,
    "accounting_period": AccountingPeriodData,
}
PARENT_TYPE: dict[str, str | None] = {
    "product": None,
    "product_rate_plan": "product",
    "product_rate_plan_charge": "product_rate_plan",
    "accounting_period": None,
}


class ObjectShared(Message):
    """`object.shared.<object_type>`: a change of a shared object in the global entity."""

    event_id: UUID
    source_entity: EntityId
    object_type: ObjectType
    object_id: ObjectId
    parent_id: ObjectId | None
    version: Version
    action: Literal["upsert", "delete"]
    data: dict[str, Any] | None = Field(
        description="All attributes of the object at this version (required for upsert)."
    )
    occurred_at: Timestamp

    @model_validator(mode="after")
    def _check_shape(self) -> ObjectShared:
        needs_parent = PARENT_TYPE[self.object_type] is not None
        if needs_parent and self.parent_id is None:
            raise ValueError(f"parent_id is required for {self.object_type}")
        if not needs_parent and self.parent_id is not None:
            raise ValueError(f"parent_id must be null for {self.object_type}")
        if self.action == "upsert":
            if self.data is None:
                raise ValueError("data is required for upsert")
            DATA_MODELS[self.object_type].model_validate(self.data)
        return self


class EntityUpserted(Message):
    """`entity.upserted`: an entity was created or changed."""

    event_id: UUID
    occurred_at: Timestamp
    entity_id: EntityId
    name: ShortText
    display_name: ShortText | None = None
    parent_id: EntityId | None = None
    is_global: StrictBool
    earliest_activity_date: dt.date | None = None
    has_own_accounting_periods: StrictBool
    active_currencies: Annotated[list[CurrencyCode], Field(max_length=300)]


class EntityConnection(Message):
    """`entity.connection`: a step in the life of a connection between source and target."""

    event_id: UUID
    occurred_at: Timestamp
    connection_id: ConnectionId
    source_entity: EntityId
    target_entity: EntityId
    action: Literal["request", "accept", "deny", "disconnect"]


class EntitySettings(Message):
    """`entity.settings`: whether a target accepts shared objects of a type."""

    event_id: UUID
    occurred_at: Timestamp
    target_entity: EntityId
    object_type: Literal["accounting_period"]
    acceptance: Literal["auto_accept", "dont_accept"]
    force: StrictBool = False


class EntityControl(Message):
    """`entity.control`: data control levels of product attributes (a partial update)."""

    event_id: UUID
    occurred_at: Timestamp
    levels: Annotated[dict[AttributeName, ControlLevel], Field(min_length=1, max_length=200)]


ZUORA_ID_PATTERN = r"^[0-9a-fA-F]{32}$"
CRM_ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$"
# Loose in the model (any short string), exact in the JSON Schema: the sync handler answers a
# malformed id with `rejected` (malformed_id) instead of dead-lettering the request.
_IdList = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=1000)]
IDS_OF: dict[str, str] = {
    "billing_account": "zuora_ids",
    "product": "zuora_ids",
    "crm_account": "crm_account_ids",
}


def _id_list(pattern: str) -> Any:
    return Field(
        default=None,
        json_schema_extra={
            "anyOf": [
                {
                    "type": "array",
                    "items": {"type": "string", "pattern": pattern},
                    "maxItems": 1000,
                },
                {"type": "null"},
            ]
        },
    )


def _kind_rules() -> dict[str, Any]:
    """The model validator below, as JSON Schema for other languages: exactly one id list,
    the one `object_type` names (null counts as absent)."""

    def only(wanted: str, other: str) -> dict[str, Any]:
        return {
            "required": [wanted],
            "properties": {wanted: {"type": "array"}, other: {"type": "null"}},
        }

    return {
        "allOf": [
            {
                "if": {
                    "properties": {"object_type": {"const": "crm_account"}},
                    "required": ["object_type"],
                },
                "then": only("crm_account_ids", "zuora_ids"),
                "else": only("zuora_ids", "crm_account_ids"),
            }
        ],
        "examples": [
            {
                "request_id": "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b08",
                "object_type": "billing_account",
                "zuora_ids": ["8a80c3a87f1d2e3b017f1e9c0c5d1001"],
                "entity_by_id": {"8a80c3a87f1d2e3b017f1e9c0c5d1001": "acme-de"},
                "origin": "api",
                "requested_by": "billing-ui@example.com",
                "requested_at": "2026-11-20T12:00:00Z",
            },
            {
                "request_id": "5b0e7a3c-61c2-4a8e-9d64-0f2b9a7c1e55",
                "object_type": "crm_account",
                "crm_account_ids": ["001Dn00000A1b2cIAB"],
                "origin": "ui",
                "requested_by": "jane.doe@example.com",
                "requested_at": "2026-12-02T09:30:00Z",
            },
        ],
    }


class SyncRequest(Message):
    """`sync.request`: sync billing accounts or products, or every billing account of CRM accounts.

    `zuora_ids` (billing_account, product) or `crm_account_ids` (crm_account): exactly one,
    the one `object_type` names. Ids, their count (10 api, 8 ui; for crm_account also the
    billing accounts found) and the entities are checked by the sync handler, which answers an
    invalid request with `sync.completed` status `rejected` instead of dead-lettering it.
    """

    model_config = ConfigDict(json_schema_extra=_kind_rules())

    request_id: UUID
    object_type: Literal["billing_account", "product", "crm_account"]
    zuora_ids: _IdList | None = _id_list(ZUORA_ID_PATTERN)
    crm_account_ids: _IdList | None = _id_list(CRM_ACCOUNT_ID_PATTERN)
    entity_by_id: dict[str, Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        description="Entity per requested id (its keys are ids of the request). For "
        "crm_account, the billing accounts are looked up in every entity named here.",
    )
    origin: Literal["api", "ui"]
    requested_by: ShortText
    requested_at: Timestamp

    @model_validator(mode="after")
    def _one_id_list(self) -> SyncRequest:
        wanted = IDS_OF[self.object_type]
        other = "zuora_ids" if wanted == "crm_account_ids" else "crm_account_ids"
        if getattr(self, wanted) is None:
            raise ValueError(f"{wanted} is required for object_type {self.object_type}")
        if getattr(self, other) is not None:
            raise ValueError(f"{other} is not allowed with object_type {self.object_type}")
        return self

    @property
    def ids(self) -> list[str]:
        """The requested ids: `zuora_ids` or `crm_account_ids`, whichever the kind uses."""
        return list(self.crm_account_ids or self.zuora_ids or [])


AdminMessage = EntityUpserted | EntityConnection | EntitySettings | EntityControl
InputMessage = ObjectShared | AdminMessage | SyncRequest

# Routing key (without the object type suffix for object.shared) -> model.
ADMIN_MODELS: dict[str, type[Message]] = {
    "entity.upserted": EntityUpserted,
    "entity.connection": EntityConnection,
    "entity.settings": EntitySettings,
    "entity.control": EntityControl,
}
