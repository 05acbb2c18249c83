"""bench/run_all.py rewrites docs/performance.md, but keeps its hand-kept section: code comments point there
for the figures behind their choices, so a rerun of the benchmarks must not drop them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

RUN_ALL = Path(__file__).resolve().parents[2] / "bench" / "run_all.py"


def _run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_all", RUN_ALL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hand_kept_section_is_carried_over_and_only_it(tmp_path: Path) -> None:
    run_all = _run_all()
    out = tmp_path / "performance.md"
    kept = f"{run_all.HAND_KEPT}\n\n| where | measured |\n| --- | --- |\n| x.py | 8% |\n"
    out.write_text(f"# Performance\n\n## log_ingest\n\nold figures\n\n{kept}", encoding="utf-8")
    assert run_all._hand_kept(out) == kept
    assert run_all._hand_kept(tmp_path / "missing.md") == ""
    out.write_text("# Performance\n\n## log_ingest\n", encoding="utf-8")
    assert run_all._hand_kept(out) == ""


def test_the_repository_report_has_the_section() -> None:
    run_all = _run_all()
    assert run_all.HAND_KEPT in (RUN_ALL.parents[1] / "docs" / "performance.md").read_text(encoding="utf-8")
