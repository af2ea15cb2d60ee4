"""Sync of one product and its rate plans, charges and tiers, parents before children."""

from __future__ import annotations

from typing import Any

from entity_sync.handlers.errors import PermanentError
from entity_sync.handlers.sync.mapping import PRODUCT_EXTERNAL_ID, map_record
from entity_sync.handlers.sync.ports import BillingApi, CrmApi
from entity_sync.handlers.sync.reader import ids_of, read_by
from entity_sync.handlers.sync.writer import Outcome, Parents, Prepared, Writer, linked


class ProductNotFound(PermanentError):
    reason = "not_found"


def sync_product(billing: BillingApi, crm: CrmApi, product_id: str) -> tuple[bool, Outcome]:
    found = read_by(billing, "Product", "Id", [product_id])
    if not found:
        raise ProductNotFound(f"product {product_id} not found")
    plans = read_by(billing, "ProductRatePlan", "ProductId", [product_id])
    charges = read_by(billing, "ProductRatePlanCharge", "ProductRatePlanId", ids_of(plans))
    tiers = read_by(
        billing, "ProductRatePlanChargeTier", "ProductRatePlanChargeId", ids_of(charges)
    )

    writer = Writer(crm, PRODUCT_EXTERNAL_ID)
    products = writer.upsert("Product2", [_prepare("Product2", found[0], None, {}, None)])
    plan_ids = writer.upsert(
        "zqu__ProductRatePlan__c",
        [
            _prepare("zqu__ProductRatePlan__c", p, "zqu__Product__c", products, "ProductId")
            for p in plans
        ],
    )
    charge_ids = writer.upsert(
        "zqu__ProductRatePlanCharge__c",
        [
            _prepare(
                "zqu__ProductRatePlanCharge__c",
                c,
                "zqu__ProductRatePlan__c",
                plan_ids,
                "ProductRatePlanId",
            )
            for c in charges
        ],
    )
    writer.upsert(
        "zqu__ProductRatePlanChargeTier__c",
        [
            _prepare(
                "zqu__ProductRatePlanChargeTier__c",
                t,
                "zqu__ProductRatePlanCharge__c",
                charge_ids,
                "ProductRatePlanChargeId",
            )
            for t in tiers
        ],
    )
    return product_id in products, writer.outcome


def _prepare(
    obj: str,
    record: dict[str, Any],
    link_field: str | None,
    parent_ids: dict[str, str],
    parent_key: str | None,
) -> Prepared:
    parents: Parents = {}
    if link_field is not None and parent_key is not None:
        parent = record.get(parent_key)
        kind = parent_key.removesuffix("Id")
        parents = {link_field: (kind, parent_ids, str(parent) if parent else None)}
    return linked(
        str(record["Id"]),
        lambda links: map_record(obj, record, external_id_field=PRODUCT_EXTERNAL_ID, links=links),
        parents,
    )
