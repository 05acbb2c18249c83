"""Ground truth: a workload of >= 200 processes under liubai and under ``strace -f`` report the same
successful execs and opens (recall 100%), liubai reports nothing from a busy process outside the tree,
and no event is lost."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from liubai.collector.runs import access_mode, resolve_path
from tests._real import missing
from tests.ebpf.conftest import clean_env, liubai, read_graph

pytestmark = [pytest.mark.ebpf, pytest.mark.usefixtures("kernel")]

ROUNDS = 70  # 3 processes per round, plus the root and a Python child: 212 processes
WORKLOAD = f"""\
i=0
while [ $i -lt {ROUNDS} ]; do
  i=$((i+1))
  cat in.txt > out_$i.txt
  head -c 5 out_$i.txt > /dev/null
  wc -c in.txt out_$i.txt > count_$i.txt
done
/usr/bin/python3 -S -c 'open("py.txt", "w").write("x")'
"""
NOISE = """\
import os, subprocess, sys, time
end = time.time() + float(sys.argv[2])
while time.time() < end:
    open(sys.argv[1]).read()
    subprocess.run(["/usr/bin/cat", sys.argv[1]], stdout=subprocess.DEVNULL)
"""

_STR = r'"((?:[^"\\]|\\.)*)"'
_EXEC = re.compile(rf"^execve\({_STR}, \[(.*?)\](?:\.\.\.)?, .*\)\s+= 0$")
_OPEN = re.compile(rf"^openat\((AT_FDCWD|-?\d+), {_STR}, ([A-Z0-9_|]+)(?:, \d+)?\)\s+= (\d+)$")
_FLAG_BITS = {"O_WRONLY": os.O_WRONLY, "O_RDWR": os.O_RDWR, "O_CREAT": os.O_CREAT, "O_TRUNC": os.O_TRUNC}


def _unescape(s: str) -> str:
    return s.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _strace_truth(
    work: Path, out: Path
) -> tuple[Counter[str], Counter[tuple[str, ...]], Counter[tuple[str, str]], int]:
    """Successful execs (binaries, argvs) and opens (path, mode) that strace saw, and the process count."""
    strace = shutil.which("strace")
    if strace is None:
        missing("ebpf", "strace (the ground truth) is not installed: apt-get install strace")
    subprocess.run(
        [
            strace,
            "-f",
            "-ff",
            "-qq",
            "-s",
            "4096",
            "-e",
            "trace=execve,openat",
            "-o",
            str(out / "st"),
            "sh",
            "work.sh",
        ],
        cwd=work,
        env=clean_env(),
        check=True,
        timeout=240,
    )
    binaries: Counter[str] = Counter()
    argvs: Counter[tuple[str, ...]] = Counter()
    opens: Counter[tuple[str, str]] = Counter()
    files = list(out.glob("st.*"))
    for f in files:
        last_argv: tuple[str, ...] | None = None
        for line in f.read_text(errors="surrogateescape").splitlines():
            if m := _EXEC.match(line):
                binaries[resolve_path(_unescape(m.group(1)), str(work)) or ""] += 1
                last_argv = tuple(_unescape(a) for a in re.findall(_STR, m.group(2)))
            elif m := _OPEN.match(line):
                dirfd, path, flag_text = m.group(1), _unescape(m.group(2)), m.group(3)
                assert dirfd == "AT_FDCWD" or path.startswith("/"), f"dirfd-relative open in workload: {line}"
                flags = sum(bit for name, bit in _FLAG_BITS.items() if name in flag_text.split("|"))
                opens[(resolve_path(path, str(work)) or "", access_mode(flags))] += 1
        if last_argv is not None:
            argvs[last_argv] += 1
    return binaries, argvs, opens, len(files)


def test_liubai_matches_strace_on_200_processes(tmp_path: Path) -> None:
    work = (tmp_path / "work").resolve()
    work.mkdir()
    (work / "in.txt").write_text("ground truth\n")
    (work / "work.sh").write_text(WORKLOAD)
    noise_file = tmp_path / "outside-the-tree.txt"
    noise_file.write_text("noise")
    db = f"sqlite:///{tmp_path / 'truth.db'}"

    noise = subprocess.Popen([sys.executable, "-c", NOISE, str(noise_file), "120"], env=clean_env())
    try:
        res = liubai(["--store", db, "trace", "--commit", "ab" * 20, "--", "sh", "work.sh"], cwd=work)
    finally:
        noise.kill()
        noise.wait()
    assert res.returncode == 0, res.stderr

    st_dir = tmp_path / "strace"
    st_dir.mkdir()
    st_binaries, st_argvs, st_opens, st_procs = _strace_truth(work, st_dir)
    assert st_procs >= 200

    g = read_graph(db)
    ((run_id, run),) = g.of_kind("run").items()
    assert run["lost_events"] == 0
    procs = g.of_kind("proc")
    assert set(procs) == {d for d, _ in g.out(run_id, "RAN")}
    assert len(procs) == st_procs  # the same tree, nothing from the noise process
    binaries: Counter[str] = Counter()
    opens: Counter[tuple[str, str]] = Counter()
    argvs: Counter[tuple[str, ...]] = Counter()
    for _src, kind, dst, props in g.edges:
        path = dst.split(":", 2)[2] if dst.startswith("file:") else ""
        if kind == "EXECUTED":
            binaries[path] += int(props["count"])
        elif kind in ("READ", "WROTE"):
            opens[(path, "read" if kind == "READ" else "write")] += int(props["count"])
    for pid, p in procs.items():
        if g.out(pid, "EXECUTED"):
            argvs[tuple(p["argv"])] += 1

    missed = st_opens - opens
    assert not missed, f"strace saw opens liubai missed: {list(missed.items())[:10]}"
    extra = opens - st_opens
    assert not extra, f"liubai reports opens strace did not see: {list(extra.items())[:10]}"
    assert binaries == st_binaries
    assert argvs == st_argvs
    assert not any(str(noise_file) in path for path, _ in opens)
    assert sum(1 for p in procs.values() if p["argv"][:1] == ["cat"]) == ROUNDS
