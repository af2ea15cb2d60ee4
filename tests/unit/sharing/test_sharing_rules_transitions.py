"""Direct tests of the pure state-transition rules in src/entity_sync/handlers/sharing/rules.py:
connections (rule 2), acceptance settings (rule 5) and control levels (rule 6).
The per-event and per-target decisions are in test_sharing_rules_pure.py."""

from __future__ import annotations

import pytest

from entity_sync.handlers.errors import Rejected
from entity_sync.handlers.sharing import rules

# --- rule 2: connection transitions ---------------------------------------------------------

LEGAL = [
    (None, "request", "pending"),
    ("pending", "accept", "connected"),
    ("pending", "deny", "denied"),
    ("connected", "disconnect", "disconnected"),
]
STATES = [None, "pending", "connected", "denied", "disconnected"]
ACTIONS = ["request", "accept", "deny", "disconnect"]
ILLEGAL = [
    (s, a) for s in STATES for a in ACTIONS if (s, a) not in {(ls, la) for ls, la, _ in LEGAL}
]


@pytest.mark.parametrize(("current", "action", "expected"), LEGAL)
def test_next_connection_status_legal_transitions(
    current: str | None, action: str, expected: str
) -> None:
    assert rules.next_connection_status(current, action) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("current", "action"), ILLEGAL)
def test_next_connection_status_every_other_transition_is_illegal(
    current: str | None, action: str
) -> None:
    with pytest.raises(Rejected) as exc:
        rules.next_connection_status(current, action)  # type: ignore[arg-type]
    assert exc.value.reason == "illegal_transition"
    assert action in exc.value.message


def test_illegal_transition_table_covers_every_pair_but_the_legal_four() -> None:
    assert len(ILLEGAL) == len(STATES) * len(ACTIONS) - 4


# --- rule 5: acceptance ---------------------------------------------------------------------


def test_next_acceptance_switch_to_auto_accept_backfills() -> None:
    assert rules.next_acceptance("dont_accept", "auto_accept", False) == ("auto_accept", True)


@pytest.mark.parametrize("value", ["auto_accept", "dont_accept"])
def test_next_acceptance_same_value_is_a_no_op(value: str) -> None:
    assert rules.next_acceptance(value, value, False) == (value, False)  # type: ignore[arg-type]


def test_next_acceptance_switch_back_without_force_is_rejected() -> None:
    with pytest.raises(Rejected) as exc:
        rules.next_acceptance("auto_accept", "dont_accept", False)
    assert exc.value.reason == "force_required"


def test_next_acceptance_switch_back_with_force_does_not_backfill() -> None:
    assert rules.next_acceptance("auto_accept", "dont_accept", True) == ("dont_accept", False)


# --- rule 6: control levels -----------------------------------------------------------------


def test_merge_levels_is_a_partial_update() -> None:
    merged = rules.merge_levels({"name": "source", "sku": "source"}, {"sku": "target"})
    assert merged == {"name": "source", "sku": "target"}


@pytest.mark.parametrize("attribute", ["charge_type", "charge_model", "billing_timing"])
def test_merge_levels_rejects_always_source_attribute_set_to_target(attribute: str) -> None:
    with pytest.raises(Rejected) as exc:
        rules.merge_levels({}, {attribute: "target", "name": "source"})
    assert exc.value.reason == "always_source_attribute"


def test_merge_levels_allows_always_source_attribute_set_to_source() -> None:
    assert rules.merge_levels({}, {"charge_model": "source"}) == {"charge_model": "source"}
