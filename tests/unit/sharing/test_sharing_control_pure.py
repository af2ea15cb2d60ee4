"""Direct tests of data control (rule 6) and currency withholding (rule 8) in control.py."""

from __future__ import annotations

import pytest

from entity_sync.handlers.sharing import control

CHARGE = "product_rate_plan_charge"


# --- controller -----------------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["notes", "status"])
def test_period_notes_and_status_are_target_controlled(attribute: str) -> None:
    assert control.controller("accounting_period", attribute, {}) == "target"


@pytest.mark.parametrize("attribute", ["name", "start_date", "end_date", "fiscal_year", "other"])
def test_period_other_attributes_are_source_controlled(attribute: str) -> None:
    assert control.controller("accounting_period", attribute, {}) == "source"


def test_period_levels_from_entity_control_do_not_apply() -> None:
    levels = {"notes": "source", "name": "target"}
    assert control.controller("accounting_period", "notes", levels) == "target"
    assert control.controller("accounting_period", "name", levels) == "source"


@pytest.mark.parametrize("object_type", ["product", "product_rate_plan", CHARGE])
def test_product_default_sku_source_everything_else_target(object_type: str) -> None:
    assert control.controller(object_type, "sku", {}) == "source"
    for attribute in ("name", "description", "effective_start_date", "prices", "tiers"):
        assert control.controller(object_type, attribute, {}) == "target"


def test_product_levels_override_defaults() -> None:
    levels = {"sku": "target", "name": "source"}
    assert control.controller("product", "sku", levels) == "target"
    assert control.controller("product", "name", levels) == "source"


@pytest.mark.parametrize("attribute", ["charge_type", "charge_model", "billing_timing"])
def test_always_source_attributes_ignore_levels(attribute: str) -> None:
    assert control.controller(CHARGE, attribute, {attribute: "target"}) == "source"


# --- currencies ------------------------------------------------------------------------------


def test_visible_prices_keeps_only_active_currencies() -> None:
    assert control.visible_prices({"USD": "1", "EUR": "2"}, ["EUR"]) == {"EUR": "2"}


def test_visible_prices_of_non_dict_is_empty() -> None:
    assert control.visible_prices(None, ["USD"]) == {}


def test_visible_tiers_keeps_only_active_currencies() -> None:
    tiers = [{"currency": "USD", "price": "1"}, {"currency": "EUR", "price": "2"}]
    assert control.visible_tiers(tiers, ["USD"]) == [{"currency": "USD", "price": "1"}]


def test_withheld_currencies_from_prices_and_tiers_sorted() -> None:
    data = {"prices": {"USD": "1", "GBP": "2"}, "tiers": [{"currency": "EUR"}]}
    assert control.withheld_currencies(data, ["USD"]) == ["EUR", "GBP"]


def test_withheld_currencies_none_when_all_active() -> None:
    assert control.withheld_currencies({"prices": {"USD": "1"}}, ["USD", "EUR"]) == []


# --- create_data ------------------------------------------------------------------------------


def test_create_copies_all_attributes() -> None:
    source = {"name": "n", "sku": "s", "custom": {"a": [1]}}
    data = control.create_data("product", source, [])
    assert data == source


def test_create_is_a_deep_copy() -> None:
    source = {"custom": {"a": [1]}}
    data = control.create_data("product", source, [])
    data["custom"]["a"].append(2)
    assert source == {"custom": {"a": [1]}}


def test_create_charge_withholds_inactive_currencies() -> None:
    source = {
        "prices": {"USD": "1", "EUR": "2"},
        "tiers": [{"currency": "USD"}, {"currency": "EUR"}],
    }
    data = control.create_data(CHARGE, source, ["EUR"])
    assert data == {"prices": {"EUR": "2"}, "tiers": [{"currency": "EUR"}]}


def test_create_non_charge_keeps_prices_like_attributes_verbatim() -> None:
    data = control.create_data("product", {"prices": {"EUR": "2"}}, [])
    assert data == {"prices": {"EUR": "2"}}


# --- update_data ------------------------------------------------------------------------------


def test_update_overwrites_source_controlled_and_keeps_target_controlled() -> None:
    old = {"name": "target name", "sku": "old", "description": "target d"}
    source = {"name": "source name", "sku": "new", "description": "source d"}
    new = control.update_data("product", old, source, {}, [])
    assert new == {"name": "target name", "sku": "new", "description": "target d"}


def test_update_removes_source_controlled_attribute_missing_from_source() -> None:
    new = control.update_data("product", {"name": "n", "sku": "s"}, {"name": "n"}, {}, [])
    assert new == {"name": "n"}


def test_update_adds_new_source_controlled_attribute() -> None:
    levels = {"colour": "source"}
    new = control.update_data("product", {"sku": "s"}, {"sku": "s", "colour": "red"}, levels, [])
    assert new == {"sku": "s", "colour": "red"}


def test_update_adds_a_target_controlled_attribute_the_copy_never_had() -> None:
    new = control.update_data("product", {"sku": "s"}, {"sku": "s", "colour": "red"}, {}, [])
    assert new == {"sku": "s", "colour": "red"}


