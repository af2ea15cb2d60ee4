"""Running the real worker in a background thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from worker.bootstrap import App, build
from worker.config import Settings
from worker.consumer import Worker


def settings_for(
    prefix: str,
    broker_url: str,
    database_url: str,
    data_dir: Path | None = None,
    **overrides: object,
) -> Settings:
    values: dict[str, object] = {
        "prefix": prefix,
        "broker_url": broker_url,
        "database_url": database_url,
        "batch_linger_ms": 5,
        "heartbeat_seconds": 0,
    }
    if data_dir is not None:
        values["data_dir"] = data_dir
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def running_worker(settings: Settings) -> Iterator[tuple[App, Worker]]:
    app = build(settings)
    app.upgrade_database()
    worker = app.sharing_worker()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(exc)

    thread = threading.Thread(target=target, name="entity-sync-worker", daemon=True)
    thread.start()
    if not worker.ready.wait(timeout=30):
        worker.stop()
        thread.join(timeout=30)
        raise errors[0] if errors else AssertionError("worker did not start consuming")
    try:
        yield app, worker
    finally:
        worker.stop()
        thread.join(timeout=30)
        app.close()
    if errors:
        raise errors[0]
    assert not thread.is_alive(), "worker did not stop"


@contextmanager
def running_app(settings: Settings) -> Iterator[App]:
    """Every consumer of `entity-sync run` (sharing and sync) in a background thread."""
    app = build(settings)
    app.upgrade_database()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            app.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(exc)

    thread = threading.Thread(target=target, name="entity-sync-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not app.is_ready() and not errors and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        if not app.is_ready():
            raise errors[0] if errors else AssertionError("consumers did not start")
        yield app
    finally:
        app.stop()
        thread.join(timeout=60)
        app.close()
    if errors:
        raise errors[0]
