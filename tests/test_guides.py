"""Every shell block of the deployment guides runs, in a fresh folder with this checkout's CLI and an
SQLite store. A block that needs something from outside is marked by the comment before it,
``<!-- needs: WHAT -->``: ``ebpf`` blocks run where tracing works (root, tracefs, bcc; a failure under
LIUBAI_REQUIRE_EBPF=1 otherwise), the others are skipped with their reason. YAML blocks must parse, and
every ``liubai`` call in them must exist in the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._real import missing
from tests.deploy_spec import ROOT, check_cli, invocations

GUIDES = ("deploy.md", "ci.md", "gitops.md")
FENCE = re.compile(r"(?:<!--\s*needs:\s*([\w-]+)\s*-->\s*\n)?```(\w+)\n(.*?)\n```", re.S)


@dataclass(frozen=True)
class Block:
    guide: str
    line: int
    lang: str
    needs: str | None
    text: str

    @property
    def id(self) -> str:
        return f"{self.guide}:{self.line}"


def blocks(guide: str) -> list[Block]:
    text = (ROOT / "docs" / guide).read_text()
    return [
        Block(
            guide,
            text.count("\n", 0, m.start(2 if m.group(1) is None else 1)) + 1,
            m.group(2),
            m.group(1),
            m.group(3),
        )
        for m in FENCE.finditer(text)
    ]


ALL = [b for g in GUIDES for b in blocks(g)]
SHELL = [b for b in ALL if b.lang in {"sh", "bash"}]
YAML = [b for b in ALL if b.lang == "yaml"]


def _env(tmp: Path) -> dict[str, str]:
    bin_dir = tmp / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "liubai"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m liubai.api.cli.main "$@"\n')
    shim.chmod(0o755)
    return {
        "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp),
        "LC_ALL": "C",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "LIUBAI_STORE": f"sqlite:///{tmp / 'guide.db'}",
    }


def _ensure(block: Block) -> None:
    if block.needs is None:
        return
    if block.needs == "ebpf":
        from liubai.ebpf.loader import preflight

        problems = preflight()
        if problems:
            missing("ebpf", "; ".join(problems))
        return
    pytest.skip(f"{block.id} needs {block.needs}")


def _run(block: Block, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.text],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.parametrize("block", SHELL, ids=[b.id for b in SHELL])
def test_shell_block_runs(block: Block, tmp_path: Path) -> None:
    """As a reader goes through a guide: the runnable blocks before this one first, in the same folder
    (a later block may read what an earlier one wrote)."""
    _ensure(block)
    env = _env(tmp_path)
    for earlier in blocks(block.guide):
        if earlier.line >= block.line:
            break
        if earlier.lang in {"sh", "bash"} and earlier.needs is None:
            done = _run(earlier, tmp_path, env)
            assert done.returncode == 0, f"{earlier.id} (before {block.id}): {done.stderr[-3000:]}"
    out = _run(block, tmp_path, env)
    assert out.returncode == 0, (
        f"{block.id} exited {out.returncode}:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    )


def _liubai_calls(value: Any) -> list[list[str]]:
    if isinstance(value, dict):  # names and descriptions are prose, not commands
        return [c for k, v in value.items() if k not in {"name", "description"} for c in _liubai_calls(v)]
    if isinstance(value, list):
        return [c for v in value for c in _liubai_calls(v)]
    if isinstance(value, str):
        lines = (re.sub(r"\S*/bin/liubai\b", "liubai", line) for line in value.splitlines())
        return [c for line in lines if re.search(r"(^|\s)liubai\s", line) for c in invocations(line)]
    return []


@pytest.mark.parametrize("block", YAML, ids=[b.id for b in YAML])
def test_yaml_block_parses_and_names_real_commands(block: Block) -> None:
    docs = [d for d in yaml.safe_load_all(block.text) if d is not None]
    assert docs, block.id
    for args in _liubai_calls(docs):
        check_cli(args)


def test_every_guide_has_runnable_blocks_and_marks_only_known_needs() -> None:
    for guide in GUIDES:
        runnable = [b for b in blocks(guide) if b.lang in {"sh", "bash"} and b.needs in {None, "ebpf"}]
        assert runnable, guide
    assert {b.needs for b in ALL} <= {None, "ebpf", "docker", "kubernetes", "ci-runner"}


def test_the_yaml_blocks_call_the_commands_the_guides_are_about() -> None:
    calls = [args for b in YAML for args in _liubai_calls(list(yaml.safe_load_all(b.text)))]
    assert {a[0] for a in calls} >= {"trace", "agent", "annotate"}
