"""Settings: embedded defaults, validation, and passwords never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from worker.cli.main import cli
from worker.config import Settings, redact_url


def test_defaults_are_embedded_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.embedded_broker
    assert settings.broker_url == f"sqla+sqlite:///{tmp_path.resolve() / 'broker.db'}"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'state.db'}"
    assert settings.prefix == "entity-sync"
    assert settings.global_entity == "global"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://user:s3cret@host:5672//", "amqp://user:***@host:5672//"),
        ("postgresql+psycopg://app:s3cret@db/state", "postgresql+psycopg://app:***@db/state"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)


def test_a_bad_setting_is_one_line_and_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENTITY_SYNC_BATCH_SIZE", "lots")
    result = CliRunner().invoke(cli, ["entities", "list"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "ENTITY_SYNC_BATCH_SIZE" in result.output
    assert "Traceback" not in result.output


def test_an_unreachable_database_never_shows_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENTITY_SYNC_DATABASE_URL", "postgresql+psycopg://app:s3cret@127.0.0.1:1/x")
    result = CliRunner().invoke(cli, ["entities", "list"])
    assert result.exit_code == 1
    assert "s3cret" not in result.output
    assert "app:***@127.0.0.1:1/x" in result.output
    assert result.output.count("\n") == 1
