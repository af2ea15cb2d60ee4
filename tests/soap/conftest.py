"""Fixtures of the SOAP tests: sandboxes over real HTTP, the sync service against them, and the
vendor WSDL directory for contract tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from soapkit import VENDOR_FILES, billing_settings, crm_settings

from entity_sync.handlers.sync.memory import InMemorySyncLocks, InMemorySyncStore
from entity_sync.handlers.sync.service import SyncLimits, SyncService
from entity_sync_sandbox import (
    BillingSandboxHandle,
    CrmSandboxHandle,
    start_billing_sandbox,
    start_crm_sandbox,
)

# ../shared/contracts/vendor-wsdl next to the project; a fallback only outside CI.
DEFAULT_VENDOR_DIR = Path(__file__).resolve().parents[3] / "shared" / "contracts" / "vendor-wsdl"


@pytest.fixture
def make_billing() -> Iterator[Callable[..., BillingSandboxHandle]]:
    started: list[BillingSandboxHandle] = []

    def make(seed: Any = None, **options: Any) -> BillingSandboxHandle:
        handle = start_billing_sandbox(seed, **options)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        handle.stop()


@pytest.fixture
def make_crm() -> Iterator[Callable[..., CrmSandboxHandle]]:
    started: list[CrmSandboxHandle] = []

    def make(seed: Any = None, **options: Any) -> CrmSandboxHandle:
        handle = start_crm_sandbox(seed, **options)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        handle.stop()


@pytest.fixture
def make_service() -> Iterator[Callable[..., tuple[SyncService, InMemorySyncStore]]]:
    services: list[SyncService] = []

    def make(
        billing: BillingSandboxHandle,
        crm: CrmSandboxHandle,
        *,
        billing_options: dict[str, Any] | None = None,
        crm_options: dict[str, Any] | None = None,
        locks: InMemorySyncLocks | None = None,
        max_workers: int = 4,
    ) -> tuple[SyncService, InMemorySyncStore]:
        store = InMemorySyncStore()
        service = SyncService(
            billing_settings(billing.url, **(billing_options or {})),
            crm_settings(crm.url, **(crm_options or {})),
            locks=locks or InMemorySyncLocks(),
            store=store,
            limits=SyncLimits(max_workers=max_workers),
        )
        services.append(service)
        return service, store

    yield make
    for service in services:
        service.close()


@pytest.fixture(scope="session")
def vendor_wsdl_dir() -> Path:
    """ENTITY_SYNC_VENDOR_WSDL_DIR; missing files fail under CI=true and skip elsewhere."""
    configured = os.environ.get("ENTITY_SYNC_VENDOR_WSDL_DIR")
    in_ci = os.environ.get("CI", "").lower() == "true"
    directory = Path(configured) if configured else (None if in_ci else DEFAULT_VENDOR_DIR)
    missing = (
        "ENTITY_SYNC_VENDOR_WSDL_DIR is not set"
        if directory is None
        else next(
            (f"{directory / n} not found" for n in VENDOR_FILES if not (directory / n).is_file()),
            None,
        )
    )
    if missing:
        if in_ci:
            pytest.fail(f"vendor WSDL contract tests cannot run under CI: {missing}")
        pytest.skip(f"vendor WSDLs unavailable: {missing}")
    assert directory is not None
    return directory
