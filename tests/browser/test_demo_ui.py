"""The README's first command: ``liubai demo`` ends with the UI's URL, and opening it shows the demo's lineage.

The demo runs for real (``--replay`` so that it needs no kernel tracing, ``--no-serve`` so that the test
controls the server); the URL it prints is opened as printed, in real Chromium.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from tests.browser.harness import Ui, css_escape, free_port, liubai_command, new_ui, serving

pytestmark = pytest.mark.browser

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], str]]:
    """(the URLs the demo printed, by the name it printed each under: ``web UI``, ``deployed``, ``pod``;
    its base) with ``liubai serve`` running over the demo's store."""
    root = tmp_path_factory.mktemp("demo")
    port = free_port()
    out = subprocess.run(
        [
            *liubai_command(),
            "demo",
            "--dir",
            str(root / "demo"),
            "--no-serve",
            "--replay",
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"},
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    urls = dict(re.findall(r"^(web UI|deployed|pod)\s+(http://\S+)\s*$", out.stdout, re.M))
    store = re.search(r"store\s+(sqlite:///\S+)", out.stdout)
    assert "web UI" in urls and store, (
        f"the demo did not end with the UI's URL and its store:\n{out.stdout[-1500:]}"
    )
    with serving(store.group(1), port, root / "serve.log") as base:
        yield urls, base


def _view(url: str) -> tuple[str, int, str]:
    """(root, depth, direction) of a UI URL's fragment."""
    fragment = dict(p.split("=", 1) for p in unquote(url.split("#", 1)[1]).split("&"))
    return fragment["node"], int(fragment.get("depth", "2")), fragment.get("direction", "downstream").upper()


def _lineage(ui: Ui, url: str) -> list[dict[str, Any]]:
    """The API's lineage answer for the view ``url`` names (what the page asked for)."""
    root, depth, direction = _view(url)
    nodes: list[dict[str, Any]] = ui.gql(
        "query($id: ID!, $dir: Direction!, $depth: Int!) { lineage(from: $id, direction: $dir, depth: $depth)"
        " { nodes { id kind properties } } }",
        {"id": root, "dir": direction, "depth": depth},
    )["lineage"]["nodes"]
    return nodes


def test_the_url_liubai_demo_prints_opens_the_demo_lineage(
    browser: Any, demo: tuple[dict[str, str], str]
) -> None:
    urls, base = demo
    url = urls["web UI"]
    assert url.startswith(base + "/")
    with new_ui(browser, base) as ui:
        ui.page.goto(url)
        ui.wait_ready()
        root = _view(url)[0]
        assert ui.attr("root") == root
        data = _lineage(ui, url)
        assert ui.count() == len(data)
        kinds = {n["kind"] for n in data}
        assert {"Commit", "Workload", "PipelineRun", "Process", "LogEvent"} <= kinds, kinds
        drawn_kinds = set(
            ui.page.eval_on_selector_all("#node-list [data-kind]", "els => els.map(e => e.dataset.kind)")
        )
        assert {"Workload", "PipelineRun", "Process", "LogEvent"} <= drawn_kinds
        ui.page.wait_for_function("id => document.getElementById('details').dataset.nodeId === id", arg=root)
        ui.screenshot("demo")
        # For the README: a log line's details (commit and run details name this machine's temp paths).
        log = ui.page.locator('#node-list [data-kind="LogEvent"]').first
        log_id = log.get_attribute("data-node-id")
        log.click()
        ui.page.wait_for_function(
            "id => document.getElementById('details').dataset.nodeId === id", arg=log_id
        )
        ui.screenshot("readme")
        # The README's picture: written when missing or on request, so test runs leave the checkout alone.
        if not DOCS_SCREENSHOT.exists() or os.environ.get("LIUBAI_UPDATE_SCREENSHOT") == "1":
            DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
            ui.page.screenshot(path=str(DOCS_SCREENSHOT))
        ui.assert_clean()


POD_VIEW_KINDS = {"AuditRecord", "Pod", "Container", "Process", "File"}


def _drawn(ui: Ui, kind_of: dict[str, str]) -> dict[str, str]:
    """Every node the page shows, by id, with its kind: the nodes drawn one by one, and the members of
    every drawn node that stands for several (a fan-out or budget aggregate, listed in its details)."""
    items = ui.page.eval_on_selector_all(
        "#node-list [data-node-id]", "els => els.map(e => [e.dataset.nodeId, e.dataset.kind])"
    )
    shown: dict[str, str] = {}
    for node_id, kind in items:
        if node_id in kind_of:
            shown[node_id] = kind_of[node_id]
            continue
        ui.page.locator(f'#node-list [data-node-id="{css_escape(node_id)}"]').click()
        ui.page.wait_for_function(
            "id => document.getElementById('details').dataset.nodeId === id", arg=node_id
        )
        members = ui.page.locator('#details-props tr[data-key="members"] td')
        listed = members.text_content() if members.count() else ""
        member_ids = [m for m in (listed or "").splitlines() if m in kind_of]
        assert member_ids, f"drawn node {node_id} ({kind}) is not in the lineage and names no members"
        shown.update((m, kind_of[m]) for m in member_ids)
    return shown


def _details(ui: Ui, url: str, node_id: str) -> dict[str, str]:
    """The details panel of ``node_id``: picked in the node list where it is drawn one by one, else
    (folded into an aggregate) through the view's ``sel`` link."""
    item = ui.page.locator(f'#node-list [data-node-id="{css_escape(node_id)}"]')
    if item.count():
        item.click()
    else:
        ui.page.goto("about:blank")  # a new load: the page reads its view from the URL as it starts
        ui.page.goto(f"{url}&sel={quote(node_id, safe='')}")
        ui.wait_ready()
    ui.page.wait_for_function("id => document.getElementById('details').dataset.nodeId === id", arg=node_id)
    rows: list[list[str]] = ui.page.eval_on_selector_all(
        "#details-props tr[data-key]",
        "rows => rows.map(r => [r.dataset.key, r.querySelector('td').textContent])",
    )
    return dict((k, v) for k, v in rows)


def test_the_pod_url_liubai_demo_prints_shows_its_container_processes_and_files(
    browser: Any, demo: tuple[dict[str, str], str]
) -> None:
    urls, base = demo
    assert "pod" in urls, "the demo printed no Pod URL"
    url = urls["pod"]
    with new_ui(browser, base) as ui:
        ui.page.goto(url)
        ui.wait_ready()
        root = _view(url)[0]
        assert ui.attr("root") == root and root.startswith("pod:")
        data = _lineage(ui, url)
        assert ui.count() == len(data)
        kind_of = {n["id"]: n["kind"] for n in data}
        assert POD_VIEW_KINDS <= set(kind_of.values()), sorted(set(kind_of.values()))
        shown = _drawn(ui, kind_of)
        assert root in shown
        assert POD_VIEW_KINDS <= set(shown.values()), sorted(set(shown.values()))
        # the Pod's container processes: their details name the container, whose details name the image
        procs = [n for n in data if n["kind"] == "Process" and (n["properties"] or {}).get("container_id")]
        assert procs, "no process of the Pod's container in its lineage"
        proc = min(procs, key=lambda n: (n["id"] not in shown, n["id"]))
        details = _details(ui, url, proc["id"])
        cid = proc["properties"]["container_id"]
        assert details.get("container_id") == cid, details
        assert details.get("pod_uid") == root.removeprefix("pod:"), details
        assert details.get("binary", "").startswith("/"), details
        container = next(
            n for n in data if n["kind"] == "Container" and n["properties"].get("container_id") == cid
        )
        shown_container = _details(ui, url, container["id"])
        assert shown_container.get("image"), shown_container
        assert shown_container.get("image") == container["properties"]["image"]
        ui.screenshot("demo-pod")
        ui.assert_clean()
