"""Local SOAP sandboxes of the billing system and the CRM (docs/design.md §5.4).

from entity_sync_sandbox import start_billing_sandbox, start_crm_sandbox
"""

from pathlib import Path

from entity_sync_sandbox.billing import BillingSandboxHandle, start_billing_sandbox
from entity_sync_sandbox.crm import CrmSandboxHandle, start_crm_sandbox
from entity_sync_sandbox.seed import load_seed
from entity_sync_sandbox.server import SANDBOX_PASSWORD, SANDBOX_USER

SEEDS = Path(__file__).parent / "seeds"


def start_seeded() -> tuple[BillingSandboxHandle, CrmSandboxHandle]:
    """Both sandboxes in this process, on free ports, with the example seeds (the demo's)."""
    return (
        start_billing_sandbox(load_seed(SEEDS / "billing.json")),
        start_crm_sandbox(load_seed(SEEDS / "crm.json")),
    )


__all__ = [
    "SANDBOX_PASSWORD",
    "SANDBOX_USER",
    "SEEDS",
    "BillingSandboxHandle",
    "CrmSandboxHandle",
    "start_billing_sandbox",
    "start_crm_sandbox",
    "start_seeded",
]
