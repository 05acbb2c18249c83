"""Rendering across runs: a later incremental ``--render`` run knows the deployers and renders earlier
runs found, renders come from the on-disk cache when their inputs' trees were rendered before, and
switching ``--render`` re-reads the history. Each compared with one run over the whole history."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liubai.api.cli.main import app
from liubai.collector.git import GitCollector, checkpoints_of, ingest_git
from liubai.collector.ingest import IngestSummary, Item, ingest_records
from liubai.lineage.batch import GraphBatch
from liubai.lineage.declared import declared_at
from liubai.lineage.model import EdgeKind, NodeKind
from liubai.lineage.provenance import GIT_WRITER
from liubai.lineage.store import LineageStore, open_store
from tests._real import missing
from tests.git.conftest import run_ingest
from tests.git.test_git_render import DEPLOY, FLUX, _base, _declares
from tests.gitrepo import GitRepoBuilder

BY = "Kustomization/flux-system/apps"
WEB, SVC, CONF = (
    "workload:Deployment/shop/web",
    "workload:Service/shop/web",
    "workload:ConfigMap/shop/conf-gold",
)
FLUX_OBJ = "workload:Kustomization/flux-system/apps"
RAW_WEB = "workload:Deployment/default/web"  # the base read on its own, as a file


@pytest.fixture(autouse=True)
def _kubectl() -> None:
    if shutil.which("kubectl") is None:
        missing("kubectl", "kubectl is not installed: overlays cannot be rendered (scripts/setup-system)")


def _fresh(tmp_path: Path, name: str) -> LineageStore:
    return open_store(f"sqlite:///{tmp_path / name}")


def _graph(
    store: LineageStore,
) -> tuple[set[tuple[str, str, tuple[tuple[str, object], ...]]], dict[str, object]]:
    """Every DECLARES edge with its properties, and every declared object's node properties."""
    edges = {
        (e.src, e.dst, tuple(sorted(e.props.items())))
        for chunk in store.iter_edges()
        for e in chunk
        if e.kind == EdgeKind.DECLARES
    }
    nodes = {n.id: n.props for chunk in store.iter_nodes() for n in chunk if n.kind == NodeKind.WORKLOAD}
    return edges, nodes


def _declared(store: LineageStore, sha: str) -> dict[str, str]:
    view = declared_at(store, sha)
    assert view.complete
    return {o.node.id: o.rendered_by for o in view.objects}


def _history(repo: GitRepoBuilder) -> tuple[list[str], list[str]]:
    """Commits 1..2 (deployer, overlay, base, an image bump) and 3..4, where 3 edits only the base (the
    Service dropped, the image bumped again) and 4 touches no manifest."""
    _base(repo)
    repo.write("clusters/prod/apps.yaml", FLUX)
    first = [repo.commit("apps through flux")]
    repo.write("apps/base/deploy.yaml", DEPLOY.replace("1.0", "1.1"))
    first.append(repo.commit("web 1.1"))
    return first, []


def _later(repo: GitRepoBuilder) -> list[str]:
    repo.write("apps/base/kustomization.yaml", "resources: [deploy.yaml, conf.yaml]\n")
    repo.write("apps/base/deploy.yaml", DEPLOY.replace("1.0", "1.2"))
    shas = [repo.commit("base only: service retired, web 1.2")]
    repo.write("README.md", "docs\n")
    shas.append(repo.commit("docs only"))
    return shas


def _second_run(store: LineageStore, location: Path, state_from: str, after: str) -> IngestSummary:
    """An incremental --render run, its render state rebuilt from the last run's checkpoint, or (the
    checkpoint made stale, as a run that starts elsewhere than the last one stopped finds it) from
    the store."""
    source = f"git:{location.resolve()}"
    if state_from == "store":
        stale = GraphBatch(writer=GIT_WRITER)
        stale.checkpoints[(source, "render-state")] = '{"at":"0000","rendered":{},"inputs":{}}'
        store.upsert(stale)
    else:
        assert json.loads(store.get_checkpoint(source, "render-state") or "{}")["at"] == after
    with GitCollector(str(location), render=True) as collector:
        summary = ingest_git(store, collector)
        assert collector.render_state_from == state_from
    return summary


