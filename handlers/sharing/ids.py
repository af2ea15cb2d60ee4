"""Deterministic identifiers: the same cause, target and object always give the same id."""

from __future__ import annotations

import uuid

# Fixed namespace of entity-sync; changing it would change every output id.
NAMESPACE = uuid.UUID("6c0d7f3e-4f1b-5d8e-9a53-2f1d0c4b7e21")


def output_event_id(cause_event_id: str, target: str, object_type: str, object_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"out|{cause_event_id}|{target}|{object_type}|{object_id}"))


def exception_event_id(cause_event_id: str, target: str, object_type: str, object_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"exc|{cause_event_id}|{target}|{object_type}|{object_id}"))


def target_object_id(connection_id: str, object_type: str, source_object_id: str) -> str:
    """Id of the copy in the target. A new connection gives new ids (rule 2)."""
    return uuid.uuid5(NAMESPACE, f"copy|{connection_id}|{object_type}|{source_object_id}").hex
