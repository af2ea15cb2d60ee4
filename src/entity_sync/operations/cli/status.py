"""`status`: queues, consumers, dead letters, outbox, schema and the last sync sessions."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import click
import sqlalchemy as sa
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from sqlalchemy.engine import Engine

from entity_sync.config import Settings
from entity_sync.operations import dlq
from entity_sync.operations.cli.common import app_context, echo_json
from entity_sync.operations.cli.main import cli
from entity_sync.runtime import outbox
from entity_sync.runtime.broker import connect, ensure_connected
from entity_sync.runtime.metrics import queue_stats
from entity_sync.runtime.topology import Names
from entity_sync.store import migrate
from entity_sync.store import repository as repo

# Columns a sync-session table may have, shown in this order when present.
SESSION_COLUMNS = (
    "request_id",
    "status",
    "object_type",
    "origin",
    "requested_by",
    "started_at",
    "finished_at",
    "reason",
)
ORDER_COLUMNS = ("finished_at", "started_at", "created_at", "requested_at", "id")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--sessions", default=10, show_default=True, help="Sync sessions to show.")
def status(as_json: bool, sessions: int) -> None:
    """Queue depths and consumers, DLQ counts, outbox backlog and the last sync sessions.

    Each part is read on its own: an unreachable broker or database is reported, not fatal.
    """
    with app_context() as app:
        report: dict[str, Any] = {
            "prefix": app.settings.prefix,
            "broker": app.settings.safe_broker_url(),
            "database": app.settings.safe_database_url(),
        }
        try:
            report["queues"] = [
                {
                    "queue": s.queue,
                    "kind": s.kind,
                    "messages": s.messages,
                    "consumers": s.consumers,
                    "exists": s.messages is not None,
                }
                for s in queue_stats(app.settings, Names(app.settings.prefix))
                if s.messages is not None or s.kind != "retry"  # delay queues: RabbitMQ only
            ]
            _count_failed(app.settings, report["queues"])
        except Exception as exc:  # noqa: BLE001 - shown as part of the report
            report["queues_error"] = _one_line(exc)
        report.update(_database_part(app.engine, sessions))
    if as_json:
        echo_json(report)
        return
    _render(report)


def _count_failed(settings: Settings, queues: list[dict[str, Any]]) -> None:
    """`failed` of each DLQ: distinct messages (ids), which after a crash between a dead
    letter's publish and its ack can be fewer than the broker's message count."""
    dlqs = [q for q in queues if q["kind"] == "dlq"]
    if not any(q["messages"] for q in dlqs):
        for q in dlqs:
            q["failed"] = q["messages"]
        return
    conn = ensure_connected(connect(settings))
    try:
        for q in dlqs:
            letters = dlq.browse(conn, q["queue"]) if q["messages"] else []
            q["failed"] = len(dlq.distinct(letters))
    finally:
        conn.release()


def _database_part(engine: Engine, limit: int) -> dict[str, Any]:
    part: dict[str, Any] = {}
    try:
        part["schema"] = {
            "current": migrate.current_revision(engine),
            "head": migrate.head_revision(),
        }
        if part["schema"]["current"] is None:
            part["database_error"] = "no schema yet: `entity-sync db upgrade` (or run) creates it"
            return part
        part["outbox_backlog"] = outbox.backlog(engine)
        with engine.connect() as conn:
            part["bulk_fan_outs"] = repo.running_jobs(conn)
    except sa.exc.SQLAlchemyError as exc:
        part["database_error"] = _one_line(exc)
        return part
    part.update(_sync_sessions(engine, limit))
    return part


def _sync_sessions(engine: Engine, limit: int) -> dict[str, Any]:
    """The newest sync sessions, if a table keeps them (read defensively: any of its columns)."""
    try:
        tables = sa.inspect(engine).get_table_names()
    except sa.exc.SQLAlchemyError as exc:
        return {"sync_sessions_note": f"cannot list tables: {_one_line(exc)}"}
    candidates = sorted(n for n in tables if "sync" in n and "session" in n)
    if not candidates:
        return {
            "sync_sessions": [],
            "sync_sessions_note": "no sync-session table in this database (not kept yet)",
        }
    name = candidates[0]
    try:
        table = sa.Table(name, sa.MetaData(), autoload_with=engine)
        shown = [c for c in SESSION_COLUMNS if c in table.c] or [c.name for c in table.c][:6]
        order = next((table.c[c] for c in ORDER_COLUMNS if c in table.c), None)
        stmt = sa.select(*[table.c[c] for c in shown]).limit(limit)
        if order is not None:
            stmt = stmt.order_by(order.desc())
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
    except sa.exc.SQLAlchemyError as exc:
        return {"sync_sessions": [], "sync_sessions_note": f"{name}: {_one_line(exc)}"}
    return {"sync_sessions": rows, "sync_sessions_table": name}


def _render(report: dict[str, Any]) -> None:
    parts: list[Any] = []
    head = Table.grid(padding=(0, 2))
    head.add_row("broker", str(report["broker"]).replace(";", ";\n"))  # a cluster: one per line
    head.add_row("database", str(report["database"]))
    if "outbox_backlog" in report:
        head.add_row("outbox backlog", str(report["outbox_backlog"]))
    if "schema" in report:
        schema = report["schema"]
        state = "current" if schema["current"] == schema["head"] else "NOT CURRENT"
        head.add_row("schema", f"{schema['current'] or 'empty'} (head {schema['head']}, {state})")
    if "database_error" in report:
        head.add_row("database error", f"[red]{report['database_error']}[/red]")
    parts.append(head)

    if "queues_error" in report:
        parts.append(f"[red]broker unavailable:[/red] {report['queues_error']}")
    else:
        queues = Table(title="queues", header_style="bold", title_justify="left")
        for col, justify in (("queue", "left"), ("kind", "left"), ("messages", "right")):
            queues.add_column(col, justify=justify)  # type: ignore[arg-type]
        queues.add_column("consumers", justify="right")
        for q in report["queues"]:
            messages = "missing" if q["messages"] is None else str(q["messages"])
            if q.get("failed") is not None and q["failed"] != q["messages"]:
                messages = f"{q['failed']} ({q['messages']} copies)"
            style = "red" if q["kind"] == "dlq" and (q["messages"] or 0) > 0 else None
            queues.add_row(q["queue"], q["kind"], messages, _text(q["consumers"]), style=style)
        parts.append(queues)

    bulk = report.get("bulk_fan_outs") or []
    if bulk:
        table = Table(title="bulk fan-outs running", header_style="bold", title_justify="left")
        for col in ("kind", "target", "done / total", "since", "cause"):
            table.add_column(col)
        for job in bulk:
            table.add_row(
                job["kind"],
                job["target_entity"],
                f"{job['done']} / {job['total']}",
                _text(job["created_at"]),
                job["cause_event_id"],
            )
        parts.append(table)

    sessions = report.get("sync_sessions") or []
    if sessions:
        table = Table(title="last sync sessions", header_style="bold", title_justify="left")
        columns = list(sessions[0])
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in sessions:
            table.add_row(*[_text(row[c]) for c in columns])
        parts.append(table)
    note = report.get("sync_sessions_note")
    if note:
        parts.append(f"sync sessions: {note}")
    Console(soft_wrap=False).print(
        Panel(Group(*parts), title=f"entity-sync status ({report['prefix']})", expand=False)
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


def _one_line(exc: BaseException) -> str:
    text = ""
    with contextlib.suppress(Exception):
        text = str(getattr(exc, "orig", None) or exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:300]
