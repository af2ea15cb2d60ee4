"""The committed JSON Schemas and AsyncAPI match the models, and accept the contract examples."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from entity_sync.schemas import generate

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "contracts" / "examples"
STEM_OF = {
    "object.shared.product": "object-shared",
    "object.shared.product_rate_plan_charge": "object-shared",
    "object.shared.accounting_period": "object-shared",
    "entity.upserted": "entity-upserted",
    "entity.connection": "entity-connection",
    "entity.settings": "entity-settings",
    "entity.control": "entity-control",
    "sync.request": "sync-request",
    "sync.request.crm_account": "sync-request",
}


def _validator(stem: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((generate.JSON_DIR / f"{stem}.schema.json").read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_committed_files_match_the_models() -> None:
    assert generate.main(["--check"]) == 0, "run: python -m entity_sync.schemas.generate"


def test_asyncapi_refers_only_to_committed_schemas() -> None:
    doc = yaml.safe_load(generate.ASYNCAPI.read_text())
    assert doc["asyncapi"].startswith("3.")
    for message in doc["components"]["messages"].values():
        assert (generate.HERE / message["payload"]["$ref"]).exists()
    assert set(doc["channels"]) == set(generate.MESSAGES)


def _examples() -> list[Path]:
    if not EXAMPLES.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"contract examples missing at {EXAMPLES}")
        pytest.skip("../shared is not beside this checkout")
    return sorted(EXAMPLES.glob("*.json"))


def test_every_shared_example_is_valid_for_schema_and_model() -> None:
    examples = _examples()
    assert len(examples) == len(STEM_OF)
    for path in examples:
        stem = STEM_OF[path.stem]
        body = json.loads(path.read_text())
        _validator(stem).validate(body)
        generate.MESSAGES[stem][0].model_validate(body)


def _product(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "3d4e5f60-7182-4394-a5b6-c7d8e9f0a105",
        "occurred_at": "2026-11-20T10:00:00Z",
        "source_entity": "global",
        "object_type": "product",
        "object_id": "p-1",
        "parent_id": None,
        "version": 3,
        "action": "upsert",
        "data": {"name": "x", "effective_start_date": "2026-01-01"},
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    "body",
    [
        _product(version="3"),
        _product(version=0),
        _product(object_id="../../etc/passwd"),
        _product(object_id="x" * 65),
        _product(source_entity="a.b"),
        _product(object_type="invoice"),
        _product(action="remove"),
        _product(occurred_at="yesterday"),
        _product(parent_id="p-0"),
        _product(object_type="product_rate_plan", parent_id=None),
        _product(data={"effective_start_date": "not a date"}),
        {k: v for k, v in _product().items() if k != "event_id"},
    ],
    ids=lambda b: "invalid",
)
def test_schema_and_model_reject_the_same_invalid_bodies(body: dict[str, Any]) -> None:
    errors = list(_validator("object-shared").iter_errors(body))
    assert errors, "JSON Schema accepted an invalid body"
    with pytest.raises(ValidationError):
        generate.MESSAGES["object-shared"][0].model_validate(body)


def test_unknown_extra_fields_are_ignored() -> None:
    body = _product(extra_field={"anything": 1})
    _validator("object-shared").validate(body)
    model = generate.MESSAGES["object-shared"][0].model_validate(body)
    assert not hasattr(model, "extra_field")


def _sync_request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": "5b0e7a3c-61c2-4a8e-9d64-0f2b9a7c1e55",
        "object_type": "crm_account",
        "crm_account_ids": ["001Dn00000A1b2cIAB", "001Dn00000A1b2c"],
        "origin": "ui",
        "requested_by": "jane.doe@example.com",
        "requested_at": "2026-12-02T09:30:00Z",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


ZUORA_ID = "8a80c3a87f1d2e3b017f1e9c0c5d1001"


@pytest.mark.parametrize(
    "body",
    [
        _sync_request(),
        _sync_request(zuora_ids=None),
        _sync_request(object_type="billing_account", crm_account_ids=..., zuora_ids=[ZUORA_ID]),
        _sync_request(object_type="product", crm_account_ids=None, zuora_ids=[ZUORA_ID]),
    ],
    ids=["crm_account", "null_counts_as_absent", "billing_account", "product"],
)
def test_sync_request_kinds_the_schema_and_model_accept(body: dict[str, Any]) -> None:
    _validator("sync-request").validate(body)
    generate.MESSAGES["sync-request"][0].model_validate(body)


@pytest.mark.parametrize(
    "body",
    [
        _sync_request(zuora_ids=[ZUORA_ID]),  # both lists
        _sync_request(crm_account_ids=...),  # neither
        _sync_request(crm_account_ids=None),
        _sync_request(object_type="billing_account"),  # the list of the other kind
        _sync_request(object_type="product", crm_account_ids=..., zuora_ids=None),
        _sync_request(object_type="account"),
        _sync_request(crm_account_ids="001Dn00000A1b2cIAB"),
        _sync_request(crm_account_ids=["x" * 65]),
    ],
    ids=lambda b: "invalid",
)
def test_sync_request_needs_exactly_the_id_list_of_its_kind(body: dict[str, Any]) -> None:
    assert list(_validator("sync-request").iter_errors(body)), "JSON Schema accepted it"
    with pytest.raises(ValidationError):
        generate.MESSAGES["sync-request"][0].model_validate(body)


def test_crm_account_ids_are_15_or_18_letters_and_digits_in_the_schema() -> None:
    for bad in ("001Dn00000A1b2", "001Dn00000A1b2cIA", "001Dn00000A1b2c'; x"):
        assert list(_validator("sync-request").iter_errors(_sync_request(crm_account_ids=[bad])))


def test_schema_examples_are_valid_and_shown_in_asyncapi() -> None:
    doc = yaml.safe_load(generate.ASYNCAPI.read_text())
    for stem, (model, _, _) in generate.MESSAGES.items():
        schema = json.loads((generate.JSON_DIR / f"{stem}.schema.json").read_text())
        for example in schema.get("examples", []):
            _validator(stem).validate(example)
            model.model_validate(example)
        name = "".join(part.title() for part in stem.split("-"))
        shown = [e["payload"] for e in doc["components"]["messages"][name].get("examples", [])]
        assert all(example in shown for example in schema.get("examples", []))
    kinds = {
        e["payload"]["object_type"]
        for e in doc["components"]["messages"]["SyncRequest"]["examples"]
    }
    assert kinds == {"billing_account", "crm_account"}
