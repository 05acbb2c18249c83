"""The rollout timeline in real headless Chromium against a real ``liubai serve`` over the scenario store.

The release commit's audit trail holds its pipeline run, the webhook's admissions, its ReplicaSets and
Pods, a watched container's processes, spans and over a thousand log lines (tests/browser/scenario.py).
Each test reads the drawn SVG (its marks' ``data-*`` and ``<title>``) and checks it against the API's
``auditTrail`` asked directly.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from tests.browser.harness import Ui, css_escape
from tests.browser.scenario import POD_LOGS, SCENARIO, XSS_IMG, XSS_SCRIPT

pytestmark = pytest.mark.browser

S = SCENARIO
# The lanes a rollout needs, in the order the flow runs (other kinds may sit between them).
ROLLOUT_FLOW = [
    "Commit",
    "AuditRecord",
    "Admission",
    "Workload",
    "Pod",
    "Container",
    "PipelineRun",
    "Process",
    "Span",
    "LogEvent",
]
TRAIL = "query($id: ID!) { auditTrail(id: $id) { time node { id kind label } } }"


def api_trail(ui: Ui, node: str) -> list[dict[str, Any]]:
    trail: list[dict[str, Any]] = ui.gql(TRAIL, {"id": node})["auditTrail"]
    return trail


def open_timeline(ui: Ui, node: str) -> None:
    ui.open(f"#node={node}&depth=2&direction=downstream")
    ui.wait_ready()
    ui.page.wait_for_function(
        "id => document.getElementById('details').dataset.nodeId === id", arg=node, timeout=10_000
    )
    assert ui.page.locator("#timeline").is_hidden()
    assert ui.page.is_enabled("#btn-timeline")
    ui.page.click("#btn-timeline")
    ui.page.wait_for_function(
        "id => { const s = document.getElementById('timeline');"
        " return s.dataset.nodeId === id && ['ready', 'error'].includes(s.dataset.state); }",
        arg=node,
    )
    assert ui.page.get_attribute("#timeline", "data-state") == "ready"


def marks(ui: Ui) -> list[dict[str, Any]]:
    """Every drawn mark and bucket: its lane, kind, count, times (ms) and x."""
    found: list[dict[str, Any]] = ui.page.eval_on_selector_all(
        "#timeline-chart .tl-mark, #timeline-chart .tl-bucket",
        """els => els.map(e => ({
            bucket: e.classList.contains('tl-bucket'),
            lane: e.closest('.tl-lane').dataset.kind,
            kind: e.dataset.kind,
            id: e.dataset.nodeId || null,
            count: Number(e.dataset.count || 1),
            from: Number(e.dataset.fromMs ?? e.dataset.ms),
            to: Number(e.dataset.toMs ?? e.dataset.ms),
            x: Number(e.dataset.x),
            xAttr: e.dataset.x,
            x2: Number(e.dataset.x2 ?? e.dataset.x),
            title: e.querySelector('title').textContent,
            text: e.querySelector('text')?.textContent ?? null,
        }))""",
    )
    return found


def ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def assert_x_monotone_in_time(drawn: list[dict[str, Any]]) -> None:
    points = sorted({(m["from"], m["x"]) for m in drawn} | {(m["to"], m["x2"]) for m in drawn})
    assert len(points) > 1
    for (t_a, x_a), (t_b, x_b) in zip(points, points[1:], strict=False):
        assert x_a <= x_b + 1e-6, f"x goes back in time: {t_a}->{x_a}, {t_b}->{x_b}"
        if t_a < t_b:
            assert x_a < x_b + 1e-6


def test_a_commits_timeline_has_its_rollout_in_flow_order_with_the_apis_counts(ui: Ui) -> None:
    open_timeline(ui, S.release_commit)
    trail = api_trail(ui, S.release_commit)
    timed = Counter(t["node"]["kind"] for t in trail if t["time"])
    untimed = [t for t in trail if not t["time"]]

    lanes = (ui.page.get_attribute("#timeline", "data-lanes") or "").split(",")
    assert set(lanes) == set(timed)
    assert set(ROLLOUT_FLOW) <= set(lanes), set(ROLLOUT_FLOW) - set(lanes)
    assert [k for k in lanes if k in ROLLOUT_FLOW] == ROLLOUT_FLOW
    drawn_lanes = ui.page.eval_on_selector_all(
        "#timeline-chart .tl-lane", "ls => ls.map(l => [l.dataset.kind, l.getBoundingClientRect().y])"
    )
    assert [k for k, _ in drawn_lanes] == lanes
    assert [y for _, y in drawn_lanes] == sorted(y for _, y in drawn_lanes), "one lane under the other"

    drawn = marks(ui)
    per_lane = Counter()
    for m in drawn:
        assert m["lane"] == m["kind"]
        per_lane[m["kind"]] += m["count"]
    assert per_lane == timed, "every timed entry is drawn once, alone or in a bucket"
    listed = dict(
        ui.page.eval_on_selector_all(
            "#timeline-chart .tl-lane",
            "ls => ls.map(l => [l.dataset.kind, Number(l.querySelector('.tl-lane-count').textContent)])",
        )
    )
    assert listed == timed, "each lane says how many entries it holds"
    summary_text = ui.page.locator("#timeline-summary").text_content() or ""
    assert (
        f"{timed['LogEvent']} log events" in summary_text
        and f"{timed['Admission']} admissions" in summary_text
    )
    assert int(ui.page.get_attribute("#timeline", "data-marks") or 0) == len(drawn)
    assert int(ui.page.get_attribute("#timeline", "data-entries") or 0) == len(trail)

    # Entries with no time are counted and listed, not dropped.
    assert untimed, "the scenario's files and unwatched containers have no time"
    assert int(ui.page.get_attribute("#timeline", "data-untimed") or -1) == len(untimed)
    summary = ui.page.locator("#timeline-untimed summary").text_content() or ""
    assert f"no time: {len(untimed)}" in summary
    ui.page.click("#timeline-untimed summary")
    listed_untimed = ui.page.eval_on_selector_all(
        "#timeline-untimed li button", "bs => bs.map(b => b.dataset.nodeId)"
    )
    assert listed_untimed == [t["node"]["id"] for t in untimed][: len(listed_untimed)]
    assert {t["node"]["kind"] for t in untimed} == {"File", "Container"}

    # x follows time, and the marks sit where their own times say.
    assert_x_monotone_in_time(drawn)
    by_id = {t["node"]["id"]: t["time"] for t in trail}
    for m in drawn:
        if m["id"]:
            assert m["from"] == pytest.approx(ms(by_id[m["id"]]), abs=0.01)
            assert by_id[m["id"]] in m["title"]
    # The span reads in the panel: the first and last time of the trail.
    times = sorted((t["time"] for t in trail if t["time"]), key=ms)
    text = ui.page.locator("#timeline-summary").text_content() or ""
    assert times[0] in text and times[-1] in text
    ticks = ui.page.eval_on_selector_all("#timeline-chart .tl-tick-label", "ts => ts.map(t => t.textContent)")
    assert len(ticks) >= 3 and all(t for t in ticks)
    assert "UTC" in (ui.page.locator("#timeline-chart .tl-axis-title").text_content() or "")

    # A thousand log lines stay readable: a few counted buckets, one of them saying what it holds.
    logs = [m for m in drawn if m["kind"] == "LogEvent"]
    assert timed["LogEvent"] >= POD_LOGS and len(logs) <= 20
    biggest = max(logs, key=lambda m: m["count"])
    assert biggest["count"] >= POD_LOGS // 2
    assert f"{biggest['count']} log events" in biggest["title"]
    assert biggest["text"] == f"{biggest['count']} log events"
    ui.screenshot("timeline-commit")
    ui.assert_clean()


def test_clicking_a_mark_selects_its_node_and_a_bucket_lists_and_zooms(ui: Ui) -> None:
    open_timeline(ui, S.release_commit)
    run = ui.page.locator(f'#timeline-chart .tl-mark[data-node-id="{css_escape(S.release_run)}"]')
    assert run.count() == 1, "the run is a mark of its own"
    run.click()
    ui.page.wait_for_function(
        "id => document.getElementById('details').dataset.nodeId === id", arg=S.release_run
    )
    assert ui.attr("selected") == S.release_run
    assert "make" in (ui.page.locator("#details-label").text_content() or "")

    # The three admissions, a second apart, share a bucket; it lists them and zooms in on them.
    trail = api_trail(ui, S.release_commit)
    admissions = [t["node"]["id"] for t in trail if t["node"]["kind"] == "Admission"]
    assert sorted(admissions) == sorted(S.admissions)
    bucket = ui.page.locator('#timeline-chart .tl-bucket[data-kind="Admission"]')
    assert bucket.count() == 1 and bucket.get_attribute("data-count") == "3"
    bucket.click()
    members = ui.page.eval_on_selector_all(
        "#timeline-bucket li button", "bs => bs.map(b => b.dataset.nodeId)"
    )
    assert members == admissions, "listed in time order"
    assert ui.page.is_hidden("#btn-timeline-reset"), "nothing to reset before a zoom"
    ui.page.click("#btn-timeline-zoom")
    ui.page.wait_for_function("() => document.getElementById('timeline').dataset.zoomed === 'true'")
    assert ui.page.is_visible("#btn-timeline-reset")
    singles = ui.page.locator('#timeline-chart .tl-mark[data-kind="Admission"]')
    assert singles.count() == 3
    assert_x_monotone_in_time(marks(ui))
    span = ui.page.locator("#timeline-chart svg")
    lo, hi = float(span.get_attribute("data-from-ms") or 0), float(span.get_attribute("data-to-ms") or 0)
    assert all(lo <= m["from"] and m["to"] <= hi for m in marks(ui)), "nothing drawn outside the window"
    ui.page.locator(f'#timeline-chart .tl-mark[data-node-id="{admissions[1]}"]').click()
    ui.page.wait_for_function(
        "id => document.getElementById('details').dataset.nodeId === id", arg=admissions[1]
    )
    assert ui.page.locator('#details-props tr[data-key="decision"] td').text_content() == "patched"
    ui.screenshot("timeline-zoomed")

    ui.page.click("#btn-timeline-reset")
    ui.page.wait_for_function("() => document.getElementById('timeline').dataset.zoomed === 'false'")
    assert ui.page.is_hidden("#btn-timeline-reset")
    assert ui.page.locator('#timeline-chart .tl-bucket[data-kind="Admission"]').count() == 1
    ui.page.click("#btn-timeline-close")
    assert ui.page.locator("#timeline").is_hidden()
    ui.assert_clean()


def test_a_pods_timeline_reaches_its_deployment_and_what_it_ran_and_emitted(ui: Ui) -> None:
    pod = S.pods[0]
    open_timeline(ui, pod)
    lanes = (ui.page.get_attribute("#timeline", "data-lanes") or "").split(",")
    for kind in ("Commit", "Admission", "Workload", "Pod", "Container", "Process", "Span", "LogEvent"):
        assert kind in lanes, kind
    trail = api_trail(ui, pod)
    assert sum(m["count"] for m in marks(ui)) == sum(1 for t in trail if t["time"])
    # A Pod sits at its creation, before its container started, not when the collector listed it.
    times = {t["node"]["id"]: t["time"] for t in trail}
    pod_mark = ui.page.locator(f'#timeline-chart .tl-mark[data-node-id="{pod}"]')
    assert pod_mark.get_attribute("data-time") == times[pod]
    assert ms(times[pod]) < ms(times[S.pod_process])
    assert ui.page.get_attribute("#timeline", "data-untimed") == "0"
    assert ui.page.locator("#timeline-untimed").is_hidden()
    # A process has no timeline of its own: picking it turns the button off.
    ui.page.locator(f'#timeline-chart .tl-mark[data-node-id="{S.pod_process}"]').click()
    ui.page.wait_for_function(
        "id => document.getElementById('details').dataset.nodeId === id", arg=S.pod_process
    )
    assert ui.page.is_disabled("#btn-timeline")
    ui.assert_clean()


def test_hostile_labels_in_the_timeline_render_as_literal_text(ui: Ui) -> None:
    open_timeline(ui, S.release_commit)
    assert XSS_IMG in (ui.page.locator("#timeline-title").text_content() or "")
    commit = ui.page.locator(f'#timeline-chart .tl-mark[data-node-id="{S.release_commit}"]')
    assert XSS_IMG in (commit.locator("title").text_content() or "")
    assert XSS_IMG in (commit.get_attribute("aria-label") or "")
    # The release's five log lines, a second apart, share a bucket; its list shows the hostile one as text.
    trail = api_trail(ui, S.release_commit)
    hostile_ms = ms(next(t["time"] for t in trail if t["node"]["id"] == S.hostile_log))
    holding = [m for m in marks(ui) if m["kind"] == "LogEvent" and m["from"] <= hostile_ms <= m["to"]]
    assert len(holding) == 1 and holding[0]["bucket"] and holding[0]["count"] == 5, holding
    ui.page.locator(
        f'#timeline-chart .tl-bucket[data-kind="LogEvent"][data-x="{holding[0]["xAttr"]}"]'
    ).click()
    item = ui.page.locator(f'#timeline-bucket button[data-node-id="{css_escape(S.hostile_log)}"]')
    assert XSS_IMG in (item.text_content() or "") and XSS_SCRIPT in (item.text_content() or "")
    item.click()
    ui.page.wait_for_function(
        "id => document.getElementById('details').dataset.nodeId === id", arg=S.hostile_log
    )
    assert ui.page.locator('img[src="x"]').count() == 0
    assert ui.page.locator("#timeline script, #timeline img").count() == 0
    assert ui.page.evaluate("() => document.querySelectorAll('[onerror]').length") == 0
    assert ui.page.locator("script").count() == 1
    ui.screenshot("timeline-hostile")
    ui.assert_clean()
