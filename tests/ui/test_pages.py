"""The dashboard's pages against a live ``tidal ui`` app on 127.0.0.1, over a trained
project with a deployment, a rollout in progress and its events. (The browser tests come
with the rest of the pages.)"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from ui_helpers import add_review_items

import tidal
from tidal.control.rollout import Rollouts
from tidal.core.config import RolloutSection
from tidal.serve.local import LocalServer
from tidal.ui.app import create_ui


@pytest.fixture
def dashboard(trained_project: Path, tmp_path: Path):
    folder = tmp_path / "project"
    shutil.copytree(trained_project, folder)
    project = tidal.Project(folder)
    project.set_deployment("elec2", "elec2:1", reason="first <b>deployment</b>")
    Rollouts(project).start("elec2", project.model_version("elec2:2"),
                            plan=RolloutSection(strategy="canary", steps=[0.25, 1.0]))
    server = LocalServer(project, app=create_ui(project))
    try:
        yield server, project
    finally:
        server.stop()
        project.close()


class Links(HTMLParser):
    """Every href and src of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.targets += [v for k, v in attrs if k in ("href", "src") and v]


def _page(server: LocalServer, path: str) -> str:
    status, body = server.request("GET", path)
    assert status == 200, (path, status, body[:500])
    return body.decode()


def test_the_overview_shows_what_each_deployment_serves_and_the_latest_events(dashboard):
    server, project = dashboard
    page = _page(server, "/")
    assert "elec2:1" in page and re.search(r"stable elec2:1: 75 %", page)
    assert re.search(r"canary elec2:2: 25 %", page)  # the rollout's first step
    assert "✔ healthy" in page  # no alert yet: said in words, not only in colour
    assert "rollout.started" in page
    # each event links to what it concerns
    assert '<a href="/deployments/elec2">deployment elec2</a>' in page
    assert '<a href="/models/elec2">model elec2</a>' in _page(server, "/events")
    # a reason from the store is text, never markup
    assert "first &lt;b&gt;deployment&lt;/b&gt;" in page and "<b>deployment" not in page


def test_the_event_timeline_filters_by_kind_and_by_what_it_concerns(dashboard):
    server, project = dashboard
    everything = _page(server, "/events")
    rollouts = _page(server, "/events?kind=rollout")
    kinds = set(re.findall(r'\?kind=([a-z_.]+)"', rollouts))
    assert kinds == {"rollout.started"}, kinds
    assert len(re.findall("<tr>", everything)) > len(re.findall("<tr>", rollouts))
    about_model = _page(server, "/events?entity=elec2")
    assert "concerning elec2" in about_model
    nothing = _page(server, "/events?kind=no-such-kind")
    assert "0 of 0 events" in nothing and "No events." in nothing


def test_every_page_loads_its_styles_from_tidal_itself(dashboard):
    server, _ = dashboard
    for path in ("/", "/events"):
        links = Links()
        links.feed(_page(server, path))
        assert links.targets and all(t.startswith(("/", "#")) for t in links.targets), \
            links.targets  # nothing from another host: the dashboard works offline
        for target in links.targets:
            if target.startswith("/static/"):
                status, body = server.request("GET", target)
                assert status == 200 and body


def test_a_deployment_page_shows_the_rollout_in_progress_and_why_it_serves(dashboard):
    server, project = dashboard
    page = _page(server, "/deployments/elec2")
    assert "Rollout 1: elec2:2 replacing elec2:1 (canary), running" in page
    assert re.search(r'<li class="reached current">25 % \(now\)</li>', page)
    assert re.search(r"<li class=\"\">100 %", page)  # not reached yet
    Rollouts(project).reconcile("elec2")  # no traffic: the step's analysis is inconclusive
    page = _page(server, "/deployments/elec2")
    steps = re.search(r'<ol class="steps" aria-label="Its steps so far">(.*?)</ol>', page,
                      re.S).group(1)
    assert "rollout.started" in steps
    assert "Why this version is serving" in page and "elec2:1 is blessed" in page
    assert "first &lt;b&gt;deployment&lt;/b&gt;" in page  # the change that made it stable
    Rollouts(project).abort("elec2", reason="checked by hand")
    after = _page(server, "/deployments/elec2")
    assert "Rollout in progress</h2>\n<p>None.</p>" in after
    assert "<td>aborted</td>" in after and "rollout.aborted" in after
    status, body = server.request("GET", "/deployments/nope")
    assert status == 404 and b"nope" in body and b"Traceback" not in body


