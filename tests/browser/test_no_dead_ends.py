"""No dead ends: a node opened without a direction shows where it came from and what followed, and every
kind with an audit trail offers it.

A link names a node and maybe a depth; the direction is then "auto": downstream from a repo or commit,
upstream and downstream from anything else (web/js/directions.js). Each view is checked against the
GraphQL API asked directly, in real Chromium against a real ``liubai serve``.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from tests.browser.harness import Ui
from tests.browser.measure import listed
from tests.browser.scenario import REPO, SCENARIO
from tests.browser.test_web_ui import api_lineage, wait_details, wait_reload

pytestmark = pytest.mark.browser

S = SCENARIO
REPO_NODE = f"repo:{REPO}"

TRAIL_IDS = "query($id: ID!) { auditTrail(id: $id) { node { id } } }"

# Kinds in the middle of the flow, each at a depth that reaches its commit (a file is three hops from it:
# file <- process <- run <- commit), with what follows it in the scenario (a log line and a file end the flow).
MIDDLE = [
    pytest.param(S.workloads[0], 2, S.pod, id="Workload"),
    pytest.param(S.pod, 2, S.container, id="Pod"),
    pytest.param(S.error_log, 2, None, id="LogEvent"),
    pytest.param(S.hostile_file, 3, None, id="File"),
]


def covered(ui: Ui, expected: set[str]) -> set[str]:
    """Check the view holds exactly ``expected`` (each node drawn, or counted in a drawn aggregate of the
    level of detail) and return the nodes drawn one by one."""
    items = listed(ui)
    singles = {i["nodeId"] for i in items if "members" not in i}
    folded = sum(int(i["members"]) + int(i["hidden"]) for i in items if "members" in i)
    assert ui.count() == len(expected) and singles <= expected
    assert len(singles) + folded == len(expected)
    return singles


def status(ui: Ui) -> str:
    return ui.page.locator("#status").text_content() or ""


@pytest.mark.parametrize(("node", "depth", "below"), MIDDLE)
def test_a_link_without_a_direction_shows_the_commit_and_what_followed(
    ui: Ui, node: str, depth: int, below: str | None
) -> None:
    ui.open(f"#node={node}&depth={depth}")
    ui.wait_ready()
    up, down = api_lineage(ui, node, "UPSTREAM", depth), api_lineage(ui, node, "DOWNSTREAM", depth)
    assert S.release_commit in up
    assert below is None or below in down
    drawn = covered(ui, up | down)
    assert S.release_commit in drawn and (below is None or below in drawn)
    # Not BOTH, which turns around at every hop: it would add the other lines of a log line's trace.
    both = api_lineage(ui, node, "BOTH", depth)
    assert drawn <= both
    if node == S.error_log:
        assert S.hostile_log in both and S.hostile_log not in up | down
    assert ui.page.input_value("#direction") == "AUTO"
    assert "auto: upstream + downstream" in status(ui)
    assert "direction=auto" in ui.page.url
    ui.assert_clean()


def test_an_explicit_direction_link_is_kept_and_auto_can_be_picked_back(ui: Ui) -> None:
    node = S.workloads[0]
    ui.open(f"#node={node}&depth=2&direction=downstream")
    ui.wait_ready()
    down = api_lineage(ui, node, "DOWNSTREAM", 2)
    covered(ui, down)
    assert S.release_commit not in down
    assert ui.page.input_value("#direction") == "DOWNSTREAM"
    assert "direction=downstream" in ui.page.url and "auto" not in status(ui)

    wait_reload(ui, lambda: ui.page.select_option("#direction", "AUTO"))
    around = api_lineage(ui, node, "UPSTREAM", 2) | down
    assert S.release_commit in covered(ui, around)
    assert "direction=auto" in ui.page.url
    ui.assert_clean()


@pytest.mark.parametrize("node", [S.release_commit, REPO_NODE], ids=["Commit", "Repo"])
def test_a_link_without_a_direction_walks_down_from_a_source(ui: Ui, node: str) -> None:
    ui.open(f"#node={node}&depth=2")
    ui.wait_ready()
    down = api_lineage(ui, node, "DOWNSTREAM", 2)
    covered(ui, down)
    assert "auto: downstream" in status(ui)
    ui.assert_clean()


def test_a_search_pick_opens_the_same_auto_view(ui: Ui) -> None:
    ui.open()
    box = ui.page.locator("#search-input")
    box.fill("readiness probe")
    option = ui.page.locator(f'#search-results [role="option"][data-node-id="{S.error_log}"]')
    option.wait_for()
    wait_reload(ui, lambda: option.click())
    around = api_lineage(ui, S.error_log, "UPSTREAM", 2) | api_lineage(ui, S.error_log, "DOWNSTREAM", 2)
    assert S.release_commit in covered(ui, around)
    assert "auto: upstream + downstream" in status(ui)
    assert f"node={S.error_log}" in unquote(ui.page.url)
    ui.assert_clean()


@pytest.mark.parametrize(("node", "depth", "below"), MIDDLE)
def test_the_audit_trail_of_any_node_lists_its_commit(
    ui: Ui, node: str, depth: int, below: str | None
) -> None:
    ui.open(f"#node={node}&depth={depth}")
    ui.wait_ready()
    wait_details(ui, node)
    button = ui.page.locator("#btn-trail")
    assert button.is_enabled()
    button.click()
    ui.page.wait_for_function(
        "id => document.getElementById('trail').dataset.state === 'ready'"
        " && document.getElementById('trail').dataset.nodeId === id",
        arg=node,
    )
    rows = ui.page.eval_on_selector_all("#trail-table tbody tr", "rs => rs.map(r => r.dataset.nodeId)")
    assert rows == [t["node"]["id"] for t in ui.gql(TRAIL_IDS, {"id": node})["auditTrail"]]
    assert S.release_commit in rows and node in rows
    assert below is None or below in rows
    ui.assert_clean()


def test_a_repository_has_no_trail_button_and_says_why(ui: Ui) -> None:
    ui.open(f"#node={REPO_NODE}&depth=1")
    ui.wait_ready()
    wait_details(ui, REPO_NODE)
    button = ui.page.locator("#btn-trail")
    assert button.is_disabled()
    assert "commit" in (button.get_attribute("title") or "")
    # The server's trail of a repository is the repository alone: nothing was hidden by the button.
    assert [t["node"]["id"] for t in ui.gql(TRAIL_IDS, {"id": REPO_NODE})["auditTrail"]] == [REPO_NODE]
    # Picking one of its commits turns the button on again, without a stale explanation.
    ui.page.locator(f'#node-list [data-node-id="{S.release_commit}"]').click()
    wait_details(ui, S.release_commit)
    assert button.is_enabled() and not button.get_attribute("title")
    ui.assert_clean()