@pytest.mark.parametrize("state_from", ["checkpoint", "store"])
def test_second_run_editing_only_a_base_renders_as_one_run_would(tmp_path: Path, state_from: str) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    first, _ = _history(repo)
    two_runs, one_run = _fresh(tmp_path, "two.db"), _fresh(tmp_path, "one.db")
    try:
        run_ingest(two_runs, repo.path, render=True)
        later = _later(repo)
        summary = _second_run(two_runs, repo.path, state_from, first[-1])
        assert summary.commits == 2 and not summary.notices
        run_ingest(one_run, repo.path, render=True)

        base_only = later[0]
        assert _declares(two_runs, base_only) == {web: (False, BY) for web in (WEB, CONF)} | {SVC: (True, BY)}
        assert two_runs.get(RAW_WEB) is None, "the base is declared through its overlay, never on its own"
        assert _graph(two_runs) == _graph(one_run)
        for sha in [*first, *later]:
            assert _declared(two_runs, sha) == _declared(one_run, sha)
        assert _declared(two_runs, later[-1]) == {WEB: BY, CONF: BY, FLUX_OBJ: ""}
    finally:
        two_runs.close()
        one_run.close()
    two, one = (_declared_cli(tmp_path / db, later[0]) for db in ("two.db", "one.db"))
    assert two == one and {o["id"]: o["rendered_by"] for o in two} == {WEB: BY, CONF: BY, FLUX_OBJ: None}


