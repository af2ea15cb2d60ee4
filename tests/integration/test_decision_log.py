"""`explain` reads the same from decisions shared among targets as from one row per decision."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from click.testing import CliRunner

from entity_sync.handlers.sharing.model import Decision, DecisionKind, Entity
from entity_sync.handlers.sharing.state import SharingState
from entity_sync.operations.cli.main import cli
from entity_sync.store import migrate, queries
from entity_sync.store import tables as t
from entity_sync.store.engine import create_engine
from entity_sync.store.sharing import flush_state

TARGETS = ["t1", "t2", "t3"]


def decisions_about(obj: str) -> list[Decision]:
    def d(
        target: str | None, decision: DecisionKind, reason: str, cause: str, version: int
    ) -> Decision:
        message = f"{decision} {reason} v{version}"
        return Decision(
            cause_event_id=cause,
            decision=decision,
            reason=reason,
            message=message,
            target_entity=target,
            object_type="product",
            object_id=obj,
            version=version,
        )

    return [
        *(d(x, "sent", "create", "E1", 1) for x in TARGETS),
        d("t1", "unchanged", "no_change", "E2", 2),
        d("t2", "sent", "update", "E2", 2),
        d("t3", "sent", "update", "E2", 2),
        d(None, "rejected", "immutable_attribute", "E3", 3),
        *(d(x, "stale", "version_not_newer", "E4", 1) for x in TARGETS),
    ]


@pytest.mark.integration
def test_explain_reads_shared_rows_like_one_row_per_decision(state_db_url: str) -> None:
    engine = create_engine(state_db_url)
    migrate.upgrade(engine)
    state = SharingState()
    for target in TARGETS:
        state.put_entity(
            Entity(
                entity_id=target,
                name=target,
                display_name=None,
                parent_id=None,
                is_global=False,
                earliest_activity_date=None,
                has_own_accounting_periods=False,
                active_currencies=("USD",),
            )
        )
    state.decisions = decisions_about("X")
    at = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        flush_state(conn, state)
        # Y: the same decisions as the previous release wrote them, one row each
        conn.execute(
            t.decisions.insert(),
            [{**dataclasses.asdict(x), "at": at, "targets": None} for x in decisions_about("Y")],
        )
        conn.execute(t.decisions.update().values(at=at))
    with engine.connect() as conn:
        shared = conn.execute(t.decisions.select().where(t.decisions.c.object_id == "X")).all()
    assert len(shared) == 5  # 10 decisions

    runner = CliRunner()
    for target in TARGETS:
        x, y = (queries.history(engine, target, obj) for obj in ("X", "Y"))
        strip = [{k: v for k, v in r.items() if k not in ("id", "object_id")} for r in x]
        assert strip == [{k: v for k, v in r.items() if k not in ("id", "object_id")} for r in y]
        assert [r["reason"] for r in x if r["target_entity"] == target][-1] == "version_not_newer"
        env = {"ENTITY_SYNC_DATABASE_URL": state_db_url}
        out_x, out_y = (
            runner.invoke(cli, ["explain", "--target", target, "--object", obj], env=env)
            for obj in ("X", "Y")
        )
        assert out_x.exit_code == 0, out_x.output
        assert out_x.output.replace(" X", " Y") == out_y.output
    engine.dispose()
