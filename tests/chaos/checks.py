"""How a chaos run is judged: wait (by condition, with a deadline) until the work is done,
then compare what the broker and the database hold with the model of the events."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import orjson
import pika
import pytest
import sqlalchemy as sa

from tests.chaos.harness import TARGETS, Plan, Run, _admin
from tests.support.amqp import pika_params
from tests.support.waiting import wait_for


def _drain(url: str, queue: str) -> list[tuple[dict[str, Any], str | None, bytes]]:
    out: list[tuple[dict[str, Any], str | None, bytes]] = []
    with pika.BlockingConnection(pika_params(url)) as conn:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=2000)
        for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=2):
            if method is None:
                break
            out.append((dict(props.headers or {}), props.message_id, body))
        ch.cancel()
    return out


def _peek(url: str, queue: str) -> list[tuple[dict[str, Any], str | None]] | None:
    """(headers, message id) of every message in `queue`, all left in place; None if down."""
    try:
        with pika.BlockingConnection(pika_params(url)) as conn:
            ch = conn.channel()
            total = ch.queue_declare(queue, passive=True).method.message_count
            out: list[tuple[dict[str, Any], str | None]] = []
            while len(out) < total:
                method, props, _ = ch.basic_get(queue, auto_ack=False)
                if method is None:
                    break
                out.append((dict(props.headers or {}), props.message_id))
            return out  # unacked: back in the queue when the channel closes
    except Exception:  # noqa: BLE001 - broker restarting or queue not declared yet
        return None


def dlq_report(letters: list[tuple[dict[str, Any], str | None]], poison: dict[str, str]) -> str:
    """The DLQ by message id: reason, attempts and copies of each, and what should not be there."""
    copies = Counter(mid for _, mid in letters)
    lines = [f"dlq: {len(letters)} message(s), {len(copies)} id(s)"]
    for headers, mid in letters:
        mark = "" if mid in poison else "  <- not poison"
        if copies[mid] > 1 or mid not in poison:
            lines.append(
                f"  {mid} x-error-type={headers.get('x-error-type')} "
                f"x-attempts={headers.get('x-attempts')} x-error-pid={headers.get('x-error-pid')} "
                f"copies={copies[mid]}{mark}"
            )
    missing = sorted(set(poison) - set(copies))
    if missing:
        lines.append(f"  poison not dead-lettered: {missing}")
    return "\n".join(lines)


def _wait_until_done(run: Run, plan: Plan, dlq: str, timeout: float) -> None:
    """All events handled, the outbox and the queue empty, exactly the poison in the DLQ."""
    prefix = run.prefix

    def done() -> bool:
        if not (
            run.processed() == len(_admin()) + len(plan.valid_ids)
            and run.count("outbox") == 0
            and run.depth(f"{prefix}.object-shared") == 0
        ):
            return False
        letters = _peek(run.rabbit.url, dlq)
        return letters is not None and {mid for _, mid in letters} == set(plan.poison)

    def seen() -> None:
        letters = _peek(run.rabbit.url, dlq)
        print(  # noqa: T201 - what the test saw, on timeout
            f"processed {run.processed()} of {len(_admin()) + len(plan.valid_ids)}, "
            f"outbox {run.count('outbox')}, queue {run.depth(f'{prefix}.object-shared')}\n"
            + (dlq_report(letters, plan.poison) if letters is not None else "dlq: unreadable")
            + "\n"
            + run.worker.log.read_text()[-3000:]
        )

    wait_for(done, timeout, f"{run.name}: all events handled", on_timeout=seen)


def _drain_outputs(run: Run) -> tuple[int, dict[tuple[str, str, int], set[str | None]]]:
    """The duplicate deliveries on the out queue and the event ids per (target, object, version)."""
    outputs = _drain(run.rabbit.url, f"{run.prefix}.test-out")
    ids = Counter(mid for _, mid, _ in outputs)
    duplicates = sum(n - 1 for n in ids.values())
    by_key: dict[tuple[str, str, int], set[str | None]] = defaultdict(set)
    for _, mid, body in outputs:
        data = orjson.loads(body)
        by_key[(data["target_entity"], data["source_object_id"], data["version"])].add(mid)
    assert all(len(v) == 1 for v in by_key.values()), "a repeated update has the same event id"
    return duplicates, by_key


def _lost_final_updates(
    run: Run, plan: Plan, by_key: dict[tuple[str, str, int], set[str | None]]
) -> int:
    """Final versions that did not reach a target's consumers or its stored copy."""
    lost = 0
    with run.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT target_entity, source_object_id, version, data FROM target_copies")
        ).all()
    held = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    for pid, (version, sku) in plan.final.items():
        for target in TARGETS:
            if (target, pid, version) not in by_key:
                lost += 1  # the final update never reached the target's consumers
            copy = held.get((target, pid))
            expected = {"sku": sku, "name": f"name of {pid}"}
            if copy is None or copy[0] != version or not expected.items() <= copy[1].items():
                lost += 1
    assert len(held) == len(plan.final) * len(TARGETS), "no copies beyond the model"
    return lost


def finish_and_check(
    run: Run, kills: int, capsys: pytest.CaptureFixture[str], timeout: float = 240
) -> None:
    """Wait for the work to be done, stop the worker, compare with the model, print the line."""
    plan = run.plan
    assert plan is not None
    prefix = run.prefix
    dlq = f"{prefix}.object-shared.dlq"

    _wait_until_done(run, plan, dlq, timeout)
    dlq_letters = _peek(run.rabbit.url, dlq) or []
    dlq_copies = len(dlq_letters) - len({mid for _, mid in dlq_letters})
    if dlq_copies:
        with capsys.disabled():
            print("\n" + dlq_report(dlq_letters, plan.poison), flush=True)  # noqa: T201
    assert run.worker.stop() == 0, "SIGTERM ends the worker cleanly"

    duplicates, by_key = _drain_outputs(run)
    lost = _lost_final_updates(run, plan, by_key)

    dead = _drain(run.rabbit.url, dlq)
    got = {mid: h.get("x-error-type") for h, mid, _ in dead}
    missing_poison = len(set(plan.poison) - set(got))
    lost += missing_poison
    events = len(plan.valid_ids) + len(plan.poison)
    with capsys.disabled():
        print(  # noqa: T201 - the summary line CI logs show
            f"\nchaos {run.name}: events={events} kills={kills} duplicates={duplicates} "
            f"dlq_copies={dlq_copies} lost={lost}",
            flush=True,
        )
    assert got == plan.poison, "exactly the poison messages are dead-lettered, each with its reason"
    for queue in ("entity-admin.dlq", "unrouted"):
        assert _drain(run.rabbit.url, f"{prefix}.{queue}") == []
    assert lost == 0
