"""Sync sessions in the console: start a sync of two billing accounts and read its results,
with a real sync worker and both SOAP sandboxes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from entity_sync_sandbox import start_billing_sandbox, start_crm_sandbox
from entity_sync_sandbox.seed import load_seed
from tests.browser.conftest import OPERATOR_TOKEN, console_at, console_settings
from tests.browser.pages import shot, sign_in, wait_text
from tests.support.runner import running_app

pytestmark = pytest.mark.browser

SEEDS = Path(__file__).resolve().parents[2] / "sandbox" / "entity_sync_sandbox" / "seeds"
ACCOUNTS = [f"0a{'0' * 29}{n}" for n in (1, 2)]


@pytest.fixture
def sandboxes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    billing = start_billing_sandbox(load_seed(SEEDS / "billing.json"))
    crm = start_crm_sandbox(load_seed(SEEDS / "crm.json"))
    for service, handle in (("BILLING", billing), ("CRM", crm)):
        monkeypatch.setenv(f"ENTITY_SYNC_{service}_ENDPOINT", handle.url)
        monkeypatch.setenv(f"ENTITY_SYNC_{service}_USERNAME", "sandbox")
        monkeypatch.setenv(f"ENTITY_SYNC_{service}_PASSWORD", "sandbox")
    yield
    billing.stop()
    crm.stop()


@pytest.mark.usefixtures("rabbit_cleanup", "sandboxes")
def test_an_operator_starts_a_sync_and_reads_its_results(
    browser: webdriver.Chrome, broker_url: str, database_url: str, prefix: str
) -> None:
    settings = console_settings(prefix, broker_url, database_url)
    with running_app(settings), console_at(settings) as base:
        driver = browser
        sign_in(driver, base, OPERATOR_TOKEN)
        driver.get(f"{base}/sync")
        driver.find_element(By.ID, "sync-ids").send_keys(" ".join([f"{'f' * 32}", *ACCOUNTS] * 3))
        driver.find_element(By.ID, "sync-start").click()
        assert "not 9" in wait_text(driver, By.ID, "error", lambda t: "8" in t)  # 9 ids: refused

        driver.get(f"{base}/sync")
        driver.find_element(By.ID, "sync-ids").send_keys(", ".join(ACCOUNTS))
        driver.find_element(By.ID, "sync-start").click()
        status = wait_text(driver, By.ID, "session-status", lambda t: True, 60)
        assert status == "finished", status
        rows = driver.find_elements(By.CSS_SELECTOR, "#results tr")
        assert len(rows) == 1 + 2  # header + one per account
        assert all("synced" in r.text for r in rows[1:])
        shot(driver, "sync-session")
        driver.get(f"{base}/sync")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#sessions tbody tr")) == 1
        shot(driver, "sync")
