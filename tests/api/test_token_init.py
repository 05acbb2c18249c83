"""``liubai token init``: the first admin token of a fresh server, created once however often it runs."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from liubai.api.auth import TokenStore


def _init(tokens: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "liubai.api.cli.main", "token", "init", "--tokens", str(tokens), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_init_prints_an_admin_token_once_and_later_runs_change_nothing(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.db"
    first = _init(tokens, "--name", "first-admin")
    assert first.returncode == 0, first.stderr
    plain = first.stdout.strip()
    store = TokenStore(tokens)
    try:
        principal = store.verify(plain)
        assert principal.name == "first-admin" and principal.allows("ingest") and principal.allows("read")
        again = _init(tokens)
        assert again.returncode == 0 and again.stdout == ""
        assert "already exists" in again.stderr
        assert len(store.list()) == 1
    finally:
        store.close()


def test_init_creates_one_when_only_non_admin_or_revoked_admin_tokens_exist(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.db"
    store = TokenStore(tokens)
    try:
        store.create("ci", ["read", "ingest"])
        old, _ = store.create("old-admin", ["admin"])
        store.revoke(old.id)
        made = _init(tokens)
        assert made.returncode == 0, made.stderr
        assert "admin" in store.verify(made.stdout.strip()).scopes
        assert [t.name for t in store.list() if t.revoked_at is None and "admin" in t.scopes] == ["admin"]
    finally:
        store.close()


def test_concurrent_first_starts_create_exactly_one_admin(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.db"
    TokenStore(tokens).close()  # the file exists, as a volume's would after a half-finished start
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: _init(tokens), range(4)))
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    printed = [r.stdout.strip() for r in runs if r.stdout.strip()]
    assert len(printed) == 1
    store = TokenStore(tokens)
    try:
        assert len(store.list()) == 1 and store.verify(printed[0]).allows("admin")
    finally:
        store.close()


def test_init_on_an_unwritable_token_file_fails_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    out = _init(blocker / "tokens.db")
    assert out.returncode != 0 and out.stdout == ""
    assert "cannot open token file" in out.stderr and "Traceback" not in out.stderr
