"""Shared knowledge of deploy/: file locations, the real settings, and YAML loading."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from entity_sync.config import Settings
from entity_sync.handlers.soap.config import BillingSettings, CrmSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
# A pinned image: a tag that names a version (not `latest`, not a bare major).
PINNED = re.compile(r"^[\w./-]+:(v?\d+\.\d+(\.\d+)?[\w.-]*)$")


def setting_names() -> set[str]:
    """Every ENTITY_SYNC_* variable the worker and its SOAP clients read."""
    names: set[str] = set()
    model: type[BaseSettings]
    for model in (Settings, BillingSettings, CrmSettings):
        prefix = str(model.model_config.get("env_prefix", ""))
        names |= {f"{prefix}{field}".upper() for field in model.model_fields}
    return names


def load_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="session")
def settings_env() -> set[str]:
    names = setting_names()
    assert "ENTITY_SYNC_METRICS_PORT" in names
    assert "ENTITY_SYNC_BILLING_PASSWORD" in names
    return names


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    (doc,) = load_yaml(DEPLOY / "compose.yaml")
    assert isinstance(doc, dict)
    return doc
