"""The sign-in step the other browser tests start with: it returns only once signed in.

CI once failed on the page after sign-in (no form on /sync): the sign-in had returned while
the login form's navigation had not started yet, on a loaded machine. Here the form submits
one second late on purpose, as a slow renderer does.
"""

from __future__ import annotations

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.browser.conftest import OPERATOR_TOKEN, console_at, console_settings
from tests.browser.pages import sign_in
from tests.support.runner import running_worker

pytestmark = pytest.mark.browser

# Injected by the browser into every page before its own scripts (the page's CSP does not
# apply): the first submit of the login form is held back for a second.
LATE_SUBMIT = """
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form");
  if (!form || !document.getElementById("sign-in")) return;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setTimeout(() => form.submit(), 1000);
  }, { once: true });
});
"""


@pytest.mark.usefixtures("rabbit_cleanup")
def test_sign_in_returns_signed_in_when_the_form_submits_late(
    browser: webdriver.Chrome, broker_url: str, database_url: str, prefix: str
) -> None:
    settings = console_settings(prefix, broker_url, database_url)
    # The worker makes the schema and the queues (the console reads the dead-letter queues).
    with running_worker(settings), console_at(settings) as base:
        driver = browser
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": LATE_SUBMIT})
        sign_in(driver, base, OPERATOR_TOKEN)
        driver.get(f"{base}/sync")
        assert "/login" not in driver.current_url, driver.current_url
        assert driver.find_elements(By.ID, "sync-ids"), driver.page_source[:500]
