"""Running the real worker in a background thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from entity_sync.bootstrap import App, build
from entity_sync.config import Settings
from entity_sync.runtime.consumer import Worker
from entity_sync.runtime.observe import Observer


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
def _background(
    run: Callable[[], object], ready: Callable[[], bool], stop: Callable[[], None], name: str
) -> Iterator[None]:
    """Run `run` in a thread until `ready()`; on exit `stop()` it and re-raise its error."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(exc)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not ready() and not errors and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        if not ready():
            raise errors[0] if errors else AssertionError(f"{name} did not start consuming")
        yield
    finally:
        stop()
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    assert not thread.is_alive(), f"{name} did not stop"


@contextmanager
def running_worker(
    settings: Settings, observer: Observer | None = None
) -> Iterator[tuple[App, Worker]]:
    """The sharing consumer alone."""
    app = build(settings)
    app.upgrade_database()
    worker = app.sharing_worker(observer)
    try:
        with _background(worker.run, worker.ready.is_set, worker.stop, "entity-sync-worker"):
            yield app, worker
    finally:
        app.close()


@contextmanager
def running_app(settings: Settings) -> Iterator[App]:
    """Every consumer of `entity-sync run` (sharing and sync)."""
    app = build(settings)
    app.upgrade_database()
    try:
        with _background(app.run, app.is_ready, app.stop, "entity-sync-app"):
            yield app
    finally:
        app.close()
