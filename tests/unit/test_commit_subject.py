"""The commit-msg hook (``scripts/check-commit-subject``): a subject past 72 characters stops the commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check-commit-subject"


def _check(tmp_path: Path, message: str) -> subprocess.CompletedProcess[str]:
    msg = tmp_path / "COMMIT_EDITMSG"
    msg.write_text(message, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(msg)], capture_output=True, text=True, check=False
    )


def test_a_subject_up_to_72_characters_passes_and_a_longer_one_stops(tmp_path: Path) -> None:
    assert _check(tmp_path, "s" * 72 + "\n\n" + "a body line may be long " * 10).returncode == 0
    long = _check(tmp_path, "s" * 73 + "\n")
    assert long.returncode == 1
    assert "73 characters, at most 72" in long.stderr
    merge = f"Merge remote-tracking branch 'origin/{'b' * 80}' into main\n"  # git's words, not the author's
    assert _check(tmp_path, merge).returncode == 0


def test_git_comments_and_blank_lines_are_not_the_subject(tmp_path: Path) -> None:
    comment = "# Please enter the commit message for your changes. " + "x" * 80
    assert _check(tmp_path, f"\n{comment}\nshort subject\n").returncode == 0
    assert _check(tmp_path, f"{comment}\n\n{'s' * 80}\n").returncode == 1


def test_the_hook_runs_on_the_commit_message() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    hook = hooks["commit-subject"]
    assert (hook["entry"], hook["stages"]) == ("scripts/check-commit-subject", ["commit-msg"])
    assert "commit-msg" in config["default_install_hook_types"]
