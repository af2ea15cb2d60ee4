"""Every log line about a message carries its event_id, object and target."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import structlog
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from entity_sync import logs
from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.runtime.batch import BatchProcessor
from entity_sync.runtime.delivery import Delivery
from entity_sync.schemas.inputs import ObjectShared
from entity_sync.store import migrate
from entity_sync.store.engine import create_engine
from tests.support import scenario as sc


def test_log_lines_carry_the_message_context(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate.upgrade(engine)
    processor = BatchProcessor(
        engine, SharingContext("global"), "es.out", max_body_bytes=1 << 20, max_attempts=5
    )
    rk, foreign = sc.obj("product", "p-1", 1, {"name": "x"}, source="t-1")
    rk2, early = sc.connection("c-1", "t-unknown", "request")
    deliveries = [
        Delivery(
            queue="es.object-shared", routing_key=rk, exchange="es.in", body=orjson.dumps(foreign)
        ),
        Delivery(
            queue="es.entity-admin", routing_key=rk2, exchange="es.in", body=orjson.dumps(early)
        ),
    ]
    with capture_logs(processors=[merge_contextvars, logs.message_context]) as lines:
        processor.process(deliveries)
    dead = next(e for e in lines if e["event"] == "dead-lettered")
    assert dead["event_id"] == foreign["event_id"]
    assert (dead["object_type"], dead["object_id"]) == ("product", "p-1")
    retry = next(e for e in lines if e["event"] == "retrying")
    assert retry["event_id"] == early["event_id"]
    assert retry["target_entity"] == "t-unknown"
    assert retry["reason"] == "unknown_entity"
    engine.dispose()


def test_the_configured_json_lines_carry_the_message_context_and_no_more_after_it() -> None:
    stream = io.StringIO()
    saved = structlog.get_config()
    logs.configure("info", "json", stream)
    try:
        _, body = sc.obj("product", "p-9", 3, {"name": "x"})
        model = ObjectShared.model_validate(body)
        log = structlog.get_logger("test")
        with logs.MessageContext(model):
            log.info("inside", object_id="own")  # what a line sets itself wins
        log.info("after")
    finally:
        structlog.configure(**saved)
    inside, after = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert inside["event_id"] == body["event_id"]
    assert (inside["object_type"], inside["object_id"]) == ("product", "own")
    assert "event_id" not in after
