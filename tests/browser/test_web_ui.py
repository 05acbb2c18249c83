"""The web UI in real headless Chromium against a real ``liubai serve``.

Each test drives the page the way a person does (typing, keys, clicks on the canvas, reloads) and checks
what it shows against the GraphQL API asked directly. Every test also requires a clean page: no dialog,
no uncaught error and no console error (a CSP violation is a console error).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from tests.browser.harness import Ui, css_escape
from tests.browser.scenario import (
    BULK_FILES_EACH,
    BULK_PROCESSES,
    FANOUT_FILES,
    RELEASE_SHA,
    SCENARIO,
    XSS_IMG,
    XSS_SCRIPT,
)

pytestmark = pytest.mark.browser

S = SCENARIO

LINEAGE_IDS = """query($id: ID!, $dir: Direction!, $depth: Int!) {
  lineage(from: $id, direction: $dir, depth: $depth) { nodes { id } edges { source target kind } truncated } }"""


def api_lineage(ui: Ui, node: str, direction: str, depth: int) -> set[str]:
    data = ui.gql(LINEAGE_IDS, {"id": node, "dir": direction, "depth": depth})["lineage"]
    assert not data["truncated"]
    return {n["id"] for n in data["nodes"]}


def permalink(node: str, depth: int = 2, direction: str = "downstream") -> str:
    return f"#node={node}&depth={depth}&direction={direction}"


def drawn_ids(ui: Ui) -> list[str]:
    ids: list[str] = ui.page.eval_on_selector_all(
        "#node-list [data-node-id]", "els => els.map(e => e.dataset.nodeId)"
    )
    return ids


def wait_drawn(ui: Ui, n: int) -> None:
    """Wait until the model holds ``n`` nodes and the node list beside the canvas (refreshed after the
    layout settles) shows them all."""
    ui.page.wait_for_function(
        """n => document.getElementById('graph').dataset.state === 'ready'
            && Number(document.getElementById('graph').dataset.nodeCount) === n
            && document.querySelectorAll('#node-list [data-node-id]').length === n""",
        arg=n,
    )


def wait_reload(ui: Ui, action: Any) -> None:
    """Run an action that reloads the graph and wait until the new view is drawn."""
    ui.page.evaluate("() => { document.getElementById('graph').dataset.state = 'stale'; }")
    action()
    ui.page.wait_for_function("() => document.getElementById('graph').dataset.state !== 'stale'")
    ui.wait_ready()


def wait_details(ui: Ui, node_id: str) -> None:
    ui.page.wait_for_function(
        "id => document.getElementById('details').dataset.nodeId === id", arg=node_id, timeout=10_000
    )


def test_search_a_commit_by_sha_prefix_shows_its_workloads_and_runs(ui: Ui) -> None:
    ui.open()
    assert ui.attr("state") == "empty"
    box = ui.page.locator("#search-input")
    box.fill(RELEASE_SHA[:8])
    option = ui.page.locator(f'#search-results [role="option"][data-node-id="{S.release_commit}"]')
    option.wait_for()
    # Results are grouped by kind: the commit sits under the Commit heading.
    heading = ui.page.locator('#search-results .search-group[data-kind="Commit"]')
    assert heading.count() == 1
    assert option.get_attribute("aria-selected") == "true", "the first result is active for Enter"
    wait_reload(ui, lambda: box.press("Enter"))

    assert ui.attr("root") == S.release_commit
    assert f"node={S.release_commit}" in unquote(ui.page.url)
    expected = api_lineage(ui, S.release_commit, "DOWNSTREAM", 2)
    assert ui.count() == len(expected)
    drawn = set(drawn_ids(ui))
    for must in (*S.workloads, S.release_run):
        assert must in expected, must
        assert must in drawn, f"{must} not drawn"
    ui.page.wait_for_function(
        "id => document.getElementById('details').dataset.nodeId === id", arg=S.release_commit
    )
    ui.screenshot("search-commit")
    ui.assert_clean()


def test_search_is_keyboard_driven_and_grouped_by_kind(ui: Ui) -> None:
    ui.open()
    box = ui.page.locator("#search-input")
    box.fill("prod")
    ui.page.locator('#search-results [role="option"]').first.wait_for()
    options = ui.page.locator('#search-results [role="option"]')
    kinds = [options.nth(i).get_attribute("data-kind") for i in range(options.count())]
    assert "Workload" in kinds
    # Grouped: all results of one kind are contiguous.
    assert kinds == sorted(kinds, key=kinds.index), kinds
    box.press("ArrowDown")
    active = ui.page.locator('#search-results [aria-selected="true"]')
    assert active.count() == 1
    picked = active.get_attribute("data-node-id")
    assert picked == options.nth(1 % options.count()).get_attribute("data-node-id")
    assert box.get_attribute("aria-activedescendant") == active.get_attribute("id")
    wait_reload(ui, lambda: box.press("Enter"))
    assert ui.attr("root") == picked
    assert ui.page.locator("#search-results").is_hidden()
    ui.assert_clean()


def test_click_a_node_on_the_canvas_shows_all_its_properties(ui: Ui) -> None:
    ui.open(permalink(S.release_commit))
    ui.wait_ready()
    ui.click_node(S.release_run)
    wait_details(ui, S.release_run)
    props = ui.gql("query($id: ID!) { node(id: $id) { properties } }", {"id": S.release_run})["node"][
        "properties"
    ]
    shown = ui.page.eval_on_selector_all("#details-props tr", "rows => rows.map(r => r.dataset.key)")
    assert set(props) <= set(shown), set(props) - set(shown)
    command = ui.page.locator('#details-props tr[data-key="command"] td').text_content() or ""
    assert "make" in command and "release" in command
    assert ui.page.locator('#details-props tr[data-key="exit_code"] td').text_content() == "0"
    assert ui.attr("selected") == S.release_run
    ui.screenshot("details")
    ui.assert_clean()


@pytest.mark.parametrize("direction", ["DOWNSTREAM", "BOTH"])
def test_changing_depth_changes_the_node_count_as_the_api_says(ui: Ui, direction: str) -> None:
    ui.open(permalink(S.release_commit, 2, direction.lower()))
    ui.wait_ready()
    counts = {}
    depth_box = ui.page.locator("#depth")
    for depth in (1, 3, 2):
        wait_reload(ui, lambda d=depth: (depth_box.fill(str(d)), depth_box.dispatch_event("change")))
        counts[depth] = ui.count()
        assert counts[depth] == len(api_lineage(ui, S.release_commit, direction, depth)), f"depth {depth}"
        assert f"depth={depth}" in ui.page.url
    assert counts[1] < counts[2] < counts[3]
    ui.assert_clean()


def test_path_from_a_log_line_to_its_commit_is_highlighted_and_survives_reload(ui: Ui) -> None:
    ui.open(permalink(S.error_log, 3, "upstream"))
    ui.wait_ready()
    assert S.release_commit in drawn_ids(ui)
    # One end by shift-click on the canvas, the other through the details panel.
    ui.click_node(S.error_log, shift=True)
    ui.page.wait_for_function(
        "id => document.getElementById('path-from').textContent === id", arg=S.error_log
    )
    ui.click_node(S.release_commit)
    wait_details(ui, S.release_commit)
    ui.page.click("#btn-to")
    ui.page.click("#btn-path")
    path = ui.gql(
        "query($a: ID!, $b: ID!) { path(from: $a, to: $b) { nodes { id } } }",
        {"a": S.error_log, "b": S.release_commit},
    )["path"]
    expected = [n["id"] for n in path["nodes"]]
    assert expected[0] == S.error_log and expected[-1] == S.release_commit
    ui.page.wait_for_function(
        "n => document.getElementById('graph').dataset.pathLength === String(n) && "
        "document.getElementById('graph').dataset.state === 'ready'",
        arg=len(expected),
    )
    listed = ui.page.eval_on_selector_all("#path-list li", "els => els.map(e => e.dataset.nodeId)")
    assert listed == expected
    ui.screenshot("path")

    ui.page.reload()
    ui.wait_ready()
    assert ui.count("path-length") == len(expected)
    assert ui.page.eval_on_selector_all("#path-list li", "els => els.map(e => e.dataset.nodeId)") == expected
    ui.assert_clean()


def test_permalink_reload_restores_node_depth_direction_and_selection(ui: Ui) -> None:
    ui.open(permalink(S.release_commit, 1))
    ui.wait_ready()
    wait_reload(ui, lambda: ui.page.select_option("#direction", "BOTH"))
    wait_reload(ui, lambda: (ui.page.fill("#depth", "3"), ui.page.dispatch_event("#depth", "change")))
    ui.click_node(S.workloads[0])
    wait_details(ui, S.workloads[0])
    before = (ui.count(), ui.count("visible-node-count"))
    url = ui.page.url
    assert "direction=both" in url and "depth=3" in url and "sel=" in url

    ui.page.reload()
    ui.wait_ready()
    wait_details(ui, S.workloads[0])
    assert ui.page.url == url
    assert ui.page.input_value("#depth") == "3"
    assert ui.page.input_value("#direction") == "BOTH"
    assert ui.attr("root") == S.release_commit
    assert (ui.count(), ui.count("visible-node-count")) == before
    assert before[0] == len(api_lineage(ui, S.release_commit, "BOTH", 3))
    ui.assert_clean()


def test_large_fan_out_is_grouped_and_opens_and_collapses(ui: Ui) -> None:
    # The fan-out process is in view (a link's selection is drawn), its 801 files one aggregate.
    ui.open(permalink(S.release_commit, 3) + f"&sel={quote(S.fanout_process, safe='')}")
    ui.wait_ready()
    total = ui.count()
    assert total == len(api_lineage(ui, S.release_commit, "DOWNSTREAM", 3))
    group = f"group:{S.fanout_process}::File"
    ui.page.locator(f'#node-list [data-node-id="{css_escape(group)}"]').wait_for()
    label = ui.page.locator(f'#node-list [data-node-id="{css_escape(group)}"]').text_content() or ""
    assert re.fullmatch(rf"\+{FANOUT_FILES + 1} files", label.strip()), label  # 800 read + 1 written
    grouped_visible, groups = ui.count("visible-node-count"), ui.count("group-count")
    assert grouped_visible < 80
    ui.screenshot("fanout-grouped")

    x, y = ui.node_point(group)
    wait_reload(ui, lambda: ui.page.mouse.dblclick(x, y))
    assert group not in drawn_ids(ui) and ui.count("group-count") <= groups - 1
    assert ui.count("visible-node-count") >= grouped_visible - 1 + FANOUT_FILES + 1
    assert ui.count() == total

    ui.page.locator(f'#node-list [data-node-id="{css_escape(S.fanout_process)}"]').click()
    wait_details(ui, S.fanout_process)
    wait_reload(ui, lambda: ui.page.click("#btn-collapse"))
    assert group in drawn_ids(ui)
    assert ui.count("visible-node-count") == grouped_visible and ui.count("group-count") == groups
    ui.assert_clean()


def test_double_click_expands_neighbours_and_collapse_removes_them(ui: Ui) -> None:
    ui.open(permalink(S.release_commit, 1))
    ui.wait_ready()
    before = set(drawn_ids(ui))
    assert S.release_run in before and S.fanout_process not in before
    neighbours = ui.gql(
        "query($id: ID!) { neighbors(id: $id, first: 500) { nodes { id } } }", {"id": S.release_run}
    )["neighbors"]["nodes"]
    expected_new = {n["id"] for n in neighbours} - before
    assert expected_new, "the run has neighbours beyond depth 1"
    x, y = ui.node_point(S.release_run)
    ui.page.mouse.dblclick(x, y)
    wait_drawn(ui, len(before) + len(expected_new))
    after = set(drawn_ids(ui))
    assert expected_new <= after

    ui.click_node(S.release_run)
    wait_details(ui, S.release_run)
    ui.page.click("#btn-collapse")
    wait_drawn(ui, len(before))
    assert set(drawn_ids(ui)) == before
    ui.assert_clean()


def test_audit_trail_lists_everything_in_time_order_marks_privilege_and_exports(ui: Ui) -> None:
    ui.open(permalink(S.release_commit))
    ui.wait_ready()
    wait_details(ui, S.release_commit)
    ui.page.click("#btn-trail")
    ui.page.wait_for_function("() => document.getElementById('trail').dataset.state === 'ready'")
    trail = ui.gql("query($id: ID!) { auditTrail(id: $id) { time node { id } } }", {"id": S.release_commit})[
        "auditTrail"
    ]
    rows = ui.page.eval_on_selector_all("#trail-table tbody tr", "rs => rs.map(r => r.dataset.nodeId)")
    assert rows == [t["node"]["id"] for t in trail]
    times = [
        t
        for t in ui.page.eval_on_selector_all(
            "#trail-table tbody tr td:first-child", "cs => cs.map(c => c.textContent)"
        )
        if t
    ]
    assert times == sorted(times)
    for must in (S.release_commit, S.release_run, S.error_log, *S.workloads):
        assert must in rows, must
    privileged = ui.page.locator(f'#trail-table tr[data-node-id="{css_escape(S.privileged_process)}"]')
    assert "privilege" in (privileged.get_attribute("class") or "")
    assert "privilege change" in (privileged.locator("td").last.text_content() or "")
    others = ui.page.locator("#trail-table tr.privilege")
    assert others.count() == 1, "only the sudo process changed uid"
    ui.screenshot("audit-trail")

    href = ui.page.locator("#trail-export").get_attribute("href") or ""
    assert href.startswith("export?")
    with ui.page.expect_download() as download_info:
        ui.page.click("#trail-export")
    download = download_info.value
    body = Path(download.path()).read_text()
    assert S.release_commit in body and S.release_run in body
    direct = httpx.get(f"{ui.base}/{href}", timeout=30)
    assert direct.status_code == 200 and direct.headers["content-type"].startswith("application/json")
    ui.assert_clean()


def test_two_thousand_node_lineage_renders_and_stays_interactive(
    ui: Ui, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = api_lineage(ui, S.bulk_commit, "DOWNSTREAM", 3)
    assert len(expected) >= 2 + BULK_PROCESSES * (1 + BULK_FILES_EACH)
    # Baseline in the same run: a small lineage (about 15 nodes) on the same page and machine.
    ui.open(permalink(S.release_commit, 2))
    ui.wait_ready()
    small_nodes, small_ms = ui.count(), int(ui.attr("render-ms"))
    started = time.perf_counter()
    ui.open(permalink(S.bulk_commit, 3))
    ui.wait_ready(timeout=60_000)
    wall_ms = (time.perf_counter() - started) * 1000
    assert ui.count() == len(expected)
    page_ms = int(ui.attr("render-ms"))
    # The first view is a summary: the 40 processes (and the 1,960 files below them) are one aggregate.
    group = next(i for i in drawn_ids(ui) if i.startswith("group:") and i.endswith("::Process"))
    assert ui.count("visible-node-count") < 20
    x, y = ui.node_point(group)
    wait_reload(ui, lambda: ui.page.mouse.dblclick(x, y))
    drawn = drawn_ids(ui)
    assert len([i for i in drawn if i.startswith("proc:")]) == BULK_PROCESSES
    # Each process's 49 files are now an aggregate of their own, one column beside the processes.
    assert len([i for i in drawn if i.startswith("group:proc:") and i.endswith("::File")]) == BULK_PROCESSES

    process = next(i for i in drawn if i.startswith("proc:"))
    # Zoomed out to fit 40 processes and their aggregates: zoom in on one with the wheel first.
    zoom_before = float(ui.attr("zoom"))
    x, y = ui.node_point(process)
    t0 = time.perf_counter()
    ui.page.mouse.move(x, y)
    for _ in range(40):  # a few turns of the wheel; Cytoscape zooms a few percent per event
        ui.page.mouse.wheel(0, -120)
    ui.page.wait_for_function(
        "z => Number(document.getElementById('graph').dataset.zoom) > z * 3", arg=zoom_before
    )
    zoom_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    ui.click_node(process)
    wait_details(ui, process)
    click_ms = (time.perf_counter() - t0) * 1000
    ui.screenshot("lineage-2000")
    report = (
        f"2,000-node lineage: {len(expected)} nodes; first render {page_ms} ms in page "
        f"(fetch {ui.attr('fetch-ms')} ms), {wall_ms:.0f} ms from navigation; click->details {click_ms:.0f} ms; "
        f"40 wheel steps->redraw {zoom_ms:.0f} ms; baseline {small_nodes}-node lineage {small_ms} ms "
        f"(ratio {page_ms / max(small_ms, 1):.1f}x)"
    )
    with capsys.disabled():
        print(f"\n{report}")
    (Path(__file__).resolve().parent.parent / "artifacts").mkdir(exist_ok=True)
    (Path(__file__).resolve().parent.parent / "artifacts" / "web-timings.txt").write_text(report + "\n")
    ui.assert_clean()


def test_hostile_strings_render_as_literal_text_and_never_run(ui: Ui) -> None:
    response = ui.open(permalink(S.release_commit, 3))
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    ui.wait_ready()
    wait_details(ui, S.release_commit)
    message = ui.page.locator('#details-props tr[data-key="message"] td').text_content() or ""
    assert XSS_IMG in message and XSS_SCRIPT in message
    assert XSS_IMG in (ui.page.locator("#details-label").text_content() or "")

    for node_id, key, needle in (
        (S.hostile_file, "path", XSS_IMG),
        (S.hostile_log, "message", XSS_SCRIPT),
        ("proc:ci-runner-7:4101:1000100", "argv", XSS_SCRIPT),
    ):
        # A link's selection is drawn whatever the level of detail folds: its label shows in the list too.
        ui.page.goto("about:blank")
        ui.open(permalink(S.release_commit, 3) + f"&sel={quote(node_id, safe='')}")
        ui.wait_ready()
        item = ui.page.locator(f'#node-list [data-node-id="{css_escape(node_id)}"]')
        item.wait_for()
        item.click()
        wait_details(ui, node_id)
        assert needle in (ui.page.locator(f'#details-props tr[data-key="{key}"] td').text_content() or "")

    box = ui.page.locator("#search-input")
    box.fill("onerror")
    ui.page.locator('#search-results [role="option"]').first.wait_for()
    labels = ui.page.eval_on_selector_all("#search-results .search-label", "ls => ls.map(l => l.textContent)")
    assert any(XSS_IMG in label for label in labels), labels
    box.press("Escape")

    ui.page.click(f'#node-list [data-node-id="{css_escape(S.release_commit)}"]')
    wait_details(ui, S.release_commit)
    ui.page.click("#btn-trail")
    ui.page.wait_for_function("() => document.getElementById('trail').dataset.state === 'ready'")
    assert XSS_SCRIPT in (ui.page.locator("#trail-table").text_content() or "")

    # Nothing hostile became markup anywhere in the page.
    assert ui.page.locator('img[src="x"]').count() == 0
    assert ui.page.locator("script").count() == 1, "only the page's own module script"
    assert ui.page.locator("script").get_attribute("src") == "js/main.js"
    assert ui.page.evaluate("() => document.querySelectorAll('[onerror]').length") == 0
    ui.screenshot("hostile-text")
    time.sleep(0.3)  # a script that did sneak in would have fired by now
    ui.assert_clean()


def test_unknown_node_in_a_permalink_says_so_in_one_line(ui: Ui) -> None:
    ui.open(permalink("commit:" + "ab" * 20))
    ui.page.wait_for_function("() => document.getElementById('graph').dataset.state === 'error'")
    status = ui.page.locator("#status")
    assert status.get_attribute("data-kind") == "error"
    text = status.text_content() or ""
    assert "abab" in text and "\n" not in text
    assert ui.count("visible-node-count") == 0
    # The rest of the page still works: a search from here loads a real lineage.
    ui.page.fill("#search-input", RELEASE_SHA[:10])
    ui.page.locator(f'#search-results [data-node-id="{S.release_commit}"]').wait_for()
    wait_reload(ui, lambda: ui.page.press("#search-input", "Enter"))
    assert ui.attr("root") == S.release_commit
    assert not [e for e in ui.page_errors]
    # The failed lineage request is a GraphQL error answered with 200, so nothing reaches the console.
    ui.assert_clean()


def test_kind_filters_hide_kinds_without_refetching_and_stick_in_the_url(ui: Ui) -> None:
    ui.open(permalink(S.release_commit, 2))
    ui.wait_ready()
    total = ui.count()
    logs = "#node-list [data-kind='LogEvent']"  # log lines drawn one by one, or an aggregate of them
    assert ui.page.locator(logs).count(), "the release lineage has log lines at depth 2"
    ui.page.uncheck('#kind-filters input[data-kind="LogEvent"]')
    ui.page.wait_for_function(f'() => document.querySelectorAll("{logs}").length === 0')
    ui.wait_ready()
    shown = ui.count("visible-node-count")
    assert ui.count() == total, "filtering hides, it does not change what was fetched"
    assert "hide=LogEvent" in ui.page.url
    ui.page.reload()
    ui.wait_ready()
    assert not ui.page.is_checked('#kind-filters input[data-kind="LogEvent"]')
    assert ui.count("visible-node-count") == shown
    assert ui.page.locator(logs).count() == 0
    ui.assert_clean()


def test_a_hand_written_query_string_link_opens_that_view(ui: Ui) -> None:
    ui.open(f"?node={S.workloads[1]}&depth=1&dir=upstream")
    ui.wait_ready()
    assert ui.attr("root") == S.workloads[1]
    assert ui.page.input_value("#direction") == "UPSTREAM"
    assert ui.count() == len(api_lineage(ui, S.workloads[1], "UPSTREAM", 1))
    assert "#node=" in ui.page.url and "direction=upstream" in ui.page.url
    ui.assert_clean()


def test_a_permalink_may_name_a_commit_by_sha_prefix(ui: Ui) -> None:
    ui.open(f"#node={RELEASE_SHA[:10]}&depth=2")
    ui.wait_ready()
    assert ui.attr("root") == S.release_commit
    assert f"node={S.release_commit}" in unquote(ui.page.url), "the URL now names the full node id"
    assert ui.count() == len(api_lineage(ui, S.release_commit, "DOWNSTREAM", 2))
    wait_details(ui, S.release_commit)
    ui.assert_clean()


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("4bf92f3577b34da6a3ce929d0e0e4736", "trace:4bf92f3577b34da6a3ce929d0e0e4736", "Trace"),
        (SCENARIO.release_audit.removeprefix("audit:"), SCENARIO.release_audit, "AuditRecord"),
        ("worker", "workload:Deployment/prod/worker", "Workload"),
        ("/src/app/pkg/module_042.py", "file:ci-runner-7:/src/app/pkg/module_042.py", "File"),
        ("sudo", SCENARIO.privileged_process, "Process"),
    ],
)
def test_search_finds_each_kind_of_thing_people_look_up(ui: Ui, text: str, expected: str, kind: str) -> None:
    ui.open()
    ui.page.fill("#search-input", text)
    option = ui.page.locator(f'#search-results [role="option"][data-node-id="{css_escape(expected)}"]')
    option.wait_for()
    assert option.get_attribute("data-kind") == kind
    # The option sits in its kind's group: the nearest heading above it names the same kind.
    heading_kind = option.evaluate(
        "o => { let e = o.previousElementSibling; while (e && !e.classList.contains('search-group'))"
        " e = e.previousElementSibling; return e && e.dataset.kind; }"
    )
    assert heading_kind == kind
    wait_reload(ui, lambda: option.click())
    assert ui.attr("root") == expected
    ui.assert_clean()
