"""Settings: embedded defaults, validation, and passwords never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from entity_sync.config import Settings, redact_url
from entity_sync.operations.cli.main import cli


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
        # A cluster in kombu's failover syntax: every URL of the list is masked.
        (
            "amqp://a:s3cret@h1:5672//;amqp://b:s3cret2@h2:5673/v;amqps://c:s3cret%3B3@h3//",
            "amqp://a:***@h1:5672//;amqp://b:***@h2:5673/v;amqps://c:***@h3//",
        ),
        ("amqp://a@h1//;amqp://h2//", "amqp://a@h1//;amqp://h2//"),
        # A raw ; inside a password splits the URL in two parts; neither shows a piece of it.
        ("amqp://u:s3cret;more@h//", "amqp://***;***"),
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


@pytest.mark.parametrize(
    "url",
    [
        "amqp://u:s3cret@h1//; amqp://u:s3cret@h2//",
        "amqp://u:s3cret@h1//;",
        "amqp://u:s3cret@h1//;sqla+sqlite:///broker.db",
    ],
)
def test_a_broker_list_takes_only_amqp_urls_and_never_shows_a_password(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENTITY_SYNC_BROKER_URL", url)
    result = CliRunner().invoke(cli, ["entities", "list"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "ENTITY_SYNC_BROKER_URL" in result.output
    assert "s3cret" not in result.output


def test_a_broker_list_is_rabbitmq() -> None:
    settings = Settings(broker_url="amqp://u:p@h1//;amqp://u:p@h2//")
    assert not settings.embedded_broker
    assert settings.safe_broker_url() == "amqp://u:***@h1//;amqp://u:***@h2//"
