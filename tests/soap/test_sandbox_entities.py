"""The billing sandbox keeps records per entity: a session sees only the records of the entity
it logged in to; the flat seed is the default entity (a login that names none)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from soapkit import billing_settings, zid

from entity_sync.handlers.errors import ConfigurationError
from entity_sync.handlers.soap.billing import BillingClient
from entity_sync.handlers.soap.errors import LoginFailed
from entity_sync_sandbox import BillingSandboxHandle, start_crm_sandbox
from entity_sync_sandbox.seed import load_seed

pytestmark = pytest.mark.soap

MakeBilling = Callable[..., BillingSandboxHandle]
QUERY = "select Id, Name from Account"


def _account(n: int, name: str) -> dict[str, Any]:
    return {"Id": zid(0x0A, n), "Name": name, "CrmId": "001000000000001AAA"}


SEED: dict[str, Any] = {
    "Account": [_account(1, "default")],
    "entities": {
        "eu": {"Account": [_account(2, "eu"), _account(3, "eu")]},
        "us": {"Account": [_account(4, "us")]},
    },
}


def _names(url: str, entity: str | None, page_size: int = 2000) -> list[str]:
    settings = billing_settings(url, batch_size=page_size)
    client = BillingClient(settings, entity=entity)
    try:
        return [str(r["Name"]) for r in client.query(QUERY)]
    finally:
        client.close()


def test_each_session_sees_only_its_entitys_records(make_billing: MakeBilling) -> None:
    sandbox = make_billing(SEED)
    assert _names(sandbox.url, None) == ["default"]
    assert _names(sandbox.url, "eu", page_size=1) == ["eu", "eu"]  # queryMore stays in eu
    assert _names(sandbox.url, "us") == ["us"]
    assert _names(sandbox.url, "apac") == []  # any name logs in; it holds nothing
    assert sandbox.state.records("eu")["Account"][0]["Id"] == zid(0x0A, 2)


def test_entities_of_the_seed_are_accepted_besides_the_listed_ones(
    make_billing: MakeBilling,
) -> None:
    sandbox = make_billing(SEED, entities={"apac"})
    assert _names(sandbox.url, "us") == ["us"]
    assert _names(sandbox.url, "apac") == []
    with pytest.raises(LoginFailed, match="Unknown entity: mars"):
        _names(sandbox.url, "mars")


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ({"entities": []}, "entities must map entity names to records"),
        ({"entities": {"eu": {"Account": {}}}}, "entity eu: Account must be a list"),
        ({"entities": {" eu": {}}}, "' eu' is not an entity name"),
        ({"entities": {"eu": {"bad name": []}}}, "'bad name' is not an object name"),
    ],
)
def test_bad_entity_sections_are_one_clear_error(
    tmp_path: Path, seed: dict[str, Any], message: str
) -> None:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    with pytest.raises(ConfigurationError, match=message):
        load_seed(path)


def test_the_crm_sandbox_refuses_records_per_entity() -> None:
    with pytest.raises(ConfigurationError, match="only the billing sandbox"):
        start_crm_sandbox({"entities": {"eu": {}}}, background=False)
