"""`entity-sync console` as operators start it: a process, its headers, a clean SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

from tests.browser.conftest import OPERATOR_TOKEN
from tests.support.waiting import wait_for

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.mark.usefixtures("rabbit_cleanup")
def test_the_console_process_serves_safe_headers_and_stops_on_sigterm(
    broker_url: str, database_url: str, prefix: str
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "ENTITY_SYNC_BROKER_URL": broker_url,
        "ENTITY_SYNC_DATABASE_URL": database_url,
        "ENTITY_SYNC_PREFIX": prefix,
        "ENTITY_SYNC_CONSOLE_TOKEN": OPERATOR_TOKEN,
        "ENTITY_SYNC_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "entity_sync.operations.cli", "console", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(
            lambda: _answers(f"http://127.0.0.1:{port}/login"),
            30,
            "the console answering",
            status=process.poll,
        )
        page = requests.get(f"http://127.0.0.1:{port}/failed", timeout=5, allow_redirects=False)
        assert page.status_code == 302  # to the sign-in
        login = requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert "script-src 'self'" in login.headers["Content-Security-Policy"]
        assert login.headers["X-Frame-Options"] == "DENY"
        cookie = login.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert OPERATOR_TOKEN not in output  # never in a log line
    assert "console stopping" in output
