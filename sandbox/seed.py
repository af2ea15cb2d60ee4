"""Seed files: `{ "<ObjectName>": [ {<field>: <value>, ...}, ... ] }`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from handlers.errors import ConfigurationError

Seed = dict[str, list[dict[str, Any]]]
EXAMPLE_SEEDS = Path(__file__).resolve().parent / "seeds"  # billing.json, crm.json
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")


def load_seed(path: Path) -> Seed:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read seed file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"seed file {path} is not JSON: {exc}") from exc
    return check_seed(data, source=str(path))


def check_seed(data: Any, *, source: str = "seed") -> Seed:
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
