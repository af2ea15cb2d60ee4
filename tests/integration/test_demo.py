"""`entity-sync demo` on the embedded default tells the story its table claims."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from entity_sync.operations import demo_story
from entity_sync.operations.cli.main import cli
from entity_sync.operations.demo import run_demo


@pytest.mark.embedded
def test_demo_outcomes(tmp_path: Path) -> None:
    report = run_demo(tmp_path / "demo")
    rows = {
        (r[0], r[1].split()[0] + (" " + r[1].split()[1] if r[1].startswith("rate") else "")): r
        for r in report.rows
    }
    assert rows[("acme-de", "period")][2].startswith("v1 as ")
    assert "target_has_own_periods" in rows[("acme-ch", "period")][4]
    assert rows[("acme-ch", "period")][2] == "-"
    assert rows[("acme-ch", "charge")][3] == "CHF EUR"  # EUR released after activation
    assert rows[("acme-de", "charge")][3] == "EUR USD"  # CHF withheld
    assert rows[("acme-de", "product")][2].startswith("v2 as ")
    assert all(r[2] == "-" and "pending" in r[4] for r in report.rows if r[0] == "acme-jp")
    assert sorted(reason for _, reason in report.dead_letters) == [
        "immutable_attribute",
        "shared_object_delete",
    ]
    assert report.outputs["share.exception.acme-ch"] == 1
    assert report.outputs["sync.completed"] == 3
    assert sum(report.outputs.values()) == 11 + 3
    # the on-demand syncs against the sandboxes: two accounts synced, one without CrmId failed;
    # the product; then one CRM account with its two billing accounts
    crm_account, (first, second, third) = demo_story.CRM_ACCOUNT, demo_story.ACCOUNTS
    assert [(r[0], r[1], r[2], r[3]) for r in report.sync] == [
        ("finished_with_errors", "", first, "synced"),
        ("finished_with_errors", "", second, "synced"),
        ("finished_with_errors", "", third, "failed"),
        ("finished", "", demo_story.SEED_PRODUCT, "synced"),
        ("finished", crm_account, first, "synced"),
        ("finished", crm_account, "0a000000000000000000000000000004", "synced"),
    ]
    assert "missing_crm_id" in report.sync[2][5]


@pytest.mark.embedded
def test_demo_command_prints_the_tables(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "what each target received, and why" in result.output
    assert "blocked (target_has_own_periods)" in result.output
    assert "001000000000001AAA" in result.output  # the sync of one CRM account


@pytest.mark.embedded
def test_explain_says_why_a_target_has_or_lacks_an_object(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    run_demo(data_dir)
    env = {"ENTITY_SYNC_DATA_DIR": str(data_dir)}
    runner = CliRunner()
    blocked = runner.invoke(
        cli, ["explain", "--target", "acme-ch", "--object", "AP-2027-01"], env=env
    )
    pending = runner.invoke(
        cli, ["explain", "--target", "acme-jp", "--object", "AP-2027-01"], env=env
    )
    held = runner.invoke(cli, ["explain", "--target", "acme-de", "--object", "AP-2027-01"], env=env)
    unknown = runner.invoke(
        cli, ["explain", "--target", "nobody", "--object", "AP-2027-01"], env=env
    )
    assert "does not hold AP-2027-01: blocked (target_has_own_periods)" in blocked.output
    assert "its connection conn-jp is pending" in pending.output
    assert "acme-de holds accounting_period AP-2027-01" in held.output
    assert unknown.exit_code == 1
    assert unknown.output.strip() == "entity-sync: error: not_found: no entity 'nobody' is known"
