"""`entity-sync sandbox billing|crm` as a user runs it: a real process serving SOAP."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from soapkit import account_seed, billing_settings, crm_settings

from entity_sync.handlers.soap.billing import BillingClient
from entity_sync.handlers.soap.crm import CrmClient

pytestmark = pytest.mark.soap

CLI = str(Path(sys.executable).with_name("entity-sync"))


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start the sandbox and wait (with a deadline) for the line that gives its URL."""
    process = subprocess.Popen(
        [CLI, "sandbox", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()  # type: ignore[func-returns-value]
    try:
        first = lines.get(timeout=20)
    except queue.Empty:
        process.kill()
        pytest.fail("the sandbox did not report its URL within 20 s")
    assert "listening on " in first
    return process, first.split("listening on ", 1)[1].split()[0]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def test_cli_billing_and_crm_sandboxes_serve_soap(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    seed, (account_id,) = account_seed()
    seed_file = tmp_path / "billing.json"
    seed_file.write_text(json.dumps(seed))
    billing, billing_url = _start("billing", "--seed", str(seed_file), "--page-size", "1")
    crm, crm_url = _start("crm", "--latency-ms", "1")
    processes += [billing, crm]
    with BillingClient(billing_settings(billing_url)) as client:
        rows = client.query(f"select Id, Name from Account where Id = '{account_id}'")
        contacts = client.query("select Id from Contact")
    assert [r["Name"] for r in rows] == ["Customer 1"]
    assert len(contacts) == 2
    with CrmClient(crm_settings(crm_url)) as crm_client:
        (row,) = crm_client.upsert("Product2", "zqu__ZuoraId__c", [{"zqu__ZuoraId__c": "p1"}])
    assert row.created


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "seed.json"
    bad.write_text('{"Account": 5}')
    for args in (
        ["billing", "--seed", str(tmp_path / "missing.json")],
        ["crm", "--seed", str(bad)],
    ):
        done = subprocess.run(
            [CLI, "sandbox", *args], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1
        assert done.stderr.startswith("entity-sync: error: ")
        assert "Traceback" not in done.stderr
