"""Bodies of the messages published on the out exchange (schemas/outputs.py is the contract)."""

from __future__ import annotations

from entity_sync.handlers.sharing import ids
from entity_sync.handlers.sharing.model import Copy, Output, SourceObject


def target_update(cause_event_id: str, copy: Copy, action: str, changed: list[str]) -> Output:
    """An update of a target copy. Its id comes from the cause and the *connection*: a target
    connected again later (new copies, rule 2) gets new ids for the same versions."""
    event_id = ids.output_event_id(
        cause_event_id, copy.connection_id, copy.object_type, copy.source_object_id
    )
    return Output(
        routing_key=f"target.{copy.target_entity}.{copy.object_type}",
        event_id=event_id,
        body={
            "event_id": event_id,
            "cause_event_id": cause_event_id,
            "target_entity": copy.target_entity,
            "object_type": copy.object_type,
            "source_object_id": copy.source_object_id,
            "target_object_id": copy.target_object_id,
            "target_parent_id": copy.target_parent_id,
            "version": copy.version,
            "action": action,
            "data": copy.data,
            "changed": changed,
        },
    )


def share_exception(
    cause_event_id: str, target_entity: str, source: SourceObject, reason: str, message: str
) -> Output:
    """A target that may not receive a version of a source object (rule 5 blocks)."""
    object_type, source_object_id, version = source.object_type, source.object_id, source.version
    event_id = ids.exception_event_id(cause_event_id, target_entity, object_type, source_object_id)
    return Output(
        routing_key=f"share.exception.{target_entity}",
        event_id=event_id,
        kind="share_exception",
        body={
            "event_id": event_id,
            "cause_event_id": cause_event_id,
            "target_entity": target_entity,
            "object_type": object_type,
            "source_object_id": source_object_id,
            "version": version,
            "reason": reason,
            "message": message,
        },
    )