def test_update_keeps_the_target_value_of_a_target_controlled_attribute_it_has() -> None:
    new = control.update_data("product", {"colour": "blue"}, {"colour": "red"}, {}, [])
    assert new == {"colour": "blue"}


def test_update_period_notes_and_status_stay_target() -> None:
    old = {"name": "Jan", "status": "Closed", "notes": "target note", "end_date": "2026-01-31"}
    source = {"name": "January", "status": "Open", "notes": "src", "end_date": "2026-01-30"}
    new = control.update_data("accounting_period", old, source, {}, [])
    assert new == {
        "name": "January",
        "status": "Closed",
        "notes": "target note",
        "end_date": "2026-01-30",
    }


def test_update_charge_always_source_attributes_follow_source() -> None:
    old = {"charge_type": "Recurring", "charge_model": "FlatFee", "billing_timing": "InAdvance"}
    source = {"charge_type": "OneTime", "charge_model": "PerUnit", "billing_timing": "InArrears"}
    levels = {"charge_type": "target"}  # cannot be stored via entity.control, still ignored
    assert control.update_data(CHARGE, old, source, levels, []) == source


def test_update_source_controlled_prices_follow_source_for_active_currencies() -> None:
    old = {"prices": {"USD": "1"}}
    source = {"prices": {"USD": "2", "EUR": "3"}}
    new = control.update_data(CHARGE, old, source, {"prices": "source"}, ["USD"])
    assert new == {"prices": {"USD": "2"}}


def test_update_target_controlled_prices_keep_target_amounts_but_follow_source_currencies() -> None:
    old = {"prices": {"USD": "target-1", "GBP": "target-2"}}
    source = {"prices": {"USD": "2", "EUR": "3"}}
    new = control.update_data(CHARGE, old, source, {}, ["USD", "EUR", "GBP"])
    assert new == {"prices": {"USD": "target-1", "EUR": "3"}}


def test_update_target_controlled_tiers_keep_target_tiers_currency_follows_source() -> None:
    old = {"tiers": [{"currency": "USD", "price": "target"}, {"currency": "GBP", "price": "x"}]}
    source = {"tiers": [{"currency": "USD", "price": "src"}, {"currency": "EUR", "price": "e"}]}
    new = control.update_data(CHARGE, old, source, {}, ["USD", "EUR", "GBP"])
    assert new == {
        "tiers": [{"currency": "USD", "price": "target"}, {"currency": "EUR", "price": "e"}]
    }


def test_update_source_controlled_tiers_follow_source() -> None:
    old = {"tiers": [{"currency": "USD", "price": "target"}]}
    source = {"tiers": [{"currency": "USD", "price": "src"}]}
    new = control.update_data(CHARGE, old, source, {"tiers": "source"}, ["USD"])
    assert new == source


def test_update_does_not_mutate_its_inputs() -> None:
    old = {"sku": "a", "x": {"y": 1}}
    source = {"sku": "b", "x": {"y": 2}}
    control.update_data("product", old, source, {}, [])
    assert old == {"sku": "a", "x": {"y": 1}}


# --- release_data -----------------------------------------------------------------------------


def test_release_adds_withheld_prices_and_tiers_of_newly_active_currencies() -> None:
    old = {"prices": {"USD": "target"}, "tiers": [{"currency": "USD"}]}
    source = {
        "prices": {"USD": "1", "EUR": "2", "GBP": "3"},
        "tiers": [{"currency": "USD"}, {"currency": "EUR", "price": "2"}],
    }
    new = control.release_data(old, source, ["EUR"])
    assert new == {
        "prices": {"USD": "target", "EUR": "2"},
        "tiers": [{"currency": "USD"}, {"currency": "EUR", "price": "2"}],
    }


def test_release_does_not_overwrite_a_price_the_target_already_has() -> None:
    new = control.release_data({"prices": {"EUR": "mine"}}, {"prices": {"EUR": "2"}}, ["EUR"])
    assert new == {"prices": {"EUR": "mine"}}


def test_release_without_source_prices_is_unchanged() -> None:
    old = {"name": "n"}
    assert control.release_data(old, {"name": "n"}, ["EUR"]) == old


# --- changed / immutable ----------------------------------------------------------------------


def test_changed_attributes_lists_added_removed_and_modified_sorted() -> None:
    old = {"a": 1, "b": 2, "c": 3}
    new = {"a": 1, "b": 20, "d": 4}
    assert control.changed_attributes(old, new) == ["b", "c", "d"]


def test_changed_attributes_empty_when_equal() -> None:
    assert control.changed_attributes({"a": [1]}, {"a": [1]}) == []


@pytest.mark.parametrize("attribute", ["charge_model", "billing_timing"])
def test_immutable_violations_detects_each_attribute(attribute: str) -> None:
    old = {"charge_model": "FlatFee", "billing_timing": "InAdvance"}
    assert control.immutable_violations(old, dict(old, **{attribute: "X"})) == [attribute]


def test_immutable_violations_ignores_charge_type_and_other_attributes() -> None:
    old = {"charge_model": "FlatFee", "billing_timing": "InAdvance", "charge_type": "Recurring"}
    new = dict(old, charge_type="OneTime", name="other")
    assert control.immutable_violations(old, new) == []
