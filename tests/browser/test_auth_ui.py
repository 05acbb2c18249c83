"""The web UI against a server with auth on: it asks for a token, rejects a bad one, then works with a good one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from liubai.api.auth import TokenStore
from liubai.lineage.store import open_store
from tests.browser import scenario
from tests.browser.harness import Ui, free_port, new_ui, serving

pytestmark = pytest.mark.browser

S = scenario.SCENARIO


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """(base URL, read token, ingest-only token) of ``liubai serve`` with ``LIUBAI_AUTH=1``."""
    root = tmp_path_factory.mktemp("auth-ui")
    db = root / "lineage.db"
    store = open_store(f"sqlite:///{db}")
    try:
        scenario.load(store)
    finally:
        store.close()
    tokens = TokenStore(root / "tokens.db")
    _, read = tokens.create("ui", ["read"])
    _, ingest = tokens.create("pipeline", ["ingest"])
    tokens.close()
    env = {"LIUBAI_AUTH": "1", "LIUBAI_TOKENS": str(root / "tokens.db")}
    with serving(f"sqlite:///{db}", free_port(), root / "serve.log", env=env) as base:
        yield base, read, ingest


@pytest.fixture
def page(browser: Any, authed: tuple[str, str, str]) -> Iterator[Ui]:
    with new_ui(browser, authed[0]) as ui:
        yield ui


def _give_token(ui: Ui, token: str) -> None:
    ui.page.wait_for_selector("#token-dialog[open]")
    ui.page.fill("#token-input", token)
    ui.page.click("#token-submit")


def test_the_ui_asks_for_a_token_refuses_a_bad_one_and_draws_with_a_good_one(
    page: Ui, authed: tuple[str, str, str]
) -> None:
    _, read, _ = authed
    page.open(f"#node={S.release_commit}&depth=2&direction=downstream")
    page.page.wait_for_selector("#token-dialog[open]")
    assert "token" in (page.page.text_content("#token-reason") or "").lower()
    _give_token(page, "lb_nosuchid_" + "x" * 43)
    page.page.wait_for_function(
        "() => document.getElementById('token-reason').textContent.startsWith('That token was not accepted')"
    )
    _give_token(page, read)
    page.wait_ready()
    assert page.count() > 1
    stored = page.page.evaluate("() => [sessionStorage.getItem('liubai.token'), localStorage.length]")
    assert stored == [read, 0]  # kept for this tab only
    assert not page.dialogs and not page.page_errors


def test_a_token_without_the_read_scope_is_reported_not_asked_again(
    page: Ui, authed: tuple[str, str, str]
) -> None:
    _, _, ingest = authed
    page.open(f"#node={S.release_commit}")
    _give_token(page, ingest)
    page.page.wait_for_function("() => document.getElementById('graph').dataset.state === 'error'")
    assert not page.page.is_visible("#token-dialog")
    assert "scope" in (page.page.text_content("#status") or "")


def test_cancelling_leaves_a_clear_message(page: Ui) -> None:
    page.open(f"#node={S.release_commit}")
    page.page.wait_for_selector("#token-dialog[open]")
    page.page.click("#token-cancel")
    page.page.wait_for_function("() => document.getElementById('graph').dataset.state === 'error'")
    assert "token is needed" in (page.page.text_content("#status") or "")


def test_the_audit_export_downloads_with_the_token(
    page: Ui, authed: tuple[str, str, str], tmp_path: Path
) -> None:
    _, read, _ = authed
    page.open(f"#node={S.release_commit}")
    _give_token(page, read)
    page.wait_ready()
    page.page.wait_for_function(
        f"() => document.getElementById('details').textContent.includes({json.dumps(S.release_commit)})"
    )
    page.page.click("#btn-trail")
    page.page.wait_for_function("() => document.getElementById('trail').dataset.state === 'ready'")
    with page.page.expect_download() as info:
        page.page.click("#trail-export")
    saved = tmp_path / "export.json"
    info.value.save_as(saved)
    exported = json.loads(saved.read_text())
    assert S.release_commit in json.dumps(exported)


def test_graphiql_opens_without_a_token_and_queries_with_the_tabs_token(
    page: Ui, authed: tuple[str, str, str]
) -> None:
    base, read, _ = authed
    page.open(f"#node={S.release_commit}")
    _give_token(page, read)
    page.wait_ready()
    page.page.goto(f"{base}/graphql")
    page.page.wait_for_selector(".graphiql-execute-button")
    query = f'{{ node(id: "{S.release_commit}") {{ id }} }}'
    page.page.evaluate(
        "q => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(q)", query
    )
    page.page.click(".graphiql-execute-button")
    page.page.wait_for_function(
        "id => document.querySelector('.result-window').innerText.includes(id)", arg=S.release_commit
    )
    assert "UNAUTHENTICATED" not in page.page.inner_text(".result-window")
