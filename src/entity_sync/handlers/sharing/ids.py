"""Deterministic identifiers: the same cause, target and object always give the same id.

The ids are RFC 4122 version-5 UUIDs (`uuid.uuid5(NAMESPACE, name)`), computed here without
`uuid.UUID`, whose checks and conversions cost three times the hash: with two ids per target
update, `uuid5` took a sixth of the worker's time at 10 targets. The hash state after the
namespace and the kind prefix is kept, so each id hashes only its own part of the name. Tests
compare every function with `uuid.uuid5` on arbitrary input, and pin known ids.
"""

from __future__ import annotations

import hashlib
import uuid

# Fixed namespace of entity-sync; changing it would change every output id.
NAMESPACE = uuid.UUID("6c0d7f3e-4f1b-5d8e-9a53-2f1d0c4b7e21")

_OUT = hashlib.sha1(NAMESPACE.bytes + b"out|", usedforsecurity=False)
_EXC = hashlib.sha1(NAMESPACE.bytes + b"exc|", usedforsecurity=False)
_COPY = hashlib.sha1(NAMESPACE.bytes + b"copy|", usedforsecurity=False)

# RFC 4122 variant: the top two bits of byte 8 are 10, so its first hex digit is 8, 9, a or b.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _sha1_hex(prefix: hashlib._Hash, rest: str) -> str:
    h = prefix.copy()
    h.update(rest.encode())
    return h.hexdigest()


# The first 32 hex digits of the SHA-1 of NAMESPACE + name, with digit 12 set to the version (5)
# and digit 16 to the variant: what str(uuid.uuid5(NAMESPACE, name)) returns.
def _uuid5_str(x: str) -> str:
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


def output_event_id(cause_event_id: str, target: str, object_type: str, object_id: str) -> str:
    return _uuid5_str(_sha1_hex(_OUT, f"{cause_event_id}|{target}|{object_type}|{object_id}"))


def exception_event_id(cause_event_id: str, target: str, object_type: str, object_id: str) -> str:
    return _uuid5_str(_sha1_hex(_EXC, f"{cause_event_id}|{target}|{object_type}|{object_id}"))


def target_object_id(connection_id: str, object_type: str, source_object_id: str) -> str:
    """Id of the copy in the target (uuid5 hex, no dashes). A new connection gives new ids."""
    x = _sha1_hex(_COPY, f"{connection_id}|{object_type}|{source_object_id}")
    return f"{x[:12]}5{x[13:16]}{_VARIANT[x[16]]}{x[17:32]}"