def test_tidal_ui_serves_the_dashboard_on_127_0_0_1(trained_project: Path, tmp_path: Path):
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    folder = tmp_path / "project"
    shutil.copytree(trained_project, folder)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "tidal", "ui", "--port", str(port), "--project", str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    try:
        deadline, page = time.monotonic() + 60, None
        while page is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                    page = answer.read().decode()
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                time.sleep(0.2)
        assert page is not None and "No deployment yet" in page
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_model_pages_show_versions_gate_slices_and_lineage(dashboard):
    server, project = dashboard
    listing = _page(server, "/models")
    assert '<a href="/models/elec2">elec2</a>' in listing and "@champion → 1" in listing
    versions = _page(server, "/models/elec2")
    assert versions.index("elec2:2") < versions.index("elec2:1")  # newest first
    assert "alias_set" in versions  # @champion's history
    two = project.model_version("elec2:2")
    page = _page(server, "/models/elec2/2")
    gate = two.metrics["gate"]
    assert ("✔ blessed" if gate["blessed"] else "✖ vetoed") in page
    for check in gate["checks"]:  # every check of the verdict, with its sentence
        assert check["check"] in page
    assert f"accuracy (the gate's)</th><td>{two.metrics['overall']['accuracy']:.4g}" in page
    assert "random_forest (chosen)" in page
    # lineage: the steps that made these bytes, back to the data snapshot
    for step in ("snapshot_data", "validate_data", "split_data", "train_candidate"):
        assert f"<strong>{step}</strong>" in page
    assert two.artifact_sha256 in page and two.dataset_hash in page
    assert "feat_1" in page  # the signature
    for missing in ("/models/nope", "/models/elec2/99", "/runs/zzz", "/runs/compare?id=zzz",
                    "/deployments/%00", "/review/elec2/items/99999999999999999999"):
        status, body = server.request("GET", missing)
        assert status == 404 and b"Traceback" not in body, (missing, status)


def _tracked(project: tidal.Project) -> list[str]:
    """Three runs of a toy experiment, each with a loss curve over 20 steps."""
    ids = []
    for depth in (2, 4, 8):
        with project.start_run("toy", name=f"depth-{depth}") as run:
            run.log_params({"depth": depth, "lr": 0.1})
            for step in range(20):
                run.log_metric("loss", 1.0 / (1 + step * depth), step=step)
            run.log_metric("accuracy", 0.5 + depth / 20)
            ids.append(run.id)
    return ids


def test_the_runs_table_filters_sorts_and_compares(dashboard):
    server, project = dashboard
    ids = _tracked(project)
    page = _page(server, "/runs?experiment=toy&filter=" + quote("metrics.accuracy > 0.65"))
    assert "depth-4" in page and "depth-8" in page and "depth-2" not in page
    ordered = _page(server, "/runs?experiment=toy&order=" + quote("metrics.accuracy ASC"))
    assert ordered.index("depth-2") < ordered.index("depth-4") < ordered.index("depth-8")
    assert "accuracy ▲" in ordered  # the sorted column says so
    status, body = server.request("GET", "/runs?filter=" + quote("metrics.accuracy >>> 1"))
    assert status == 400 and b'role="alert"' in body and b"Traceback" not in body
    both = _page(server, f"/runs/compare?id={ids[0]}&id={ids[2]}")
    assert re.search(r'<tr class="differs"><th scope="row">parameter depth', both)
    assert re.search(r'<tr class=""><th scope="row">parameter lr', both)  # the same in both
    one = _page(server, f"/runs/{ids[1]}")
    assert "<svg" in one and "loss per step" in one and "depth</th><td>4</td>" in one


