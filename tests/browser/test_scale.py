"""The explorer at 10,000 nodes, in real headless Chromium against a real ``liubai serve``.

The first view of a 10,000-node lineage is a summary whose every label can be read; aggregates open
on a double-click and the permalink keeps them open; Fit brings any number of drawn nodes into sight;
labels come as one zooms in. Timings are printed beside a 15-node baseline of the same run; their
targets are checked by ``bench/ui_scale.py``, not here.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from liubai.lineage.store import open_store
from tests.browser import large
from tests.browser.harness import Ui, free_port, new_ui, serving
from tests.browser.measure import listed, measure_view
from tests.browser.test_web_ui import api_lineage, permalink, wait_details, wait_reload

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="module")
def large_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, large.LargeLineage]]:
    db = tmp_path_factory.mktemp("large-store") / "lineage.db"
    store = open_store(f"sqlite:///{db}")
    try:
        lineage = large.load(store)
    finally:
        store.close()
    with serving(f"sqlite:///{db}", free_port(), db.with_name("serve.log")) as base:
        yield base, lineage


@pytest.fixture
def big(
    browser: Any, large_server: tuple[str, large.LargeLineage]
) -> Iterator[tuple[Ui, large.LargeLineage]]:
    base, lineage = large_server
    with new_ui(browser, base) as ui:
        yield ui, lineage


def boxes_overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def open_10k(ui: Ui, lineage: large.LargeLineage, extra: str = "") -> None:
    ui.page.goto("about:blank")  # a new page load, not a hash change of the one shown
    ui.open(permalink(lineage.large_commit, 3) + extra)
    ui.wait_ready(timeout=60_000)
    ui.page.wait_for_function("() => document.querySelectorAll('#node-list [data-node-id]').length > 0")


def test_first_view_of_10k_nodes_is_a_legible_summary_that_loses_nothing(
    big: tuple[Ui, large.LargeLineage],
) -> None:
    ui, lineage = big
    open_10k(ui, lineage)
    assert ui.count() == lineage.expected_nodes == 10_000
    items = listed(ui)
    drawn = ui.count("visible-node-count")
    assert len(items) == drawn <= 80, drawn
    assert ui.count("group-count") >= 2

    # Every one of the 10,000 nodes is drawn or counted in a drawn aggregate (its members and below).
    singles = [i for i in items if "members" not in i]
    groups = [i for i in items if "members" in i]
    assert len(singles) + sum(int(g["members"]) + int(g["hidden"]) for g in groups) == 10_000
    assert {i["nodeId"] for i in singles} >= {lineage.large_commit}
    processes = next(g for g in groups if g["kind"] == "Process")
    assert processes["members"] == str(lineage.processes)
    assert int(processes["hidden"]) == lineage.processes * lineage.files_each
    assert processes["label"].startswith(f"+{lineage.processes} processes")

    # Legible: every drawn element has its label drawn at the first view's zoom, and no two overlap.
    boxes = {i["nodeId"]: [float(v) for v in i["labelBox"].split(",")] for i in items if "labelBox" in i}
    assert set(boxes) == {i["nodeId"] for i in items}, "a label is too small to be drawn at the first view"
    clashes = [(a, b) for a, b in combinations(boxes, 2) if boxes_overlap(boxes[a], boxes[b])]
    assert not clashes, clashes
    width, height = (
        (ui.graph.bounding_box() or {}).get("width", 0),
        (ui.graph.bounding_box() or {}).get("height", 0),
    )
    for node_id, (x1, y1, x2, y2) in boxes.items():
        assert -1 <= x1 and x2 <= width + 1 and -1 <= y1 and y2 <= height + 1, (node_id, boxes[node_id])
    ui.screenshot("lineage-10k-first-view")
    ui.assert_clean()


def test_an_opened_aggregate_shows_its_members_and_the_permalink_keeps_it(
    big: tuple[Ui, large.LargeLineage],
) -> None:
    ui, lineage = big
    open_10k(ui, lineage)
    group = next(i for i in listed(ui) if i["kind"] == "Process" and "members" in i)
    before = ui.count("visible-node-count")
    x, y = ui.node_point(group["nodeId"])
    wait_reload(ui, lambda: ui.page.mouse.dblclick(x, y))
    ids = {i["nodeId"] for i in listed(ui)}
    processes = {i for i in ids if i.startswith("proc:")}
    assert len(processes) == lineage.processes and group["nodeId"] not in ids
    assert ui.count("visible-node-count") > before

    opened = parse_qs(ui.page.evaluate("() => location.hash.slice(1)"))["open"]
    assert opened == [group["nodeId"].removeprefix("group:")]
    drawn_before_reload = sorted(ids)
    ui.page.reload()
    ui.wait_ready(timeout=60_000)
    ui.page.wait_for_function("() => document.querySelectorAll('#node-list [data-node-id]').length > 0")
    assert sorted(i["nodeId"] for i in listed(ui)) == drawn_before_reload

    # Collapse on the run takes the processes back into their aggregate, and out of the link.
    run = next(i for i in ids if i.startswith("run:"))
    ui.page.locator(f'#node-list [data-node-id="{run}"]').click()
    wait_details(ui, run)
    wait_reload(ui, lambda: ui.page.click("#btn-collapse"))
    assert group["nodeId"] in {i["nodeId"] for i in listed(ui)}
    assert "open" not in parse_qs(ui.page.evaluate("() => location.hash.slice(1)"))
    ui.assert_clean()


def test_a_permalinks_selection_inside_an_aggregate_is_drawn_with_its_way_from_the_root(
    big: tuple[Ui, large.LargeLineage],
) -> None:
    ui, lineage = big
    everything = api_lineage(ui, lineage.large_commit, "DOWNSTREAM", 3)
    deep_file = sorted(i for i in everything if i.startswith("file:"))[-1]
    open_10k(ui, lineage, f"&sel={deep_file}")
    wait_details(ui, deep_file)
    ids = {i["nodeId"] for i in listed(ui)}
    assert (
        deep_file in ids
        and any(i.startswith("proc:") for i in ids)
        and any(i.startswith("run:") for i in ids)
    )
    ui.assert_clean()


def test_fit_shows_every_node_when_all_10k_are_opened_and_labels_come_with_zoom(
    big: tuple[Ui, large.LargeLineage],
) -> None:
    ui, lineage = big
    everything = api_lineage(ui, lineage.large_commit, "DOWNSTREAM", 3)
    open_10k(ui, lineage)
    keys = [i["nodeId"].removeprefix("group:") for i in listed(ui) if "members" in i]
    keys += [f"{p}::File" for p in sorted(everything) if p.startswith("proc:")]
    open_10k(ui, lineage, "".join(f"&open={k}" for k in keys))
    drawn = ui.count("visible-node-count")
    assert drawn == 10_000 and ui.count("group-count") == 0
    ui.page.evaluate("() => { document.getElementById('graph').dataset.extent = ''; }")
    ui.page.click("#btn-fit")
    ui.page.wait_for_function("() => document.getElementById('graph').dataset.extent !== ''")
    box = ui.graph.bounding_box()
    assert box is not None
    x1, y1, x2, y2 = (float(v) for v in ui.attr("extent").split(","))
    assert x1 >= -1 and y1 >= -1 and x2 <= box["width"] + 1 and y2 <= box["height"] + 1, (x1, y1, x2, y2, box)
    assert (x2 - x1) > box["width"] * 0.5 or (y2 - y1) > box["height"] * 0.5, "Fit left the graph a speck"
    zoomed_out = listed(ui)
    assert not any("labelBox" in i for i in zoomed_out), "labels drawn while 10,000 nodes share the screen"
    ui.screenshot("lineage-10k-fit")

    # Zooming in on one spot brings the labels there back, and they do not overlap.
    spot = zoomed_out[len(zoomed_out) // 2]
    ui.page.mouse.move(box["x"] + float(spot["x"]), box["y"] + float(spot["y"]))
    for _ in range(40):  # the wheel zooms by a few percent a notch: from 1/100 of legible takes a while
        for _ in range(10):
            ui.page.mouse.wheel(0, -240)
        ui.page.wait_for_timeout(150)
        if float(ui.attr("zoom")) >= 0.7:
            break
    assert float(ui.attr("zoom")) >= 0.7
    ui.page.wait_for_function("() => document.querySelector('#node-list [data-label-box]') !== null")
    near = [i for i in listed(ui) if "labelBox" in i]
    assert near, "no label after zooming in"
    boxes = [[float(v) for v in i["labelBox"].split(",")] for i in near]
    assert not [(a, b) for a, b in combinations(range(len(boxes)), 2) if boxes_overlap(boxes[a], boxes[b])]
    print(f"\n10k opened: {drawn} drawn; {len(near)} labels legible after zooming in")
    ui.screenshot("lineage-10k-zoomed-in")
    ui.assert_clean()


def test_timings_beside_the_15_node_baseline(
    big: tuple[Ui, large.LargeLineage], capsys: pytest.CaptureFixture[str]
) -> None:
    """Report (not judge: bench/ui_scale.py does) first render, click -> details and pan/zoom frames."""
    ui, lineage = big
    rows = {}
    for name, node in (("15 nodes", lineage.small_commit), ("10,000 nodes", lineage.large_commit)):
        ui.page.goto("about:blank")
        ui.open(permalink(node, 3))
        ui.wait_ready(timeout=60_000)
        rows[name] = measure_view(ui)
    assert rows["15 nodes"]["nodes"] == 15 and rows["10,000 nodes"]["nodes"] == 10_000
    report = "; ".join(
        f"{name}: first render {r['render_ms']} ms in page (fetch {r['fetch_ms']} ms), click->details "
        f"{r['click_ms']} ms, pan frame p95 {r['pan_frame_ms']:.1f} ms, zoom frame p95 {r['zoom_frame_ms']:.1f} ms"
        for name, r in rows.items()
    )
    with capsys.disabled():
        print(f"\n{report}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "web-timings-10k.txt").write_text(report + "\n")
    ui.assert_clean()


def test_a_repositorys_commits_fold_per_day(big: tuple[Ui, large.LargeLineage]) -> None:
    ui, lineage = big
    ui.page.goto("about:blank")
    ui.open(permalink(lineage.history_repo, 1))
    ui.wait_ready()
    ui.page.wait_for_function("() => document.querySelectorAll('#node-list [data-node-id]').length > 0")
    groups = {i["nodeId"]: i for i in listed(ui) if "members" in i}
    per_day = {g.rsplit("@", 1)[1]: int(i["members"]) for g, i in groups.items() if "::Commit@" in g}
    singles = [i for i in listed(ui) if i["kind"] == "Commit" and "members" not in i]
    # A day the column has room for is drawn commit by commit; the others are one aggregate each.
    assert len(per_day) >= 2 and set(per_day) <= set(large.HISTORY_DAYS)
    assert set(per_day.values()) == {large.HISTORY_PER_DAY}
    assert len(singles) + sum(per_day.values()) == len(large.HISTORY_DAYS) * large.HISTORY_PER_DAY
    day = sorted(per_day)[-1]
    gid = next(g for g in groups if g.endswith(f"@{day}"))
    assert groups[gid]["label"].startswith(f"+{large.HISTORY_PER_DAY} commits on {day}")
    x, y = ui.node_point(gid)
    wait_reload(ui, lambda: ui.page.mouse.dblclick(x, y))
    drawn = {i["nodeId"] for i in listed(ui)}
    prefix = f"commit:{large.HISTORY_DAYS.index(day) + 1:02d}"  # the day's commits (see large._history)
    assert len([i for i in drawn if i.startswith(prefix)]) == large.HISTORY_PER_DAY and gid not in drawn
    ui.assert_clean()
