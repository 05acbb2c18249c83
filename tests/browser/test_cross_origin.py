"""A page on another origin, in real Chromium, against the default no-auth ``liubai serve`` on loopback.

The attacker page is served by a second HTTP server on another loopback port. It sends what a browser
sends without a CORS preflight: ``fetch(..., {mode: 'no-cors'})`` POSTs of a valid ingest batch and of a
GraphQL query, a GraphQL GET, and a form POST. Chromium reports each real status to Playwright even
where the page itself only sees an opaque response.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from liubai.lineage.model import GraphBatch
from liubai.lineage.store import open_store
from liubai.lineage.wire import encode_batch
from tests.browser.harness import free_port, serving

pytestmark = pytest.mark.browser

PLANTED = "commit:" + "be" * 20

ATTACK = """<!doctype html><html><body>
<form id="f" method="POST" enctype="text/plain" action="{target}/v1/ingest">
<input name='{{"format":"liubai.batch","x":"' value='"}}'></form>
<script>
const target = {target_js};
const batch = {batch_js};
const query = JSON.stringify({{query: "{{ stats {{ counts }} }}"}});
Promise.allSettled([
  fetch(target + "/v1/ingest", {{method: "POST", mode: "no-cors", body: batch}}),
  fetch(target + "/graphql", {{method: "POST", mode: "no-cors", body: query}}),
  fetch(target + "/graphql?query=" + encodeURIComponent("{{ stats {{ counts }} }}"), {{mode: "no-cors"}}),
]).then(() => document.getElementById("f").submit());
</script></body></html>"""


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, store URL) of a default ``liubai serve``: loopback, no auth."""
    root = tmp_path_factory.mktemp("cross-origin")
    store_url = f"sqlite:///{root / 'lineage.db'}"
    open_store(store_url).close()
    with serving(store_url, free_port(), root / "serve.log") as base:
        yield base, store_url


@pytest.fixture
def attacker(tmp_path: Path, target: tuple[str, str]) -> Iterator[str]:
    """Base URL of another origin on loopback serving the attack page."""
    batch = GraphBatch()
    batch.add_node(PLANTED, {"subject": "planted by another site"})
    body = encode_batch(batch, "attack")[1].decode()
    (tmp_path / "attack.html").write_text(
        ATTACK.format(target=target[0], target_js=json.dumps(target[0]), batch_js=json.dumps(body)),
        encoding="utf-8",
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_page_on_another_origin_plants_nothing(
    browser: Any, target: tuple[str, str], attacker: str
) -> None:
    base, store_url = target
    context = browser.new_context()
    seen: list[tuple[str, str, int]] = []
    context.on(
        "response",
        lambda r: (
            seen.append((r.request.method, r.url.removeprefix(base), r.status))
            if r.url.startswith(base)
            else None
        ),
    )
    page = context.new_page()
    page.goto(f"{attacker}/attack.html")
    deadline = time.monotonic() + 20
    while len(seen) < 4 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    context.close()
    assert sorted(seen) == sorted(
        [
            ("POST", "/v1/ingest", 403),  # the no-cors fetch of a valid batch
            ("POST", "/v1/ingest", 403),  # the form
            ("POST", "/graphql", 403),
            ("GET", "/graphql?query=%7B%20stats%20%7B%20counts%20%7D%20%7D", 403),
        ]
    ), seen
    store = open_store(store_url)
    try:
        assert store.get(PLANTED) is None
    finally:
        store.close()


def test_a_rebound_name_reaches_nothing_and_the_server_own_page_works(
    browser: Any, target: tuple[str, str]
) -> None:
    base, _ = target
    port = base.rsplit(":", 1)[1]
    context = browser.new_context()
    page = context.new_page()
    rebound = page.goto(f"http://rebound.example:{port}/")
    assert rebound is not None and rebound.status == 421
    assert "'rebound.example:" in page.content()
    own = page.goto(f"{base}/graphql")  # the server by its own name: GraphiQL loads
    assert own is not None and own.status == 200
    answer = page.evaluate(
        """async () => (await fetch("/graphql", {method: "POST", headers: {"Content-Type": "application/json"},
                                                  body: JSON.stringify({query: "{ stats { counts } }"})})).status"""
    )
    assert answer == 200
    context.close()
