"""A console on real RabbitMQ and PostgreSQL with dead letters made by a real worker, and a
real headless Chromium (Debian's chromium + chromium-driver) to drive it.

Chromium missing: skipped locally, a failure under CI=true (scripts/test installs it).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from waitress import create_server

from entity_sync.bootstrap import build, console_app
from entity_sync.config import Settings
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher, queue_depth
from tests.support.runner import running_worker, settings_for
from tests.support.services import unavailable
from tests.support.waiting import wait_for

OPERATOR_TOKEN = "operator-token-for-tests-0123456789"
READER_TOKEN = "reader-token-for-tests-0123456789"
XSS = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
CHROMIUM = os.environ.get("ENTITY_SYNC_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ENTITY_SYNC_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")


@dataclass
class Scene:
    settings: Settings
    base: str  # http://127.0.0.1:PORT
    rejected: list[str]  # event ids of the not_global_source group (one body carries XSS)
    xss_id: str


def _chromium_or_skip() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        unavailable(f"{', '.join(missing)} missing (apt-get install chromium chromium-driver)")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    _chromium_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # As root on a closed network: no sandbox, and none of Chromium's background connections.
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _dead_letters(settings: Settings, broker_url: str) -> tuple[list[str], str]:
    """A real worker applies the admin and object phases, and dead-letters two groups:
    3 objects from a non-global source (one with a script in its name) and 2 bodies that are
    not JSON."""
    rejected = [
        sc.obj("product", f"p-foreign-{i}", 1, {"name": name}, source="t-x")
        for i, name in enumerate(["Widget", XSS, "Gadget"])
    ]
    dlq = f"{settings.prefix}.object-shared.dlq"
    with running_worker(settings):
        pub = PikaPublisher(broker_url, f"{settings.prefix}.in")
        for rk, body in [*sc.admin_phase(), *sc.object_phase(), *rejected]:
            pub.publish(rk, body)
        for raw in (b"{not json", b"{not json either"):
            pub.publish("object.shared.product", raw)
        pub.close()
        wait_for(lambda: queue_depth(broker_url, dlq) == 5, 60, "5 dead letters")
    return [body["event_id"] for _, body in rejected], rejected[1][1]["event_id"]


def console_settings(prefix: str, broker_url: str, database_url: str, **overrides: Any) -> Settings:
    """A test run's settings with both console tokens (operator and read-only)."""
    return settings_for(
        prefix,
        broker_url,
        database_url,
        console_token=OPERATOR_TOKEN,
        console_readonly_token=READER_TOKEN,
        **overrides,
    )


@pytest.fixture
def scene(broker_url: str, database_url: str, prefix: str, rabbit_cleanup: None) -> Iterator[Scene]:
    settings = console_settings(prefix, broker_url, database_url, console_ingest_seconds=1.0)
    rejected, xss_id = _dead_letters(settings, broker_url)
    # The worker is stopped: replayed messages wait in their input queue, where tests see them.
    with console_at(settings) as base:
        yield Scene(settings, base, rejected, xss_id)


@contextmanager
def console_at(settings: Settings) -> Iterator[str]:
    """`entity-sync console` on a free port, in this process; yields its base URL."""
    app = build(settings)
    flask_app, ingestor = console_app(app, host="127.0.0.1", insecure_local=False)
    server: Any = create_server(flask_app, host="127.0.0.1", port=0, threads=4, ident="")
    thread = threading.Thread(target=server.run, name="console", daemon=True)
    thread.start()
    ingestor.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        ingestor.stop()
        server.close()
        thread.join(timeout=10)
        app.close()
