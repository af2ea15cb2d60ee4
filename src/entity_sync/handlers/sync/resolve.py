"""The billing accounts of CRM accounts: every Account whose `CrmId` is one of them, found with
one ZOQL query per chunk of conditions (the ids are validated before they get here)."""

from __future__ import annotations

from entity_sync.handlers.sync import crm_ids
from entity_sync.handlers.sync.ports import BillingApi
from entity_sync.handlers.sync.zoql import select_by


def billing_accounts_of(billing: BillingApi, crm_account_ids: list[str]) -> dict[str, list[str]]:
    """Billing account ids per requested CRM account id (sorted, so results keep one order)."""
    owner = {crm_ids.core(c): c for c in crm_account_ids}
    values = [s for c in crm_account_ids for s in crm_ids.spellings(c)]
    found: dict[str, set[str]] = {c: set() for c in crm_account_ids}
    for zoql in select_by("Account", ("Id", "CrmId"), "CrmId", values):
        for record in billing.query(zoql):
            crm_id = str(record.get("CrmId") or "")
            requested = (
                owner.get(crm_ids.core(crm_id)) if crm_ids.is_crm_account_id(crm_id) else None
            )
            if requested is not None and record.get("Id"):
                found[requested].add(str(record["Id"]))
    return {c: sorted(ids) for c, ids in found.items()}
