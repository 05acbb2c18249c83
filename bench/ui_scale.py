"""The lineage explorer in real headless Chromium: a 10,000-node lineage beside a 15-node baseline.

A real ``liubai serve`` runs over an SQLite store holding ``tests/browser/large.py``'s rollout (one
commit whose lineage at depth 3 is 10,000 nodes) and its 15-node baseline commit. Arms, alternated per
round in one browser:

* ``15 nodes``: the baseline;
* ``10k summary``: the 10,000-node lineage as a user first sees it (level of detail: aggregates);
* ``10k opened, canvas`` and ``10k opened, webgl``: every aggregate opened (all 10,000 nodes drawn),
  on Cytoscape's 2D canvas and on its WebGL renderer: the measurement behind the renderer choice.

Per arm: the first render as the page measures it (fetch included; the fetch alone beside it), click ->
details painted (measured in the page from the click event), and the 95th percentile of animation-frame
intervals while the mouse drags the canvas and while the wheel zooms it. Targets, for the summary:
first render <= 1.5 s, frames <= 50 ms, click -> details <= 100 ms. Ratios are against the baseline.

Prints a table and, last, one JSON line. Example: .venv/bin/python bench/ui_scale.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from liubai.lineage.store import open_store  # noqa: E402
from tests.browser import large  # noqa: E402
from tests.browser.harness import CHROMIUM_ARGS, chromium_path, free_port, new_ui, serving  # noqa: E402
from tests.browser.measure import listed, measure_view  # noqa: E402

TARGETS = {"render_ms": 1500.0, "pan_frame_ms": 50.0, "zoom_frame_ms": 50.0, "click_ms": 100.0}
FIELDS = ("render_ms", "fetch_ms", "click_ms", "pan_frame_ms", "zoom_frame_ms")


def open_view(ui: Any, fragment: str, query: str = "") -> None:
    ui.page.goto("about:blank")
    ui.page.goto(f"{ui.base}/{query}{fragment}")
    ui.wait_ready(timeout=120_000)


def all_open(ui: Any, lineage: large.LargeLineage) -> str:
    """The permalink fragment that opens every aggregate of the 10,000-node view."""
    fragment = f"#node={lineage.large_commit}&depth=3&direction=downstream"
    open_view(ui, fragment)
    ui.page.wait_for_function("() => document.querySelectorAll('#node-list [data-node-id]').length > 0")
    keys = [i["nodeId"].removeprefix("group:") for i in listed(ui) if "members" in i]
    data = ui.gql(
        "query($id: ID!) { lineage(from: $id, depth: 3) { compact } }", {"id": lineage.large_commit}
    )["lineage"]["compact"]
    keys += [f"{n['id']}::File" for n in data["nodes"] if n["kind"] == "Process"]
    return fragment + "".join(f"&open={k}" for k in keys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the JSON line to this file")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "lineage.db"
        store = open_store(f"sqlite:///{db}")
        lineage = large.load(store)
        store.close()
        with (
            serving(f"sqlite:///{db}", free_port(), Path(tmp) / "serve.log") as base,
            sync_playwright() as pw,
        ):
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
            try:
                with new_ui(browser, base) as ui:
                    ui.page.set_default_timeout(120_000)
                    opened = all_open(ui, lineage)
                    arms = {
                        "15 nodes": (f"#node={lineage.small_commit}&depth=3&direction=downstream", ""),
                        "10k summary": (f"#node={lineage.large_commit}&depth=3&direction=downstream", ""),
                        "10k opened, canvas": (opened, ""),
                        "10k opened, webgl": (opened, "?renderer=webgl"),
                    }
                    results: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
                    for _ in range(args.rounds):
                        for arm, (fragment, query) in arms.items():
                            open_view(ui, fragment, query)
                            row = measure_view(ui)
                            row["renderer"] = ui.attr("renderer")
                            results[arm].append(row)
            finally:
                browser.close()
    report(results, args.json)


def report(results: dict[str, list[dict[str, Any]]], out: Path | None) -> None:
    med = {
        arm: {f: statistics.median(r[f] for r in rows) for f in FIELDS}
        | {"drawn": rows[0]["drawn"], "nodes": rows[0]["nodes"], "renderer": rows[0]["renderer"]}
        for arm, rows in results.items()
    }
    base = med["15 nodes"]
    print(
        f"{'arm':22} {'nodes':>6} {'drawn':>6} {'render ms':>10} {'fetch ms':>9} {'click ms':>9} {'pan p95':>8} {'zoom p95':>9}  ratio render/click/pan"
    )
    for arm, m in med.items():
        ratio = "/".join(
            f"{m[f] / max(base[f], 1e-9):.2f}" for f in ("render_ms", "click_ms", "pan_frame_ms")
        )
        print(
            f"{arm:22} {m['nodes']:>6} {m['drawn']:>6} {m['render_ms']:>10.0f} {m['fetch_ms']:>9.0f} {m['click_ms']:>9.0f} "
            f"{m['pan_frame_ms']:>8.1f} {m['zoom_frame_ms']:>9.1f}  {ratio}"
        )
    summary = med["10k summary"]
    verdict = {f: summary[f] <= limit for f, limit in TARGETS.items()}
    print(
        "targets for the 10k summary: "
        + ", ".join(f"{f} <= {TARGETS[f]:.0f}: {'met' if ok else 'MISSED'}" for f, ok in verdict.items())
    )
    line = json.dumps({"bench": "ui_scale", "median": med, "targets_met": verdict, "rounds": results})
    if out:
        out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