def test_the_monitoring_page_draws_each_check_and_the_drift_heat_map(replayed: Path):
    with tidal.Project(replayed) as project:
        server = LocalServer(project, app=create_ui(project))
        try:
            page = _page(server, "/deployments/live/monitoring?span=30d")
            alerts = [s for s in project.monitoring.states("live") if s.state == "alert"]
        finally:
            server.stop()
    assert alerts and "✖ alert" in page  # the Victoria columns' drift
    for state in alerts:
        assert f"<th scope=\"row\">{state.check}</th><td>{state.subject or '—'}</td>" in page
    # single-valued checks as lines with their thresholds, per-feature ones as a heat map
    assert "drift_share per window" in page and ">alert 0.5</text>" in page
    assert "drift per feature over time" in page
    for feature in ("feat_4", "feat_5", "feat_6"):
        assert re.search(rf"<title>{feature} [0-9-]+ [0-9:]+: [0-9.e+]+</title>", page)
    assert page.count("<svg") >= 3 and 'aria-current="true">last 30d' in page
    # one input's distribution: the reference's beside the latest window's, per bin
    assert 'aria-current="true">feat_1</a>' in page  # the first input by default
    with tidal.Project(replayed) as project:
        server = LocalServer(project, app=create_ui(project))
        try:
            shifted = _page(server, "/deployments/live/monitoring?feature=feat_6")
        finally:
            server.stop()
    assert "feat_6: reference vs the window ending" in shifted
    shares = {side: [float(v) for v in re.findall(
        rf"<title>{side} [^:]+: ([0-9.]+)%</title>", shifted)] for side in
        ("reference", "window")}
    assert len(shares["reference"]) == len(shares["window"]) >= 2
    assert sum(shares["reference"]) == pytest.approx(100, abs=1)
    assert shares["reference"] != shares["window"]  # feat_6 varies only after the shift


TOKEN = "admin-token-for-the-dashboard-tests"


def test_changes_need_the_admin_token_a_csrf_token_and_a_confirmation(dashboard,
                                                                      monkeypatch):
    import httpx

    from tidal.store.events import list_events

    monkeypatch.setenv("TIDAL_ADMIN_TOKEN", TOKEN)
    server, project = dashboard
    with httpx.Client(base_url=server.url) as browser:
        page = browser.get("/deployments/elec2").text
        assert "to roll back, promote or abort" in page and 'name="csrf"' not in page
        # no session: refused, nothing changed
        refused = browser.post("/deployments/elec2/promote",
                               data={"confirm": "yes", "csrf": "guess"})
        assert refused.status_code == 403
        assert project.get_deployment("elec2").canary_version == 2
        assert browser.post("/login", data={"token": "wrong"}).status_code == 403
        # a redirect after login stays on this site
        logged = browser.post("/login?next=//evil.example", data={"token": TOKEN})
        assert logged.status_code == 303 and logged.headers["location"] == "/"
        cookie = logged.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN not in cookie
        page = browser.get("/deployments/elec2").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        # a session without the form's CSRF token (another site's form): refused
        forged = browser.post("/deployments/elec2/promote", data={"confirm": "yes"})
        assert forged.status_code == 403
        unconfirmed = browser.post("/deployments/elec2/promote", data={"csrf": csrf})
        assert "tick the confirmation" in browser.get(unconfirmed.headers["location"]).text
        assert project.get_deployment("elec2").canary_version == 2
        done = browser.post("/deployments/elec2/promote", data={
            "csrf": csrf, "confirm": "yes", "reason": "looks good <b>to me</b>"})
        assert done.status_code == 303
        assert "✔ promote: done" in browser.get(done.headers["location"]).text
        assert project.get_deployment("elec2").stable_version == 2
        event = list_events(project.db, kind="rollout.promoted", newest_first=True)[0]
        assert (event.actor, event.reason) == ("dashboard", "looks good <b>to me</b>")
        browser.post("/deployments/elec2/rollback", data={"csrf": csrf, "confirm": "yes"})
        assert project.get_deployment("elec2").stable_version == 1
        # a mistake comes back as a message on the page, never a traceback
        again = browser.post("/deployments/elec2/abort", data={"csrf": csrf, "confirm": "yes"})
        assert "no rollout in progress" in browser.get(again.headers["location"]).text
        browser.post("/logout", data={"csrf": csrf})
        assert browser.post("/deployments/elec2/rollback", data={
            "csrf": csrf, "confirm": "yes"}).status_code == 403


