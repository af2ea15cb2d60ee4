"""What a person does in the console, as small steps (waits are on conditions, never sleeps)."""

from __future__ import annotations

import os
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

# Every run takes the screenshots into build/ (ignored by git); to refresh the ones the README
# shows: ENTITY_SYNC_SCREENSHOTS=docs/console ./scripts/test tests/browser
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / os.environ.get("ENTITY_SYNC_SCREENSHOTS", "build/console-screenshots")


def sign_in(driver: webdriver.Chrome, base: str, token: str) -> None:
    driver.get(f"{base}/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    wait_text(driver, By.ID, "role", lambda text: text.startswith(("operator", "reader")))


def wait_text(
    driver: webdriver.Chrome, by: str, what: str, ok: object, timeout: float = 20.0
) -> str:
    """Wait until the element is on the page and its text satisfies `ok` (a callable or an
    exact string). An absent element never satisfies `ok`: a check such as `bool(text)` must not
    pass on the page we are leaving (sign-in once returned before its form was submitted)."""
    seen: list[str] = []

    def check(d: webdriver.Chrome) -> bool:
        try:
            found = d.find_elements(by, what)
            if not found:
                seen.append("<absent>")
                return False
            text = found[0].text
        except WebDriverException as exc:
            # The page changed under us (a stale element; chromedriver also answers "node does
            # not belong to the document" while the page's script reloads it): look again.
            seen.append(f"<{type(exc).__name__}: {(exc.msg or '?').splitlines()[0][:200]}>")
            return False
        seen.append(text)
        return bool(ok(text)) if callable(ok) else text == ok

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(check)
    except TimeoutException as exc:
        raise AssertionError(
            f"{what}: waited {timeout}s for {ok!r}; last seen {seen[-1:]!r} on {driver.current_url}"
        ) from exc
    return seen[-1]


def group_rows(driver: webdriver.Chrome) -> dict[str, WebElement]:
    """Failure groups on the page, by error type."""
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.group")
    return {str(r.get_attribute("data-group")).split("/")[0]: r for r in rows}


def shot(driver: webdriver.Chrome, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
