"""The operations console in a real Chromium, on real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import orjson
import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import OPERATOR_TOKEN, READER_TOKEN, XSS, Scene
from tests.browser.pages import group_rows, shot, sign_in, wait_text
from tests.support.amqp import queue_depth

pytestmark = pytest.mark.browser


def _open_group(driver: webdriver.Chrome, scene: Scene, error_type: str) -> None:
    driver.get(f"{scene.base}/failed")
    group_rows(driver)[error_type].find_element(By.CSS_SELECTOR, "a.open-group").click()
    WebDriverWait(driver, 20).until(lambda d: "/failed/messages" in d.current_url)
    wait_text(driver, By.ID, "total", lambda t: t.isdigit())


def test_an_operator_sees_groups_inspects_replays_a_group_and_the_history_grows(
    browser: webdriver.Chrome, scene: Scene
) -> None:
    driver = browser
    driver.get(scene.base + "/failed")
    assert "/login" in driver.current_url  # nothing without signing in
    shot(driver, "sign-in")
    sign_in(driver, scene.base, OPERATOR_TOKEN)

    wait_text(driver, By.ID, "total", "5")
    groups = group_rows(driver)
    assert set(groups) == {"not_global_source", "invalid_json"}
    assert groups["not_global_source"].find_element(By.CSS_SELECTOR, "td.num").text == "3"
    assert groups["invalid_json"].find_element(By.CSS_SELECTOR, "td.num").text == "2"
    shot(driver, "failed-messages")

    # The hostile body is shown as text: no script ran, no element was made from it.
    _open_group(driver, scene, "not_global_source")
    shot(driver, "group")
    driver.find_element(By.LINK_TEXT, scene.xss_id).click()
    body = wait_text(driver, By.ID, "body", lambda t: "<script>" in t)
    assert XSS.replace('"', '\\"') in body
    assert driver.find_elements(By.CSS_SELECTOR, "#body *") == []
    assert driver.title != "pwned"
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 - raises when no alert is open
    shot(driver, "message")

    # Replay the group: the count first, a dry-run preview, then progress to the end.
    driver.get(scene.base + "/failed")
    group_rows(driver)["not_global_source"].find_element(By.CSS_SELECTOR, "a.replay-group").click()
    assert wait_text(driver, By.ID, "count", "3")
    preview = driver.find_elements(By.CSS_SELECTOR, "#preview tr")
    assert len(preview) == 1 + 3  # header + the three messages
    shot(driver, "replay")
    driver.find_element(By.ID, "confirm-replay").click()
    wait_text(driver, By.ID, "entry-status", "finished")
    assert driver.find_element(By.ID, "done").text == "3"
    shot(driver, "replay-progress")

    # The DLQ shrank (to the other group) and the messages wait in their input queue.
    driver.get(scene.base + "/failed")
    wait_text(driver, By.ID, "total", "2")
    assert set(group_rows(driver)) == {"invalid_json"}
    assert queue_depth(scene.settings.broker_url, f"{scene.settings.prefix}.object-shared") == 3

    driver.get(scene.base + "/history")
    wait_text(driver, By.ID, "entries", "1")
    row = driver.find_element(By.CSS_SELECTOR, "tr.entry").text
    assert "console:operator" in row
    assert "replay" in row
    assert "finished" in row
    shot(driver, "history")


def test_an_action_without_the_csrf_token_is_refused(
    browser: webdriver.Chrome, scene: Scene
) -> None:
    driver = browser
    sign_in(driver, scene.base, OPERATOR_TOKEN)
    driver.get(f"{scene.base}/failed/act?action=purge&group=invalid_json")
    wait_text(driver, By.ID, "count", "2")
    # A forged form: everything but the CSRF token.
    driver.execute_script(
        "document.querySelector('#act-form input[name=csrf_token]').remove();"
        "document.getElementById('confirm').value = 'purge 2';"
    )
    driver.find_element(By.ID, "confirm-purge").click()
    assert "CSRF token is missing" in wait_text(driver, By.ID, "error", lambda t: "CSRF" in t)

    # The same POST from outside the page, with the session cookie: 403, nothing purged.
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    refused = requests.post(
        f"{scene.base}/failed/purge",
        data={"group": "invalid_json", "confirm": "purge 2"},
        cookies=cookies,
        timeout=10,
        allow_redirects=False,
    )
    assert refused.status_code == 403
    driver.get(scene.base + "/failed")
    wait_text(driver, By.ID, "total", "5")


def test_filter_export_replay_selected_and_purge_with_a_typed_confirmation(
    browser: webdriver.Chrome, scene: Scene
) -> None:
    driver = browser
    sign_in(driver, scene.base, OPERATOR_TOKEN)
    # Text in a body: only the message whose name is "Gadget".
    driver.get(scene.base + "/failed/messages")
    driver.find_element(By.NAME, "text").send_keys("gadget")
    driver.find_element(By.CSS_SELECTOR, "#filters button").click()
    wait_text(driver, By.ID, "total", "1")
    [gadget] = driver.find_elements(By.CSS_SELECTOR, "input.pick")
    assert gadget.get_attribute("value") == scene.rejected[2]

    # Export exactly the filtered set as JSON lines (with the browser's session).
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    lines = requests.get(
        f"{scene.base}/failed/export?group=not_global_source", cookies=cookies, timeout=10
    ).text.splitlines()
    assert sorted(orjson.loads(line)["id"] for line in lines) == sorted(scene.rejected)

    # Replay the one selected message.
    gadget.click()
    driver.find_element(By.CSS_SELECTOR, "button[value=replay]").click()
    wait_text(driver, By.ID, "count", "1")
    driver.find_element(By.ID, "confirm-replay").click()
    wait_text(driver, By.ID, "entry-status", "finished")
    driver.get(scene.base + "/failed")
    wait_text(driver, By.ID, "total", "4")

    # Purge a group: a wrong confirmation changes nothing, the typed one purges.
    driver.get(f"{scene.base}/failed/act?action=purge&group=invalid_json")
    wait_text(driver, By.ID, "count", "2")
    driver.find_element(By.ID, "confirm").send_keys("purge everything")
    driver.find_element(By.ID, "confirm-purge").click()
    assert "purge 2" in wait_text(driver, By.ID, "error", lambda t: "not_confirmed" in t)
    driver.get(f"{scene.base}/failed/act?action=purge&group=invalid_json")
    driver.find_element(By.ID, "confirm").send_keys("purge 2")
    driver.find_element(By.ID, "confirm-purge").click()
    wait_text(driver, By.ID, "entry-status", "finished")
    driver.get(scene.base + "/failed")
    wait_text(driver, By.ID, "total", "2")
    driver.get(scene.base + "/failed?status=purged")
    assert set(group_rows(driver)) == {"invalid_json"}  # kept, as purged
    driver.get(scene.base + "/history")
    wait_text(driver, By.ID, "entries", "2")


def test_the_read_only_token_sees_everything_and_changes_nothing(
    browser: webdriver.Chrome, scene: Scene
) -> None:
    driver = browser
    sign_in(driver, scene.base, READER_TOKEN)
    assert driver.find_element(By.ID, "role").text == "reader (read-only)"
    wait_text(driver, By.ID, "total", "5")
    driver.get(f"{scene.base}/failed/act?action=replay&group=not_global_source")
    wait_text(driver, By.ID, "count", "3")
    driver.find_element(By.ID, "confirm-replay").click()
    assert "read-only" in wait_text(driver, By.ID, "error", lambda t: "403" in t)
    driver.get(scene.base + "/failed")
    wait_text(driver, By.ID, "total", "5")
    driver.get(scene.base + "/sync")
    assert driver.find_elements(By.ID, "sync-form") == []  # no form to start a sync


def test_why_and_now_pages(browser: webdriver.Chrome, scene: Scene) -> None:
    driver = browser
    sign_in(driver, scene.base, OPERATOR_TOKEN)
    driver.get(f"{scene.base}/why?target=t-auto&object=ap-2026-01")
    wait_text(driver, By.CSS_SELECTOR, "p.verdict", lambda t: "t-auto holds" in t)
    assert driver.find_elements(By.CSS_SELECTOR, "#timeline li")
    shot(driver, "why")
    driver.get(f"{scene.base}/now")
    dlq = f"{scene.settings.prefix}.object-shared.dlq"
    row = f"tr[data-queue='{dlq}'] td.messages"
    wait_text(driver, By.CSS_SELECTOR, row, "5")  # ingested failures still count
    shot(driver, "now")
