"""Machine codes of failures: `x-error-type` on dead letters and retries, and the `reason` of
`share.exception` outputs. Part of the public contract; metrics start a series for each at 0.

A unit test keeps these lists complete: every reason the worker or a rule raises is here.
"""

from __future__ import annotations

# Never valid as sent: dead-lettered at once, before any rule runs.
POISON = (
    "oversize_body",
    "not_utf8",
    "invalid_json",
    "unknown_routing_key",
    "wrong_queue",
    "schema_invalid",
    "publisher_not_allowed",
)
# Refused by a sharing rule (docs/design.md §4) or by the database: dead-lettered at once.
REJECTED = (
    "not_global_source",
    "shared_object_delete",
    "immutable_attribute",
    "illegal_transition",
    "force_required",
    "always_source_attribute",
    "global_mismatch",
    "global_not_target",
    "connection_mismatch",
    "connection_exists",
    "storage_rejected",
)
# May succeed later: retried with growing delays, then dead-lettered.
TRANSIENT = ("parent_unknown", "unknown_entity", "unexpected_error")

DEAD_LETTER = POISON + REJECTED + TRANSIENT
SHARE_EXCEPTION = ("target_has_own_periods", "activity_before_first_period")
