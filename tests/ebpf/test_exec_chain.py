"""Within one process's chain of execs, each file access is attributed to the image that made it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.ebpf.conftest import liubai, read_graph

pytestmark = pytest.mark.usefixtures("kernel")


def test_each_access_carries_the_exec_id_of_its_image(tmp_path: Path) -> None:
    work = tmp_path.resolve()
    (work / "by-shell.txt").write_text("a\n")
    (work / "by-cat.txt").write_text("b\n")
    cat = shutil.which("cat", path="/usr/bin:/bin")
    assert cat is not None
    db = f"sqlite:///{work / 'chain.db'}"
    # one process: the shell reads a file, then becomes cat, which reads another
    script = f"read x < by-shell.txt; exec {cat} by-cat.txt"
    res = liubai(["--store", db, "trace", "--", "/bin/sh", "-c", script], cwd=work)
    assert res.returncode == 0, res.stderr

    g = read_graph(db)
    [(pid, proc)] = [(i, p) for i, p in g.of_kind("proc").items() if p["binary"] == cat]
    images = {x["id"]: x["binary"] for x in proc["execs"]}
    assert list(images.values()) == ["/bin/sh", cat], images  # one process, two images
    read = {g.nodes[d]["path"]: props for d, props in g.out(pid, "READ")}
    assert [images[i] for i in read[str(work / "by-shell.txt")]["exec_ids"]] == ["/bin/sh"], read
    assert [images[i] for i in read[str(work / "by-cat.txt")]["exec_ids"]] == [cat], read
