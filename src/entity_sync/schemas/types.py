"""Constrained scalar types shared by every message model.

Identifiers are restricted so that they can never change the meaning of a routing key, a file
path or a query: entity ids become routing-key words, so they may not contain dots.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

EntityId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
ObjectId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
ConnectionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
AttributeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[str, StringConstraints(pattern=r"^-?[0-9]{1,16}(\.[0-9]{1,9})?$")]
ZuoraId = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$")]
ShortText = Annotated[str, StringConstraints(max_length=255)]
LongText = Annotated[str, StringConstraints(max_length=32_000)]
Version = Annotated[int, Field(ge=1, le=2**53 - 1, strict=True)]
Timestamp = AwareDatetime

ObjectType = Literal[
    "product", "product_rate_plan", "product_rate_plan_charge", "accounting_period"
]
OBJECT_TYPES: tuple[ObjectType, ...] = (
    "product",
    "product_rate_plan",
    "product_rate_plan_charge",
    "accounting_period",
)
ControlLevel = Literal["source", "target"]