def test_a_label_given_on_the_review_page_reaches_the_feedback_table(replayed: Path,
                                                                     tmp_path: Path,
                                                                     monkeypatch):
    import httpx

    monkeypatch.setenv("TIDAL_ADMIN_TOKEN", TOKEN)
    folder = tmp_path / "loop"
    shutil.copytree(replayed, folder)
    with tidal.Project(folder) as project:
        served = add_review_items(project, 2)
        labels_before = project.feedback.count("live")
        key = (served[0]["request_id"], served[0]["row"])
        truth = project.feedback.labels_for("live", [key[0]]).by_request[key][1]
        given = 1 - int(truth)  # the reviewer disagrees with the label that came back
        server = LocalServer(project, app=create_ui(project))
        try:
            with httpx.Client(base_url=server.url) as browser:
                queue = browser.get("/review/live").text
                assert "Waiting (2)" in queue and "to label items" in queue
                browser.post("/login", data={"token": TOKEN})
                csrf = re.search(r'name="csrf" value="([^"]+)"',
                                 browser.get("/review/live").text).group(1)
                claimed = browser.post("/review/live/next",
                                       data={"csrf": csrf, "reviewer": "ann"})
                item_page = browser.get(claimed.headers["location"]).text
                assert 'data-key="1"' in item_page and 'data-key="u"' in item_page
                assert "keys.js" in item_page
                first = int(re.search(r"/review/live/items/(\d+)/answer", item_page).group(1))
                answered = browser.post(f"/review/live/items/{first}/answer", data={
                    "csrf": csrf, "reviewer": "ann", "answer": str(given)})
                assert f"label {given}" in browser.get(answered.headers["location"]).text
                second = browser.post("/review/live/next", data={"csrf": csrf,
                                                                 "reviewer": "ann"})
                other = int(re.search(r"items/(\d+)", second.headers["location"]).group(1))
                browser.post(f"/review/live/items/{other}/answer", data={
                    "csrf": csrf, "reviewer": "ann", "answer": "unsure"})
                assert browser.get("/review/live").text.count("Waiting (0)") == 1
                assert browser.get("/static/keys.js").status_code == 200
        finally:
            server.stop()
        answers = {a["item"]: a for a in project.review.answers("live")}
        assert answers[first]["label"] == given and answers[other]["unsure"]
        assert project.feedback.count("live") == labels_before + 1  # the label, not unsure
        # the later label wins: the reviewer's is now the prediction's label
        assert project.feedback.labels_for("live", [key[0]]).by_request[key][1] == given


def test_the_schedules_page_shows_each_schedule_its_next_firing_and_failed_windows(
        trained_project: Path, tmp_path: Path):
    from tidal.batch.schedules import Schedules
    from tidal.core.clock import ManualClock

    folder = tmp_path / "project"
    shutil.copytree(trained_project, folder)
    with (folder / "tidal.toml").open("a") as config:
        config.write('\n[[schedules]]\nname = "hourly"\ndeployment = "elec2"\n'
                     'cron = "0 * * * *"\ninput = "incoming/{start:%H}.parquet"\n'
                     'output = "scored/{start:%H}.parquet"\ntimezone = "Europe/Paris"\n')
    clock = ManualClock(1_709_632_830.0)  # 2024-03-05 10:00:30 UTC
    project = tidal.Project(folder, clock=clock)
    project.set_deployment("elec2", "elec2:1")
    server = LocalServer(project, app=create_ui(project))
    try:
        empty = _page(server, "/schedules")
        assert "No window run yet." in empty and "1 window, from 2024-03-05 09:00" in empty
        # the 09:00 window's input never arrived: the window fails, with the reason shown
        Schedules(project, actor="test").run_due()
        page = _page(server, "/schedules")
        assert "2024-03-05 09:00 – 2024-03-05 10:00" in page and "✖ failed" in page
        # the error names the missing file: 09:00 UTC is 10:00 on the schedule's clocks
        assert "incoming/10.parquet" in page and "on Europe/Paris clocks" in page
        assert "next firing 2024-03-05 11:00" in page and "Due now</dt><dd>none" in page
        assert '<a href="/deployments/elec2">elec2</a>' in page
        assert '<a href="/schedules" aria-current="page">Schedules</a>' in page
    finally:
        server.stop()
        project.close()


def test_the_schedules_page_says_how_to_add_one(dashboard):
    server, _ = dashboard
    assert "add a <code>[[schedules]]</code> entry" in _page(server, "/schedules")
