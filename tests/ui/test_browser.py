"""The dashboard in a real browser: headless Chromium (Debian's package, driven by
Playwright with its executable path) against a live ``tidal ui`` on 127.0.0.1, over a
store filled by a real replay. Every page loads without console errors, a filter works,
a rollback clicked in the browser changes what the model server serves, and a label
given with a keyboard shortcut on the review page reaches the feedback table.

Screenshots of each page go to ``build/screenshots/`` (the README shows a copy). Without
Chromium or Playwright the tests are skipped with the reason, and fail under CI=true
(``make test`` installs both).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import add_review_items

import tidal
from tidal.control.rollout import Rollouts
from tidal.serve.local import LocalServer
from tidal.ui.app import create_ui

CHROMIUM = os.environ.get("TIDAL_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
TOKEN = "admin-token-for-the-browser-tests"


def _unavailable(reason: str) -> None:
    message = f"the browser tests need {reason} (make test installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright (pip install playwright)")
    if not Path(CHROMIUM).is_file():
        _unavailable(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def site(replayed: Path, tmp_path: Path, monkeypatch) -> Iterator[dict[str, Any]]:
    """The replayed project with a second model version switched in (so there is
    something to roll back), two review items, the dashboard and a model server."""
    from tidal.train.standard import run_standard

    monkeypatch.setenv("TIDAL_ADMIN_TOKEN", TOKEN)
    folder = tmp_path / "loop"
    shutil.copytree(replayed, folder)
    project = tidal.Project(folder)
    second = run_standard(project, progress=False)  # on the labelled rows it now has
    Rollouts(project).start("live", project.model_version(second["model"]),
                            strategy="blue_green", reason="a newer model")
    add_review_items(project, 2)
    ui = LocalServer(project, app=create_ui(project))
    model_server = LocalServer(project, TOKEN)
    try:
        yield {"project": project, "ui": ui, "server": model_server,
               "second": project.model_version(second["model"]).version}
    finally:
        ui.stop()
        model_server.stop()
        project.close()


def _open(browser: Any, site: dict[str, Any]) -> tuple[Any, list[str]]:
    """A fresh page that records console errors and uncaught exceptions."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 else None)
    page.base = site["ui"].url
    return page, errors


def test_every_page_loads_without_console_errors(browser, site):
    project = site["project"]
    runs = project.search_runs(max_results=2)
    item = project.review.items("live")[0]
    paths = {
        "overview": "/", "runs": "/runs", "run": f"/runs/{runs[0].id}",
        "compare": f"/runs/compare?id={runs[0].id}&id={runs[-1].id}",
        "models": "/models", "model": "/models/live", "version": "/models/live/1",
        "deployment": "/deployments/live",
        "monitoring": "/deployments/live/monitoring?span=30d",
        "review": "/review/live", "review-item": f"/review/live/items/{item.id}",
        "schedules": "/schedules", "events": "/events", "login": "/login"}
    SHOTS.mkdir(parents=True, exist_ok=True)
    page, errors = _open(browser, site)
    for name, path in paths.items():
        answer = page.goto(page.base + path)
        assert answer is not None and answer.status == 200, (path, answer and answer.status)
        assert page.locator("main h1").count() == 1
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert errors == [], errors
    # keyboard: the skip link is the first stop, and it leads to the content
    page.goto(page.base + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"


def test_the_event_filter_works_in_the_browser(browser, site):
    page, errors = _open(browser, site)
    page.goto(page.base + "/events")
    page.fill("input[name=kind]", "rollout")
    page.press("input[name=kind]", "Enter")
    page.wait_for_url("**/events?kind=rollout*")
    kinds = page.locator("table.events tbody tr td:nth-child(2)").all_inner_texts()
    assert kinds and all(k.startswith("rollout.") for k in kinds), kinds
    assert errors == []


def test_a_rollback_clicked_in_the_browser_changes_what_the_server_serves(browser, site):
    server, second = site["server"], site["second"]
    record = {f"feat_{i}": 0.5 for i in range(1, 7)}
    assert server.call("POST", "/admin/reload") and \
        server.call("POST", "/v1/predict/live", [record])["version"] == second
    page, errors = _open(browser, site)
    page.goto(page.base + "/login?next=/deployments/live")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url("**/deployments/live")
    form = page.locator("form.action", has_text="Roll back")
    form.locator("input[name=reason]").fill("clicked in the browser test")
    form.locator("input[name=confirm]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/deployments/live?done=rollback")
    assert "rollback: done, and recorded" in page.inner_text("main")
    deadline = time.monotonic() + 5  # the server polls the store every 0.5 s
    while server.call("POST", "/v1/predict/live", [record])["version"] != 1:
        assert time.monotonic() < deadline, "the server still answers with the new version"
        time.sleep(0.1)
    assert errors == []


def test_a_label_given_in_the_review_page_reaches_the_feedback_table(browser, site):
    project = site["project"]
    before = project.feedback.count("live")
    page, errors = _open(browser, site)
    page.goto(page.base + "/login?next=/review/live")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url("**/review/live")
    page.keyboard.press("n")  # the next item
    page.wait_for_url("**/review/live/items/*")
    page.keyboard.press("2")  # the second class
    page.wait_for_url("**/review/live?*")
    assert "label 1" in page.inner_text("main")
    assert project.feedback.count("live") == before + 1
    assert [a["label"] for a in project.review.answers("live")] == [1]
    assert errors == []
