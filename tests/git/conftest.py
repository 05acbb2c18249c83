"""Fixtures for the git collector: a real GitOps repository (git CLI) and a real SQLite store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from liubai.collector.git import GitCollector, checkpoints_of, ingest_git
from liubai.collector.ingest import IngestSummary
from liubai.lineage.store import LineageStore, open_store
from tests.gitrepo import Scenario, build_gitops_scenario
from tests.stores import blank_store_url, parametrize_store


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_store(metafunc, "any_store_url", "function")


@pytest.fixture(autouse=True)
def _git_available(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is not installed: the git collector cannot be tested (apt-get install git)")
    monkeypatch.setenv("LIUBAI_GIT_CACHE", str(tmp_path / "git-cache"))
    monkeypatch.setenv("LIUBAI_RENDER_CACHE", str(tmp_path / "render-cache"))  # never the user's


@pytest.fixture(scope="session")
def scenario_template(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_gitops_scenario(tmp_path_factory.mktemp("template") / "gitops")


@pytest.fixture
def scenario(scenario_template: Scenario, tmp_path: Path) -> Scenario:
    """A private copy of the scenario repository that a test may change."""
    return scenario_template.copy_to(tmp_path / "gitops")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LineageStore]:
    s = open_store(f"sqlite:///{tmp_path / 'lineage.db'}")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def any_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A blank store of each implementation (``tests/stores.py``), for what the stores must agree on."""
    return blank_store_url(request, request.param, tmp_path, "lineage.db")


@pytest.fixture
def any_store(any_store_url: str) -> Iterator[LineageStore]:
    s = open_store(any_store_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def ingested(
    scenario_template: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Scenario, LineageStore, IngestSummary]]:
    """The scenario ingested once (main branch) for the read-only assertions of a module."""
    root = tmp_path_factory.mktemp("ingested")
    scen = scenario_template.copy_to(root / "gitops")
    st = open_store(f"sqlite:///{root / 'lineage.db'}")
    with GitCollector(str(scen.path), cache_dir=root / "cache") as collector:
        summary = ingest_git(st, collector)
    try:
        yield scen, st, summary
    finally:
        st.close()


def run_ingest(store: LineageStore, location: str | Path, **kwargs: object) -> IngestSummary:
    with GitCollector(str(location), **kwargs) as collector:  # type: ignore[arg-type]
        return ingest_git(store, collector)


__all__ = ["checkpoints_of", "run_ingest"]
