"""Fidelity: ``strace -f -y`` run inside ``liubai trace`` (so pids match one to one) is the ground truth
for every (process, path, access mode) and (process, executed image, argv) of workloads built to break a
tracer: descriptor games, ``..`` through symlinks, long paths, creat/openat2/open_by_handle_at,
fexecve of a memfd, a binary replaced while running, a ``#!`` script, 200 arguments, lazily paged argv,
a daemon outliving the root, credential changes and io_uring.

Precision counts only what liubai states as known (exact paths, or the kernel's read back while the
process lived); what it marks walked (resolved through the symlinks of after the process had gone),
lexical or unresolved is the "uncertain" column, never silently wrong. An uncertain record covers a
truth pair only if it names that file as far as liubai could: recall never borrows from a doubt about
another file of the same process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest

from liubai.collector.runs import access_mode
from tests._real import missing
from tests.ebpf.conftest import Graph, liubai, read_graph

pytestmark = [pytest.mark.ebpf, pytest.mark.usefixtures("kernel")]

WORKLOADS = Path(__file__).with_name("workloads")
LONG = "/".join(["d" * 200] * 3)  # a 602-byte relative path, past any 255-byte cut
RENAME_AT = (  # a rename relative to a directory descriptor
    "import os; d = os.open('real', os.O_RDONLY); open('real/r2', 'w').close(); "
    "os.rename('r2', 'moved2', src_dir_fd=d, dst_dir_fd=d)"
)
SCRIPT = f"""\
./fdgames ./afterexec
./execs
./threads 7
./setid
mkdir -p real/sub && echo r > real/f && echo l > f && ln -sfn real/sub link
cat link/../f > /dev/null
mkdir -p {LONG} && echo deep > {LONG}/file && (cd {LONG} && cat file > copy)
/usr/bin/true $(seq 1 200)
printf '#!/bin/sh\\nexit 0\\n' > script.sh; chmod +x script.sh; sleep 0.1; ./script.sh
cp /usr/bin/sleep mysleep; sleep 0.1; (./mysleep 0.8 & sleep 0.3; cp /usr/bin/true newbin; mv newbin mysleep; wait)
sh -c 'kill -TERM $$'; sh -c 'exit 3'; (sleep 5 & kill -KILL $!; wait) || true
echo a > moved.tmp && mv moved.tmp moved
python3 -c "{RENAME_AT}"
(sleep 1; cat f > daemon-read) &
exit 0
"""
_STR = r'"((?:[^"\\]|\\.)*)"'
_RENAME = re.compile(rf"^rename\({_STR}, {_STR}\)\s+= 0$")
_RENAME_AT = re.compile(rf"^renameat2?\(\w+<(.*?)>, {_STR}, \w+<(.*?)>, {_STR}(?:, (\w+))?\)\s+= 0$")
_OPEN = re.compile(r"^(openat|open|creat|openat2|open_by_handle_at)\((.*)\)\s+= (\d+)<(.*)>$")
_EXEC = re.compile(rf"^execve\({_STR}, \[(.*?)\](?:\.\.\.)?, .*\)\s+= 0$")
_EXECAT = re.compile(rf"^execveat\(\d+<(.*?)>(\(deleted\))?, {_STR}, \[(.*?)\], .*\)\s+= 0$")
_HANDLE = re.compile(r"^open_by_handle_at\(.*\)\s+= (\d+)$")  # strace names no file for a handle
_CLOSE = re.compile(r"^close\((\d+)<(.*)>\)\s+= 0$")
_EXIT = re.compile(r"^\+\+\+ (exited with (\d+)|killed by (SIG\w+)) .*\+\+\+$")
_FLAG = {"O_WRONLY": os.O_WRONLY, "O_RDWR": os.O_RDWR, "O_CREAT": os.O_CREAT, "O_TRUNC": os.O_TRUNC}
Pair = tuple[int, str, str]


def _unescape(s: str) -> str:
    return s.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _real(path: str, work: Path) -> str:
    if path.startswith("/memfd:"):
        return path
    return os.path.realpath(path if path.startswith("/") else work / path)


def _build(work: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        missing("ebpf", "gcc (to build the fidelity workloads) is not installed: apt-get install gcc")
    for src in WORKLOADS.glob("*.c"):
        subprocess.run([gcc, "-O1", "-pthread", "-o", str(work / src.stem), str(src)], check=True)


def _truth(
    st_dir: Path, work: Path
) -> tuple[set[Pair], set[Pair], set[tuple[int, str, tuple[str, ...]]], dict[int, int]]:
    """What strace saw: opens (and renames, as writes of the new name), the opens made through a handle
    (no name given), execs and exits."""
    opens: set[Pair] = set()
    by_handle: set[Pair] = set()
    execs: set[tuple[int, str, tuple[str, ...]]] = set()
    exits: dict[int, int] = {}
    for f in st_dir.glob("st.*"):
        pid = int(f.suffix[1:])
        handles: dict[str, str] = {}  # descriptor -> access mode of an open by handle, until its close
        for line in f.read_text(errors="surrogateescape").splitlines():
            if m := _HANDLE.match(line):
                handles[m.group(1)] = access_mode(_flags(line))
            elif (m := _CLOSE.match(line)) and m.group(1) in handles:
                pair = (pid, _real(m.group(2).removesuffix(" (deleted)"), work), handles.pop(m.group(1)))
                opens.add(pair)
                by_handle.add(pair)
            elif m := _OPEN.match(line):
                call, args, target = m.group(1), m.group(2), m.group(4)
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC if call == "creat" else _flags(args)
                if not target.startswith(("pipe:", "socket:", "anon_inode:")):
                    pair = (pid, _real(target.removesuffix(" (deleted)"), work), access_mode(flags))
                    opens.add(pair)
                    if call == "open_by_handle_at":
                        by_handle.add(pair)
            elif m := _EXEC.match(line):
                argv = tuple(_unescape(a) for a in re.findall(_STR, m.group(2)))
                execs.add((pid, _real(_unescape(m.group(1)), work), argv))
            elif m := _EXECAT.match(line):
                argv = tuple(_unescape(a) for a in re.findall(_STR, m.group(4)))
                image = m.group(1) + (" (deleted)" if m.group(2) else "")
                execs.add((pid, _real(image, work), argv))
            elif m := _RENAME.match(line):  # a rename writes the name it moves a file to
                opens.add((pid, _real(_unescape(m.group(2)), work), "write"))
            elif m := _RENAME_AT.match(line):
                old_dir, old, new_dir, new, flags = m.groups()
                opens.add((pid, _real(os.path.join(new_dir, _unescape(new)), work), "write"))
                if flags and "RENAME_EXCHANGE" in flags:
                    opens.add((pid, _real(os.path.join(old_dir, _unescape(old)), work), "write"))
            elif m := _EXIT.match(line):
                exits[pid] = int(m.group(2)) if m.group(2) else -_signal(m.group(3))
    return opens, by_handle, execs, exits


def _flags(args: str) -> int:
    return sum(bit for name, bit in _FLAG.items() if re.search(rf"\b{name}\b", args))


def _signal(name: str) -> int:
    import signal

    return int(getattr(signal, name))


def _liubai(
    g: Graph, root: int, work: Path
) -> tuple[set[Pair], dict[Pair, str], set[tuple[int, str, tuple[str, ...]]]]:
    known: set[Pair] = set()
    uncertain: dict[Pair, str] = {}  # -> its certainty
    for src, kind, dst, props in g.edges:
        if kind not in ("READ", "WROTE"):
            continue
        pid = int(g.nodes[src]["pid"])
        if pid == root:
            continue  # strace itself: not in its own output
        path = dst.split(":", 2)[2]
        pair = (
            pid,
            path if path.startswith("<") else _real(path, work),
            "read" if kind == "READ" else "write",
        )
        certainty = props.get("certainty", "exact")
        if certainty in ("exact", "kernel"):
            known.add(pair)
        else:
            uncertain[pair] = certainty
    execs = {
        (int(p["pid"]), _real(x["binary"], work), tuple(x["argv"]))
        for p in g.of_kind("proc").values()
        if int(p["pid"]) != root
        for x in p.get("execs", [])
    }
    return known, uncertain, execs


def _score(truth: Iterable[object], said: Iterable[object]) -> tuple[float, float]:
    t, s = set(truth), set(said)
    hit = len(t & s)
    return (hit / len(s) if s else 1.0), (hit / len(t) if t else 1.0)


def test_fidelity_against_strace_inside_the_trace(tmp_path: Path) -> None:
    work = (tmp_path / "work").resolve()
    work.mkdir()
    _build(work)
    (work / "work.sh").write_text(SCRIPT)
    st_dir = tmp_path / "strace"
    st_dir.mkdir()
    strace = shutil.which("strace")
    if strace is None:
        missing("ebpf", "strace (the ground truth) is not installed: apt-get install strace")
    db = f"sqlite:///{tmp_path / 'fidelity.db'}"
    calls = "execve,execveat,openat,open,creat,openat2,open_by_handle_at,close,rename,renameat,renameat2"
    cmd = [strace, "-f", "-ff", "-y", "-q", "-s", "4096", "-e", f"trace={calls}", "-o", str(st_dir / "st")]
    res = liubai(["--store", db, "trace", "--linger", "10", "--", *cmd, "sh", "work.sh"], cwd=work)
    assert res.returncode == 0, res.stderr

    g = read_graph(db)
    ((run_id, run),) = g.of_kind("run").items()
    root = int(run["root_pid"])
    truth_opens, by_handle, truth_execs, truth_exits = _truth(st_dir, work)
    known, uncertain, execs = _liubai(g, root, work)
    procs = {int(p["pid"]): p for p in g.of_kind("proc").values()}
    threads = set(truth_exits) - set(procs)  # strace -ff writes a file per thread too
    assert len(threads) == 1, threads  # the one extra thread of ./threads
    truth_exits = {pid: code for pid, code in truth_exits.items() if pid not in threads}

    covered = uncertain_cover(uncertain, truth_opens, by_handle)
    open_p, open_r = _score(truth_opens, known)
    exec_p, exec_r = _score(truth_execs, execs)
    table = {
        "opens": {
            "truth": len(truth_opens),
            "known": len(known),
            "uncertain": dict(Counter(uncertain.values())),
            "precision": open_p,
            "recall_known": open_r,
            "recall": len(truth_opens & (known | set(covered))) / len(truth_opens),
            "uncertain_unmatched": len(set(uncertain) - set(covered.values())),
        },
        "execs": {
            "truth": len(truth_execs),
            "said": len(execs),
            "said_uncertain": sum(
                1
                for pid, p in procs.items()
                if pid != root
                for x in p["execs"]
                if x["certainty"] not in ("exact", "kernel") or x["argv_status"] != "complete"
            ),
            "precision": exec_p,
            "recall": exec_r,
        },
        "exit_status": {
            "truth": len(truth_exits),
            "match": sum(1 for pid, code in truth_exits.items() if procs[pid]["exit_code"] == code),
        },
        "run": {
            k: run[k]
            for k in (
                "unresolved_opens",
                "lexical_paths",
                "incomplete_processes",
                "unhashed_images",
                "partial_argv",
                "still_running",
                "lost_events",
            )
        },
    }
    print("FIDELITY " + json.dumps(table))
    print("FIDELITY uncertain " + json.dumps(sorted(uncertain.items())))
    assert run["lost_events"] == 0
    assert set(truth_exits) <= set(procs), "every process strace saw is in the graph"
    assert not (known - truth_opens), f"stated as known but false: {sorted(known - truth_opens)[:10]}"
    missed = truth_opens - known - set(covered)
    assert not missed, f"missed (not even as uncertain): {sorted(missed)[:10]}"
    phantom = set(uncertain) - set(covered.values())
    assert not phantom, f"uncertain records of no file strace saw opened: {sorted(phantom)}"
    assert execs == truth_execs, sorted(truth_execs ^ execs)[:10]
    assert {pid: procs[pid]["exit_code"] for pid in truth_exits} == truth_exits
    assert {-15, -9, 3} <= set(truth_exits.values())  # SIGTERM, SIGKILL and an exit code are covered

    def by_argv(*argv: str) -> dict[str, object]:
        """The process whose own exec ran ``argv`` (not the children that inherited it at fork)."""
        (p,) = [p for p in procs.values() if any(tuple(x["argv"]) == argv for x in p["execs"])]
        return p

    # renames write the name they move a file to (mv's, and one relative to a directory descriptor)
    renamed = {str(work / "moved"), str(work / "real" / "moved2"), str(work / "mysleep")}
    assert renamed <= {path for _, path, mode in known & truth_opens if mode == "write"}

    # descriptor games: the writes land where the kernel put them
    host = run["host"]
    fd_writes = {d.split(":", 2)[2] for s, k, d, _ in g.edges if k == "WROTE" and "/dir" in d}
    assert {
        str(work / "dirB" / n)
        for n in ("x", "after-range", "forked-child", "created", "via-openat2", "procself", "inherited")
    } <= fd_writes
    assert {
        str(work / "dirA" / n) for n in ("reused", "dupfd", "dup3", "shared", "forked-parent")
    } <= fd_writes
    assert f"file:{host}:{work}/dirA/x" not in g.nodes
    # the handle's path is unknown: stored unresolved and counted, not dropped
    assert run["unresolved_opens"] >= 1 and any(p[1].startswith("<unresolved handle>") for p in uncertain)
    # io_uring flagged on the process that set it up
    assert by_argv("./fdgames", "./afterexec")["file_activity_incomplete"] == "io_uring"
    # the memfd image: named as the kernel names it
    memfd = by_argv("payload", "from-memfd")
    assert memfd["binary"] == "/memfd:payload (deleted)"
    # the lazily paged argument is there (read back from /proc) and the 200 arguments are whole
    lazy = by_argv("/bin/sh", "-c", "sleep 0.5", "lazily-paged-argument")
    assert lazy["argv_status"] == "complete"
    assert by_argv("/usr/bin/true", *map(str, range(1, 201)))["argv_status"] == "complete"
    # the replaced binary: the hash of what ran (sleep), not of what the name holds now (true)
    sleeper = by_argv("./mysleep", "0.8")
    assert sleeper["binary_sha256"] == hashlib.sha256(Path("/usr/bin/sleep").read_bytes()).hexdigest()
    # the script and its interpreter are both EXECUTED
    script = by_argv("./script.sh")
    pid_id = next(i for i, p in g.of_kind("proc").items() if p is script)
    executed = {os.path.realpath(d.split(":", 2)[2]) for d, _ in g.out(pid_id, "EXECUTED")}
    assert {str(work / "script.sh"), os.path.realpath("/bin/sh")} <= executed, executed
    # exit status is the wait status; credentials: drop then rise
    assert by_argv("./threads", "7")["exit_code"] == 7
    setid = by_argv("./setid")
    assert setid["privilege_drop"] is True and setid["escalation"] is True
    # the daemon outliving the root was traced to its end
    assert run["still_running"] == 0
    assert any(d.endswith("/daemon-read") for _, k, d, _ in g.edges if k == "WROTE")


def test_setuid_and_file_capability_execs_are_escalations(tmp_path: Path) -> None:
    """Outside strace (a ptraced exec gets neither set-user-ID nor file capabilities): processes that
    dropped to nobody for good exec a setuid-root image and a file-capability image, quickly (gone
    before /proc is read: the image's mode and xattr with the exec rules tell) and slowly (/proc)."""
    setcap = shutil.which("setcap")
    if setcap is None:
        missing("ebpf", "setcap (file-capability workload) is not installed: apt-get install libcap2-bin")
    work = (tmp_path / "work").resolve()
    work.mkdir()
    _build(work)
    shutil.copy(work / "ids", work / "suidids")
    os.chmod(work / "suidids", 0o4755)
    shutil.copy(work / "ids", work / "capids")
    subprocess.run([setcap, "cap_dac_read_search+ep", str(work / "capids")], check=True)
    db = f"sqlite:///{tmp_path / 'raise.db'}"
    res = liubai(["--store", db, "trace", "--", "./raise"], cwd=work)
    assert res.returncode == 0, res.stderr

    g = read_graph(db)
    procs = list(g.of_kind("proc").values())
    root = next(p for p in procs if p["binary"] == str(work / "raise"))
    assert not root["escalation"] and not root["privilege_drop"]
    raised = [p for p in procs if p["binary"] in (str(work / "suidids"), str(work / "capids"))]
    facts = [(p["binary"], p["euid"], p["cap_eff"], p["escalation"], p["privilege_drop"]) for p in raised]
    assert len(raised) == 4 and all(p["escalation"] and p["privilege_drop"] for p in raised), facts
    assert {p["euid"] for p in raised if p["binary"].endswith("suidids")} == {0}, facts
    assert {p["cap_eff"] for p in raised if p["binary"].endswith("capids")} == {1 << 2}, facts


def uncertain_cover(uncertain: dict[Pair, str], truth: set[Pair], by_handle: set[Pair]) -> dict[Pair, Pair]:
    """Truth pairs liubai recorded as uncertain, each with the uncertain record that names it: same
    process and mode, and a path naming that file as far as liubai could tell it. A walked path must be
    the file itself; a lexical one may be wrong only above its last component; an unresolved one keeps
    the name given relative to an unknown directory; an open by handle has no name, so it covers only
    opens strace saw made through a handle."""
    cover: dict[Pair, Pair] = {}
    for u in uncertain:
        pid, path, mode = u
        for t in truth:
            if (t[0], t[2]) != (pid, mode) or t in cover:
                continue
            if path.startswith("<unresolved handle>"):
                hit = t in by_handle
            elif path.startswith("<unresolved "):
                rest = path.split(">", 1)[1]
                hit = bool(rest) and t[1].endswith(rest)
            elif path.startswith("<"):
                hit = False
            elif uncertain[u] == "lexical":
                hit = os.path.basename(t[1]) == os.path.basename(path) != ""
            else:
                hit = t[1] == path
            if hit:
                cover[t] = u
    return cover


def test_chroot_paths_and_image_are_the_jails(tmp_path: Path) -> None:
    """A process chrooted into ``jail``: its opens of ``/f`` and ``/out`` and its executed image are
    recorded as the host's ``jail/...`` files, and the image hashed is the jailed one."""
    gcc = shutil.which("gcc")
    if gcc is None:
        missing("ebpf", "gcc (to build the chroot workload) is not installed: apt-get install gcc")
    jail = (tmp_path / "jail").resolve()
    (jail / "bin").mkdir(parents=True)
    src = Path(__file__).with_name("chroot") / "jailed.c"
    built = subprocess.run([gcc, "-static", "-O1", "-o", str(jail / "bin" / "jailed"), str(src)], check=False)
    if built.returncode != 0:
        missing("ebpf", "static libc (to build the chroot workload) is missing: apt-get install libc6-dev")
    (jail / "f").write_text("jailed\n")
    db = f"sqlite:///{tmp_path / 'jail.db'}"
    chroot = shutil.which("chroot", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if chroot is None:
        missing("ebpf", "chroot (coreutils) is not installed")
    res = liubai(["--store", db, "trace", "--", chroot, str(jail), "/bin/jailed"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr

    g = read_graph(db)
    (proc,) = g.of_kind("proc").values()
    image = jail / "bin" / "jailed"
    assert proc["binary"] == str(image)
    assert proc["binary_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest(), proc["hash_note"]
    touched = {(k, d.split(":", 2)[2]) for _, k, d, _ in g.edges if k in ("READ", "WROTE")}
    assert {("READ", str(jail / "f")), ("WROTE", str(jail / "out"))} <= touched
    assert not {p for _, p in touched if p in ("/f", "/out")}
