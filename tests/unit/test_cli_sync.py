"""`entity-sync sync ...`: a request the contract refuses is one line naming the field, and
nothing is published."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from entity_sync.operations.cli.main import cli


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["crm-accounts", "a" * 70],
            "entity-sync: error: schema_invalid: crm_account_ids.0: String should have at most "
            "64 characters\n",
        ),
        (
            ["accounts", "0" * 32, "--entity", "e" * 65],
            "entity-sync: error: schema_invalid: entity_by_id.00000000000000000000000000000000: "
            "String should have at most 64 characters\n",
        ),
    ],
)
def test_a_request_the_contract_refuses_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], line: str
) -> None:
    # Embedded default in a temporary directory; the request is refused before any publish.
    monkeypatch.setenv("ENTITY_SYNC_DATA_DIR", str(tmp_path))
    for name in ("BROKER_URL", "DATABASE_URL"):
        monkeypatch.delenv(f"ENTITY_SYNC_{name}", raising=False)
    result = CliRunner().invoke(cli, ["sync", *args])
    assert result.exit_code == 1
    assert result.output == line
