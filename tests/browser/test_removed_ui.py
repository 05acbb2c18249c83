"""A commit that takes an object out of its tree shows that edge as a removal in the web UI, not as
one more declaration (``liubai lineage`` and ``--json`` say the same)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from liubai.collector.git import GitCollector, ingest_git
from liubai.lineage.store import open_store
from tests.browser.harness import free_port, new_ui, serving
from tests.gitrepo import GitRepoBuilder

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def removal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """(base URL, a commit that only declares, the commit removing an object) over a served store."""
    root = tmp_path_factory.mktemp("removal")
    repo = GitRepoBuilder(root / "r")
    repo.write("web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n")
    repo.write("conf.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf, namespace: shop}\n")
    repo.commit("web and conf")
    repo.write(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop, labels: {v: two}}\n",
    )
    first = repo.commit("web relabelled")
    repo.remove("conf.yaml")
    gone = repo.commit("conf retired")
    url = f"sqlite:///{root / 'lineage.db'}"
    store = open_store(url)
    try:
        with GitCollector(str(repo.path), cache_dir=root / "cache") as collector:
            ingest_git(store, collector)
    finally:
        store.close()
    with serving(url, free_port(), root / "serve.log") as base:
        yield base, first, gone


def test_a_removal_is_drawn_as_removed(browser: Any, removal: tuple[str, str, str]) -> None:
    base, first, gone = removal
    with new_ui(browser, base) as ui:
        ui.open(f"#node=commit:{gone}&depth=1&direction=downstream")
        ui.wait_ready()
        assert ui.count("removed-edge-count") == 1
        ui.assert_clean()
    with new_ui(browser, base) as ui:
        ui.open(f"#node=commit:{first}&depth=1&direction=downstream")
        ui.wait_ready()
        assert ui.count("removed-edge-count") == 0
        ui.assert_clean()