def _declared_cli(db: Path, at: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(app, ["--store", f"sqlite:///{db}", "declared", "--at", at, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["complete"] is True
    objects: list[dict[str, object]] = doc["objects"]
    return objects


@pytest.mark.parametrize("state_from", ["checkpoint", "store"])
def test_second_run_that_removes_the_deployer_removes_what_it_rendered(
    tmp_path: Path, state_from: str
) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    first, _ = _history(repo)
    two_runs, one_run = _fresh(tmp_path, "two.db"), _fresh(tmp_path, "one.db")
    try:
        run_ingest(two_runs, repo.path, render=True)
        repo.remove("clusters/prod/apps.yaml")
        gone = repo.commit("flux no longer deploys apps")
        _second_run(two_runs, repo.path, state_from, first[-1])
        run_ingest(one_run, repo.path, render=True)
        assert _declares(two_runs, gone) == {
            WEB: (True, BY),
            SVC: (True, BY),
            CONF: (True, BY),
            FLUX_OBJ: (True, ""),
        }
        assert _graph(two_runs) == _graph(one_run)
        assert _declared(two_runs, first[-1]) == {WEB: BY, SVC: BY, CONF: BY, FLUX_OBJ: ""}
    finally:
        two_runs.close()
        one_run.close()


def _ingest_cli(db: Path, repo: Path, *flags: str) -> dict[str, object]:
    result = CliRunner().invoke(
        app, ["--store", f"sqlite:///{db}", "ingest", "git", str(repo), "--json", *flags]
    )
    assert result.exit_code == 0, result.output
    doc: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return doc


def test_fresh_store_over_the_same_repository_renders_nothing_new(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    _history(repo)
    _later(repo)
    repo.write(
        "apps/overlays/prod/kustomization.yaml",
        "namespace: prod\nresources: [../../base, https://127.0.0.1:9/no/such/base?ref=v1]\n",
    )
    repo.commit("a remote base nobody can fetch")
    cold = _ingest_cli(tmp_path / "a.db", repo.path, "--render")["render"]
    warm = _ingest_cli(tmp_path / "b.db", repo.path, "--render")["render"]
    assert isinstance(cold, dict) and isinstance(warm, dict)
    assert cold["renders"] == 4 and cold["failures"] == 1 and cold["disk_cache_hits"] == 0
    # every render that succeeded is read back; the failure (a fetch that may work later) is tried again
    assert warm["renders"] == cold["failures"] == warm["failures"]
    assert warm["disk_cache_hits"] == warm["cache_hits"] == cold["renders"] - cold["failures"]
    a, b = open_store(f"sqlite:///{tmp_path / 'a.db'}"), open_store(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        assert _graph(a) == _graph(b)
    finally:
        a.close()
        b.close()


def test_switching_render_rereads_the_history_and_omitting_it_keeps_the_reading(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    first, _ = _history(repo)
    head = first[-1]
    store = _fresh(tmp_path, "s.db")
    files_only, rendered = _fresh(tmp_path, "files.db"), _fresh(tmp_path, "rendered.db")
    try:
        run_ingest(files_only, repo.path, render=False)
        run_ingest(rendered, repo.path, render=True)
        as_files, as_rendered = _declared(files_only, head), _declared(rendered, head)
        assert RAW_WEB in as_files and WEB not in as_files
        assert WEB in as_rendered and RAW_WEB not in as_rendered

        assert run_ingest(store, repo.path, render=None).commits == 2  # a new store reads file by file
        assert _declared(store, head) == as_files
        on = run_ingest(store, repo.path, render=True)
        assert [n.location for n in on.notices] == ["render"]
        assert "--render switched on: re-reading the whole history" in on.notices[0].message
        assert on.commits == 2
        assert _declared(store, head) == as_rendered
        for sha in first:
            assert _declared(store, sha) == _declared(rendered, sha)

        kept = run_ingest(store, repo.path, render=None)  # omitted: the stored reading goes on
        assert kept.commits == 0 and not kept.notices
        later = _later(repo)
        assert run_ingest(store, repo.path, render=None).commits == 2
        run_ingest(rendered, repo.path, render=True)
        assert _declared(store, later[-1]) == _declared(rendered, later[-1])

        off = run_ingest(store, repo.path, render=False)
        assert [n.location for n in off.notices] == ["render"] and off.commits == 4
        run_ingest(files_only, repo.path, render=False)
        for sha in [*first, *later]:
            assert _declared(store, sha) == _declared(files_only, sha)
    finally:
        store.close()
        files_only.close()
        rendered.close()


def test_collector_says_which_reading_it_used(tmp_path: Path, store: LineageStore) -> None:
    """The checkpoint a later run follows when --render is omitted."""
    repo = GitRepoBuilder(tmp_path / "r")
    _history(repo)
    with GitCollector(str(repo.path), render=True) as collector:
        ingest_git(store, collector)
    with GitCollector(str(repo.path), render=None) as collector:
        ingest_git(store, collector)
        assert collector.render is True
    assert store.get_checkpoint(f"git:{repo.path.resolve()}", "render") == "1"


def _cut_short(store: LineageStore, location: Path, render: bool | None, after: int) -> None:
    """A run killed after ``after`` items: what was stored before stays, as a crash would leave it."""
    with GitCollector(str(location), render=render) as collector:
        plan = collector.plan(checkpoints_of(store, collector.source))
        collector.declared_in_store = lambda sha: declared_at(store, sha).objects

        def items() -> Iterator[Item]:
            for n, item in enumerate(collector.items(plan)):
                if n == after:
                    raise KeyboardInterrupt
                yield item

        with pytest.raises(KeyboardInterrupt):
            ingest_records(store, items(), batch_size=1, writer=GIT_WRITER)


@pytest.mark.parametrize("was", [None, False], ids=["fresh-store", "switched-from-files"])
def test_rendering_run_cut_short_goes_on_rendering(tmp_path: Path, was: bool | None) -> None:
    """Killed part-way, a --render run (on a fresh store, or re-reading after the switch) is finished by
    the next run without the flag: it goes on rendering from the last commit stored."""
    repo = GitRepoBuilder(tmp_path / "r")
    first, _ = _history(repo)
    later = _later(repo)
    store, rendered = _fresh(tmp_path, "s.db"), _fresh(tmp_path, "rendered.db")
    try:
        if was is not None:
            run_ingest(store, repo.path, render=was)
        _cut_short(store, repo.path, render=True, after=12)  # inside the second commit
        resumed = store.get_checkpoint(f"git:{repo.path.resolve()}", "resume")
        assert resumed == first[0], "the cut fell after the first commit was stored"
        finished = run_ingest(store, repo.path, render=None)
        assert finished.commits == 3 and not finished.notices
        run_ingest(rendered, repo.path, render=True)
        for sha in [*first, *later]:
            assert _declared(store, sha) == _declared(rendered, sha)
        assert store.get(RAW_WEB) is None or was is False  # only the files reading ever declared it
    finally:
        store.close()
        rendered.close()
