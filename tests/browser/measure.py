"""What the explorer's scale test and ``bench/ui_scale.py`` read off a drawn view in Chromium."""

from __future__ import annotations

from typing import Any

from tests.browser.harness import Ui

FRAME_RECORDER = """n => { window.__frames = []; let last = performance.now();
  const tick = (t) => { window.__frames.push(t - last); last = t; if (window.__frames.length < n) requestAnimationFrame(tick); };
  requestAnimationFrame(tick); }"""


def listed(ui: Ui) -> list[dict[str, Any]]:
    """The node list beside the canvas: every drawn node with its spot, label box and group counts."""
    items: list[dict[str, Any]] = ui.page.eval_on_selector_all(
        "#node-list [data-node-id]", "els => els.map(e => ({...e.dataset, label: e.textContent}))"
    )
    return items


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] if ordered else 0.0


def frames_while(ui: Ui, action: Any, frames: int = 240) -> list[float]:
    """Intervals between the page's animation frames while ``action`` runs (the first two, which
    straddle the start, left out): a frame that takes longer to draw delays the next one."""
    ui.page.evaluate(FRAME_RECORDER, frames)
    action()
    ui.page.wait_for_timeout(100)
    got: list[float] = ui.page.evaluate("() => window.__frames.slice(2)")
    return got


def measure_view(ui: Ui) -> dict[str, Any]:
    """One drawn view: the first render as the page measured it (fetch included, and alone), a real click
    on a node until its details are painted (measured in the page from the click event), and the 95th
    percentile frame interval while the mouse drags the canvas and while the wheel zooms it."""
    ui.page.wait_for_function("() => document.querySelectorAll('#node-list [data-node-id]').length > 0")
    root = ui.attr("root")
    target = next(i for i in listed(ui) if "members" not in i and i["nodeId"] != root and i.get("x"))
    ui.page.evaluate("() => { delete document.getElementById('graph').dataset.selectMs; }")
    ui.click_node(target["nodeId"])
    ui.page.wait_for_function("() => document.getElementById('graph').dataset.selectMs !== undefined")
    box = ui.graph.bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5

    def drag() -> None:
        ui.page.mouse.move(cx, cy + 200)
        ui.page.mouse.down()
        for step in range(40):
            ui.page.mouse.move(cx + 3 * step, cy + 200 - 2 * step)
        ui.page.mouse.up()

    def wheel() -> None:
        ui.page.mouse.move(cx, cy)
        for step in range(40):
            ui.page.mouse.wheel(0, 120 if step < 20 else -120)

    return {
        "render_ms": int(ui.attr("render-ms")),
        "fetch_ms": int(ui.attr("fetch-ms")),
        "click_ms": int(ui.attr("select-ms")),
        "pan_frame_ms": p95(frames_while(ui, drag)),
        "zoom_frame_ms": p95(frames_while(ui, wheel)),
        "drawn": ui.count("visible-node-count"),
        "nodes": ui.count(),
    }
