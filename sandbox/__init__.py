"""Local SOAP sandboxes of the billing system and the CRM (DESIGN.md §5.4).

from sandbox import start_billing_sandbox, start_crm_sandbox
"""

from sandbox.billing import BillingSandboxHandle, start_billing_sandbox
from sandbox.crm import CrmSandboxHandle, start_crm_sandbox

__all__ = [
    "BillingSandboxHandle",
    "CrmSandboxHandle",
    "start_billing_sandbox",
    "start_crm_sandbox",
]
