"""A program the dynamic loader runs (``ld.so /bin/true``) is EXECUTED by that process, and says how it
was known; a loader that only lists (``--list``) runs nothing."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from tests._real import missing
from tests.ebpf.conftest import liubai, read_graph

pytestmark = pytest.mark.usefixtures("kernel")


def _loader() -> str:
    found = sorted(glob.glob("/lib64/ld-linux-*.so.*") + glob.glob("/lib/ld-linux-*.so.*"))
    if not found:
        missing("ebpf", "no glibc dynamic loader (/lib64/ld-linux-*.so.*) to run a program with")
    return found[0]


def test_program_run_by_the_loader_is_executed_via_ld_so(tmp_path: Path) -> None:
    loader = _loader()
    true = os.path.realpath("/bin/true")
    db = f"sqlite:///{tmp_path / 'ldso.db'}"
    script = f"{loader} {true}; {loader} --list {true} > /dev/null; exit 0"
    res = liubai(["--store", db, "trace", "--", "/bin/sh", "-c", script], cwd=tmp_path)
    assert res.returncode == 0, res.stderr

    g = read_graph(db)
    runs = {i: p for i, p in g.of_kind("proc").items() if p["binary"] == loader}
    by_argv = {tuple(p["argv"]): i for i, p in runs.items()}
    ran, listed = by_argv[(loader, true)], by_argv[(loader, "--list", true)]

    def executed(proc: str) -> dict[str, dict[str, object]]:
        return {g.nodes[d]["path"]: props for d, props in g.out(proc, "EXECUTED")}

    assert executed(ran)[true].get("via") == "ld.so", executed(ran)
    assert loader in executed(ran)  # the image the kernel ran, as before
    assert true not in executed(listed), executed(listed)  # --list maps it but never runs it
    assert not any(p.get("via") for p in executed(listed).values())
