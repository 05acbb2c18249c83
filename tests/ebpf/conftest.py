"""Shared pieces of the eBPF tests: the liubai command, a kernel check, and the graph read back."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests._real import missing

LIUBAI = str(Path(sys.executable).with_name("liubai"))
CLEAN_PATH = "/usr/bin:/bin"


def clean_env(**extra: str) -> dict[str, str]:
    """A run environment without CI commit variables or audit ids leaking in from the outside."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CI_COMMIT_SHA", "GITHUB_SHA", "X_GITOPS_AUDIT_ID", "TRACEPARENT", "LIUBAI_STORE")
    }
    env["PATH"] = CLEAN_PATH
    env["LC_ALL"] = "C"
    env.update(extra)
    return env


def liubai(
    args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LIUBAI, *args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def kernel() -> None:
    """Skip (or fail where LIUBAI_REQUIRE_EBPF=1) unless BPF tracing can really run here."""
    from liubai.ebpf.loader import preflight

    problems = preflight()
    if problems:
        missing("ebpf", "; ".join(problems))


@dataclass
class Graph:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    def out(self, src: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(d, p) for s, k, d, p in self.edges if s == src and k == kind]

    def into(self, dst: str, kind: str) -> list[str]:
        return [s for s, k, d, _ in self.edges if d == dst and k == kind]

    def of_kind(self, prefix: str) -> dict[str, dict[str, Any]]:
        return {i: p for i, p in self.nodes.items() if i.startswith(prefix + ":")}


def read_graph(url: str) -> Graph:
    from liubai.lineage.store import open_store

    store = open_store(url)
    try:
        g = Graph()
        for batch in store.iter_nodes():
            for n in batch:
                g.nodes[n.id] = dict(n.props)
        for ebatch in store.iter_edges():
            for e in ebatch:
                g.edges.append((e.src, str(e.kind), e.dst, dict(e.props)))
        return g
    finally:
        store.close()
