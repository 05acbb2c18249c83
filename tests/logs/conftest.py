"""Fixtures for the log-lineage tests: a real git repo's commits, a local SLS server, SQLite stores."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from liubai.lineage.store import LineageStore, open_store
from tests._real import missing
from tests.sls_server import SlsServer

KEY_ID = "test-key-id"
KEY_SECRET = "test-key-secret"
PROJECT = "demo"
LOGSTORE = "app"


@pytest.fixture(scope="session")
def commits(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Shas of a real repository built with the git CLI (four commits touching a manifest)."""
    if shutil.which("git") is None:
        missing("git", "the git CLI is not on PATH")
    repo = tmp_path_factory.mktemp("gitops")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q", "-b", "main")
    shas = []
    for i in range(4):
        (repo / "deploy.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  replicas: {i + 1}\n"
        )
        git("add", "deploy.yaml")
        git("commit", "-q", "-m", f"scale to {i + 1}")
        shas.append(git("rev-parse", "HEAD").strip())
    return shas


@pytest.fixture
def sls_server() -> Iterator[SlsServer]:
    with SlsServer(PROJECT, KEY_ID, KEY_SECRET) as server:
        server.create_logstore(LOGSTORE, shards=2)
        yield server


@pytest.fixture
def sls_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Credentials in the environment, the way the CLI reads them."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY_SECRET)
    monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)
    return {**os.environ}


@pytest.fixture
def new_store(tmp_path: Path) -> Iterator[Any]:
    """A factory of fresh SQLite stores (closed at the end)."""
    opened: list[LineageStore] = []

    def make(name: str) -> LineageStore:
        store = open_store(f"sqlite:///{tmp_path / name}.db")
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()
