"""Seed files: `{ "<ObjectName>": [ {<field>: <value>, ...}, ... ] }`.

A billing seed may also hold records per entity of a multi-entity tenant, beside the flat
records (which belong to the default entity, the one a login without an entity name sees):
`{"Account": [...], "entities": {"<entity name>": {"Account": [...], ...}}}`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from entity_sync.handlers.errors import ConfigurationError

Records = dict[str, list[dict[str, Any]]]  # object name -> records
# Records, plus (billing only) "entities": {entity name: Records}; see by_entity.
Seed = dict[str, Any]
ENTITIES = "entities"
EXAMPLE_SEEDS = Path(__file__).resolve().parent / "seeds"  # billing.json, crm.json
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")
_ENTITY = re.compile(r"^\S(?:.{0,98}\S)?$")  # an entity name as login takes it


def load_seed(path: Path) -> Seed:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read seed file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"seed file {path} is not JSON: {exc}") from exc
    return check_seed(data, source=str(path), per_entity=True)


def check_seed(data: Any, *, source: str = "seed", per_entity: bool = False) -> Seed:
    """A checked copy. `per_entity`: an `entities` section is allowed (the billing sandbox)."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: expected an object of object names to record lists")
    flat = {name: records for name, records in data.items() if name != ENTITIES}
    seed: Seed = _records(flat, source)
    if ENTITIES in data:
        if not per_entity:
            raise ConfigurationError(f"{source}: only the billing sandbox keeps records per entity")
        sections = data[ENTITIES]
        if not isinstance(sections, dict):
            raise ConfigurationError(f"{source}: {ENTITIES} must map entity names to records")
        for entity in sections:
            if not isinstance(entity, str) or not _ENTITY.match(entity):
                raise ConfigurationError(f"{source}: {entity!r} is not an entity name")
        seed[ENTITIES] = {
            entity: _records(records, f"{source}: entity {entity}")
            for entity, records in sections.items()
        }
    return seed


def by_entity(seed: Seed) -> dict[str | None, Records]:
    """The records of each entity; None is the default entity (the flat records)."""
    checked = check_seed(seed, per_entity=True)
    sections: dict[str, Records] = checked.pop(ENTITIES, {})
    out: dict[str | None, Records] = {None: checked}
    out.update(sections)
    return out


def _records(data: Any, source: str) -> Records:
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: expected an object of object names to record lists")
    for name, records in data.items():
        if not _NAME.match(name):
            raise ConfigurationError(f"{source}: {name!r} is not an object name")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ConfigurationError(f"{source}: {name} must be a list of objects")
        for record in records:
            for field in record:
                if not _NAME.match(field):
                    raise ConfigurationError(f"{source}: {name} has a bad field name {field!r}")
    return {name: [dict(r) for r in records] for name, records in data.items()}
