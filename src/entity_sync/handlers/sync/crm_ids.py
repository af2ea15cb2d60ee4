"""CRM account ids: 15 or 18 letters and digits. The 15-character id is case-sensitive; the
18-character one appends a checksum of its letter case, so both spell the same account. The
billing system's `CrmId` may hold either spelling, so a lookup asks for both."""

from __future__ import annotations

import re

CRM_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def is_crm_account_id(value: str) -> bool:
    return CRM_ACCOUNT_ID.match(value) is not None


def core(crm_account_id: str) -> str:
    """The case-sensitive 15-character id: the same for both spellings of one account."""
    return crm_account_id[:15]


def long_form(crm_account_id: str) -> str:
    """The 18-character spelling: each group of five characters adds one character whose
    bits say which of them are upper-case letters."""
    base = core(crm_account_id)
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, ch in enumerate(base[start : start + 5]) if "A" <= ch <= "Z")
        suffix += _CHECKSUM[bits]
    return base + suffix


def spellings(crm_account_id: str) -> list[str]:
    """Every spelling a `CrmId` may hold for this account: as given, 15 and 18 characters."""
    return list(dict.fromkeys([crm_account_id, core(crm_account_id), long_form(crm_account_id)]))
