"""GraphiQL at /graphql runs offline (vendored) under the page's CSP and answers a lineage query."""

from __future__ import annotations

import pytest

from tests.browser.harness import Ui

pytestmark = pytest.mark.browser

QUERY = '{ lineage(from: "%s", direction: DOWNSTREAM, depth: 2) { nodes { id kind } } }'


def test_graphiql_runs_a_lineage_query_offline(ui: Ui) -> None:
    commit = ui.gql('{ search(text: "commit", kinds: [Commit], first: 1) { edges { node { id } } } }')
    start = commit["search"]["edges"][0]["node"]["id"]
    expected = {n["id"] for n in ui.gql(QUERY % start)["lineage"]["nodes"]}
    external: list[str] = []
    ui.page.on("request", lambda r: external.append(r.url) if not r.url.startswith(ui.base) else None)
    response = ui.page.goto(f"{ui.base}/graphql")
    assert response is not None and "script-src 'self';" in response.headers["content-security-policy"]
    ui.page.wait_for_selector(".graphiql-execute-button")
    # the example GraphiQL opens with runs as it is (its kind filter is the NodeKind enum)
    ui.page.click(".graphiql-execute-button")
    ui.page.wait_for_function("() => document.querySelector('.result-window').innerText.includes('commit:')")
    assert '"errors"' not in ui.page.locator(".result-window").inner_text()
    editor = ui.page.locator(".graphiql-query-editor .CodeMirror")
    editor.click()
    ui.page.evaluate(
        "q => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(q)",
        QUERY % start,
    )
    ui.page.click(".graphiql-execute-button")
    result = ui.page.locator(".result-window")
    ui.page.wait_for_function(
        "id => document.querySelector('.result-window').innerText.includes(id)", arg=start
    )
    text = result.inner_text()
    assert all(node_id in text for node_id in expected)
    assert external == [], f"GraphiQL fetched from outside liubai: {external}"
    ui.assert_clean()
