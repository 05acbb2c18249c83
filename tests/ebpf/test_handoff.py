"""``liubai trace`` and the hand-off: what a handed-off run must equal (``_facts``, used with the real
node agent in tests/node/test_node_handoff.py), and tracing on its own where no agent listens.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ebpf.conftest import Graph, clean_env, liubai, read_graph

pytestmark = [pytest.mark.ebpf, pytest.mark.usefixtures("kernel")]

SCRIPT = (
    'cat in.txt > out.txt\n/usr/bin/python3 -c \'open("py.txt", "w").write("p")\'\n./missing-tool\nexit 3\n'
)


def _facts(g: Graph) -> set[tuple[object, ...]]:
    """The run's processes and files, without pids or times: what must not depend on who traced."""
    facts: set[tuple[object, ...]] = set()
    procs = g.of_kind("proc")
    argv = {i: tuple(p["argv"] or ()) for i, p in procs.items()}
    for i, p in procs.items():
        # with why an image has no hash, so that a difference says it
        facts.add(("proc", argv[i], p["binary"], p["exit_code"], p["exec_failed"], p["uid"], p["hash_note"]))
        facts.update(("child_of", argv[i], argv[d]) for d, _ in g.out(i, "CHILD_OF"))
        for kind in ("READ", "WROTE", "EXECUTED"):
            for d, props in g.out(i, kind):
                path = d.split(":", 2)[2]
                if not path.startswith(("/usr/lib", "/lib", "/etc/ld.so")):  # the loader's own reads vary
                    facts.add((kind, argv[i], path, props.get("sha256")))
    return facts


def test_without_an_agent_liubai_traces_the_command_itself(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    res = liubai(
        ["--store", db, "trace", "--", "sh", "-c", "exit 5"],
        tmp_path,
        clean_env(LIUBAI_AGENT_SOCKET=str(tmp_path / "no-agent.sock")),
    )
    assert res.returncode == 5, res.stderr
    assert len(read_graph(db).of_kind("proc")) == 1
