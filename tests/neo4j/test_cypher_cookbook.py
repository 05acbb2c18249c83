"""docs/cypher.md as written: every ``cypher`` block runs against a real Neo4j holding the graph ``liubai demo
--replay`` ingests through the CLI (git, a recorded pipeline run, a recorded cluster and node agent, logs),
with the parameters the doc gives, and returns the rows below.

One addition to the demo, through the same ``liubai ingest events``: the recorded run again on another
host, with its ``sha256sum`` failing, so the failed-process recipe has a failure to find."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import neo4j
import pytest
from neo4j.time import DateTime

from liubai.api.demo_cluster import RECORDED_CLUSTER, recorded_pods_created
from tests.neo4j_server import driver_args, wipe

pytestmark = [pytest.mark.neo4j, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cypher.md"
RECORDED_RUN = ROOT / "api" / "demo_data" / "recorded_run.jsonl"
_PARAM = re.compile(r"^:param (\w+) => '([^']*)'", re.M)

BUNDLE = "/tmp/liubai-demo/shop-gitops/services/payments/dist/payments.bundle"
# The replayed demo's service logs from when the recorded deploy's Pods were created, ten seconds apart.
_RAN = recorded_pods_created(RECORDED_CLUSTER)
PAYMENTS_LOG = [
    ((_RAN + timedelta(seconds=10 * i)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"), level, message)
    for i, (level, message) in enumerate(
        [
            ("INFO", "payments starting"),
            ("INFO", "connected to ledger"),
            ("WARN", "slow charge: 812ms"),
            ("ERROR", "charge failed: card declined <script>alert(1)</script>"),
            ("INFO", "charge ok"),
        ]
    )
]
EXPECTED: dict[str, list[dict[str, Any]]] = {
    "The workloads a commit declared": [
        {
            "kind": "Deployment",
            "namespace": "shop",
            "name": "payments",
            "manifest": "apps/payments/payments.yaml",
        },
        {
            "kind": "Service",
            "namespace": "shop",
            "name": "payments",
            "manifest": "apps/payments/payments.yaml",
        },
    ],
    "The pods running what a commit declared": [
        {"workload": "payments", "pod": "payments-5dfc65c77-44bxz", "phase": "Running"},
        {"workload": "payments", "pod": "payments-5dfc65c77-njndv", "phase": "Pending"},
    ],
    "Failed processes of a commit's pipeline runs": [
        {
            "host": "ci-runner",
            "pid": 4336,
            "comm": "sha256sum",
            "argv": ["sha256sum", "dist/payments.bundle"],
            "exit_code": 1,
        }
    ],
    "Files a commit's pipeline runs wrote": [
        {"path": BUNDLE, "written_by": "sh"},
        {"path": BUNDLE + ".sha256", "written_by": "sh"},
        # compileall writes the .pyc aside and renames it into place: both names are written
        {
            "path": "/tmp/liubai-demo/shop-gitops/services/payments/src/payments/__pycache__/"
            "__init__.cpython-311.pyc",
            "written_by": "python3",
        },
        {
            "path": "/tmp/liubai-demo/shop-gitops/services/payments/src/payments/__pycache__/"
            "__init__.cpython-311.pyc.140503984713584",
            "written_by": "python3",
        },
    ],
    "The log lines of a trace, in time order": [
        {"time": t, "level": level, "service": "payments", "message": m} for t, level, m in PAYMENTS_LOG
    ],
    "From a commit to its error log lines": [
        {"message": "charge failed: card declined <script>alert(1)</script>", "hops": 3},
        {"message": "ledger refused the debit: card declined", "hops": 4},  # by its resource, through the Pod
    ],
    "The processes of a pod's containers": [
        {"container": "payments", "image": "registry.example/payments:66120e944ddb", "pid": pid, "argv": argv}
        for pid, argv in (
            (15331, ["sleep", "0.5"]),
            (15338, ["cat", "/data/config.txt"]),
            (15339, ["cat", "/tmp/ledger"]),
        )
    ],
    "Commits in a time window": [
        {
            "sha": "bbbd1012b6ea",
            "subject": "Deploy payments built from 66120e944ddb (#7)",
            "hour": 4,
        },
        {
            "sha": "99815f78904c",
            "subject": "web: scale to 3 and bump to 1.1.0",
            "hour": 5,
        },
    ],
}


def _as_written(value: Any) -> Any:
    """A ``DATETIME`` in a row as the UTC text the collectors wrote, for comparing with the rows above."""
    if isinstance(value, DateTime):
        return value.to_native().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def _recipes() -> list[tuple[str, str]]:
    """(heading, query) of every ``cypher`` block, in the doc's order."""
    recipes: list[tuple[str, str]] = []
    heading = ""
    lines = iter(DOC.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if line.startswith("### "):
            heading = line[4:].strip()
        elif line.strip() == "```cypher":
            body = []
            for inner in lines:
                if inner.strip() == "```":
                    break
                body.append(inner)
            recipes.append((heading, "\n".join(body)))
    return recipes


def _cli(url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "liubai.api.cli.main", "--store", url, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300", "LIUBAI_STORE": ""},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _failing_rerun(path: Path) -> Path:
    """The recorded run once more, its sha256sum exiting 1, with no trace or audit id of its own."""
    out = []
    for line in RECORDED_RUN.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event["type"] == "run":
            event.pop("trace_id", None)
            event.pop("audit_id", None)
        if event["type"] == "exit" and event.get("comm") == "sha256sum":
            event["exit_code"] = 1
        out.append(json.dumps(event))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo_graph(neo4j_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    wipe(neo4j_url)
    work = tmp_path_factory.mktemp("cookbook")
    _cli(neo4j_url, "demo", "--dir", str(work / "demo"), "--no-serve", "--replay")
    _cli(neo4j_url, "ingest", "events", str(_failing_rerun(work / "rerun.jsonl")), "--host", "ci-runner")
    yield neo4j_url
    wipe(neo4j_url)


def test_every_recipe_has_its_expected_rows_and_the_demo_parameters() -> None:
    assert [h for h, _ in _recipes()] == list(EXPECTED)
    assert set(_PARAM.findall(DOC.read_text(encoding="utf-8"))) >= {("pod", "payments-5dfc65c77-44bxz")}


@pytest.mark.parametrize(("heading", "query"), _recipes(), ids=[h for h, _ in _recipes()])
def test_recipe_returns_its_rows(demo_graph: str, heading: str, query: str) -> None:
    params = dict(_PARAM.findall(DOC.read_text(encoding="utf-8")))
    uri, auth = driver_args(demo_graph)
    with neo4j.GraphDatabase.driver(uri, auth=auth, notifications_min_severity="OFF") as driver:
        records, _, _ = driver.execute_query(query, params, database_="neo4j")
    assert [{k: _as_written(v) for k, v in r.data().items()} for r in records] == EXPECTED[heading]
