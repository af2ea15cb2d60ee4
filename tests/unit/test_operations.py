"""The operations layer without services: letters, the failed-message store on SQLite,
the history, and the console's refusals to start."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from entity_sync.config import Settings
from entity_sync.operations.cli.main import cli
from entity_sync.operations.console.access import OPERATOR, READER, Access
from entity_sync.operations.context import Operations
from entity_sync.operations.ingest import row_of
from entity_sync.operations.letters import DeadLetter, from_row
from entity_sync.operations.replay import Mover, Plan
from entity_sync.runtime.republish import replayed
from entity_sync.runtime.topology import Names
from entity_sync.store import audit, failed, migrate
from entity_sync.store.engine import create_engine

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


def _letter(
    message_id: str, error: str, replays: int = 0, headers: dict[str, object] | None = None
) -> DeadLetter:
    return DeadLetter(
        queue="es.object-shared.dlq",
        routing_key="object.shared.product",
        body=b'{"name": "<b>x</b>"}',
        headers={
            "x-error-type": "not_global_source",
            "x-error-message": error,
            "x-error-at": "2026-12-02T09:59:00.000Z",
            "x-attempts": 1,
            **({"x-replay-count": replays} if replays else {}),
            **(headers or {}),
        },
        properties={"message_id": message_id, "content_type": "application/json"},
    )


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate.upgrade(engine)
    return engine


def _ingest(engine: Engine, *letters: DeadLetter) -> None:
    with engine.begin() as conn:
        for i, letter in enumerate(letters):
            failed.upsert(conn, row_of(letter, NOW + dt.timedelta(microseconds=i)))


def test_errors_of_one_cause_share_a_fingerprint() -> None:
    a = _letter("m1", "only 'global' shares objects; got an event from 't-1'")
    b = _letter("m2", "only 'global' shares objects; got an event from 't-22'")
    c = _letter("m3", "a different cause")
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.group == f"not_global_source/{a.fingerprint}"


def test_a_copy_counts_once_and_a_failure_after_a_replay_reopens(engine: Engine) -> None:
    letter = _letter("m1", "boom")
    _ingest(engine, letter, letter)  # two broker copies of one failure
    [row] = failed.rows(engine, failed.Filter())
    assert (row["failures"], row["copies"], row["status"]) == (1, 2, "failed")

    assert failed.resolve(engine, [(letter.queue, "m1")], "replayed", "alice") == 1
    assert failed.count(engine, failed.Filter()) == 0
    _ingest(engine, letter)  # a leftover copy of the old failure: no reopening
    assert failed.count(engine, failed.Filter()) == 0

    _ingest(engine, _letter("m1", "boom again", replays=1))  # failed after the replay
    [row] = failed.rows(engine, failed.Filter())
    assert (row["failures"], row["copies"], row["error_message"]) == (2, 1, "boom again")
    assert row["resolved_by"] is None


def test_resolved_messages_are_forgotten_after_the_retention_open_ones_never(
    engine: Engine,
) -> None:
    _ingest(engine, _letter("m1", "boom"), _letter("m2", "boom"))
    failed.resolve(engine, [("es.object-shared.dlq", "m1")], "purged", "alice")
    assert failed.prune(engine, dt.datetime.now(dt.UTC) - dt.timedelta(days=1)) == 0
    assert failed.prune(engine, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)) == 1
    assert _ids(engine, failed.Filter(status="")) == ["m2"]


def test_filters_match_group_text_ids_and_time(engine: Engine) -> None:
    _ingest(engine, _letter("m1", "alpha 1"), _letter("m2", "beta"), _letter("m3", "alpha 2"))
    group = _letter("x", "alpha 3").group
    assert _ids(engine, failed.Filter(groups=[group])) == ["m1", "m3"]
    assert _ids(engine, failed.Filter(groups=["not_global_source"])) == ["m1", "m2", "m3"]
    assert _ids(engine, failed.Filter(text="BETA")) == ["m2"]
    assert _ids(engine, failed.Filter(text="<b>")) == ["m1", "m2", "m3"]  # in the body
    assert _ids(engine, failed.Filter(text="%")) == []  # LIKE wildcards are plain text
    assert _ids(engine, failed.Filter(ids=["m3", "nope"])) == ["m3"]
    later = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    assert _ids(engine, failed.Filter(since=later)) == []
    assert _ids(engine, failed.Filter(until=later)) == ["m1", "m2", "m3"]


def _ids(engine: Engine, flt: failed.Filter) -> list[str]:
    return [r["message_id"] for r in failed.rows(engine, flt)]


def test_a_replayed_copy_drops_failure_headers_and_says_who(engine: Engine) -> None:
    _ingest(engine, _letter("m1", "boom", headers={"x-death": [{"count": 1}]}))
    letter = from_row(failed.rows(engine, failed.Filter())[0])
    out = replayed(letter, "console:operator", None)
    assert out.routing_key == "es.object-shared"  # from the DLQ's name, never a header
    assert out.message_id == "m1"
    assert not any(k.startswith(("x-error", "x-death", "x-attempts")) for k in out.headers)
    assert out.headers["x-replayed-by"] == "console:operator"
    assert out.headers["x-replay-count"] == 1


def test_history_records_progress_and_the_end(engine: Engine) -> None:
    entry = audit.Entry("alice", "cli", "purge", {"groups": ["g"]}, dry_run=False, selected=2)
    op = audit.start(engine, entry)
    audit.update(engine, op, audit.Progress(1, [["q.dlq", "m1", ""]]))
    assert audit.get(engine, op)["status"] == "running"  # type: ignore[index]
    audit.update(
        engine, op, audit.Progress(2, [["q.dlq", "m1", ""], ["q.dlq", "m2", ""]], "finished")
    )
    [last] = audit.recent(engine)
    assert (last["actor"], last["done"], last["status"]) == ("alice", 2, "finished")
    assert last["finished_at"] is not None


def test_a_purge_asked_to_stop_stops_between_messages(engine: Engine, tmp_path: Path) -> None:
    _ingest(engine, _letter("m1", "boom"), _letter("m2", "boom"))
    settings = Settings(data_dir=tmp_path, prefix="es")
    ops = Operations(settings, engine, Names("es"), actor="alice", via="cli")
    asked = iter([False, True])  # the second message finds the stop asked
    result = Mover(ops, "purge", failed.Filter()).run(Plan(cancel=lambda: next(asked)))
    assert (result.status, result.moved, result.matched) == ("stopped", 1, 2)
    assert "shut down" in result.note
    assert failed.count(engine, failed.Filter()) == 1
    [entry] = audit.recent(engine)
    assert (entry["status"], entry["done"]) == ("stopped", 1)


def test_tokens_give_roles_and_nothing_else() -> None:
    access = Access("operator-token-0123456789", "reader-token-0123456789")
    assert access.role_of("operator-token-0123456789") == OPERATOR
    assert access.role_of("reader-token-0123456789") == READER
    assert access.role_of("") is None
    assert access.role_of("operator-token") is None
    assert Access(None, None).role_of("") is None


@pytest.mark.parametrize(
    ("env", "args", "says"),
    [
        ({}, [], "ENTITY_SYNC_CONSOLE_TOKEN is not set"),
        ({}, ["--insecure-local", "--host", "0.0.0.0"], "127.0.0.1 only"),  # noqa: S104
        ({"ENTITY_SYNC_CONSOLE_TOKEN": "short"}, [], "too short"),
        # compose passes unset variables as empty strings: no token, not a short one
        (
            {"ENTITY_SYNC_CONSOLE_TOKEN": "", "ENTITY_SYNC_CONSOLE_READONLY_TOKEN": ""},
            [],
            "is not set",
        ),
    ],
)
def test_the_console_refuses_to_start_unsafely(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    args: list[str],
    says: str,
) -> None:
    monkeypatch.setenv("ENTITY_SYNC_DATA_DIR", str(tmp_path))
    for name in ("ENTITY_SYNC_CONSOLE_TOKEN", "ENTITY_SYNC_CONSOLE_READONLY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["console", "--port", "1", *args])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert says in result.output
    assert "short" not in result.output.replace("too short", "")  # the token is never shown
