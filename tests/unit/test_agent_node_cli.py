"""``liubai agent --ebpf`` refuses what it cannot use in one line, before loading anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from liubai.api.cli.main import app

runner = CliRunner()


def _agent(tmp_path: Path, *args: str) -> tuple[int, str]:
    argv = ["agent", "--server", "http://127.0.0.1:9", "--state-dir", str(tmp_path), "--ebpf", *args]
    result = runner.invoke(app, argv, env={"COLUMNS": "400", "NO_COLOR": "1"})
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--namespace-of", "no-equals-sign"), "--namespace-of 'no-equals-sign': want POD_UID=NAMESPACE"),
        (("--exclude-path", "relative/dir"), "excluded path prefix 'relative/dir' is not absolute"),
    ],
)
def test_bad_node_options_are_one_line_naming_the_option(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    code, err = _agent(tmp_path, *args)
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0]


def test_without_root_the_node_mode_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    code, err = _agent(tmp_path)
    assert code == 1 and "needs root" in err and len(err.strip().splitlines()) == 1
