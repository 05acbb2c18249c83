"""Real BPF: the files a traced run writes are hashed when their last descriptor closes, and the
provenance made from the run (live or replayed) vouches for exactly what the run left."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from liubai.collector.closed_file import INLINE_MAX
from tests.ebpf.conftest import liubai
from tests.gitrepo import GitRepoBuilder

pytestmark = [pytest.mark.ebpf, pytest.mark.usefixtures("kernel")]

# out1: written, then rewritten by another process of the run (its digest is the one of the last close);
# shared: one descriptor held by the shell and used by a subshell, closed last by the shell;
# scratch: written and removed by the run; big: larger than what is hashed on the reader's thread;
# out2: written aside and renamed into place by mv (renameat2); ex1/ex2: swapped by RENAME_EXCHANGE.
BIG = 600 * 1024
EXCHANGE = "import ctypes; assert ctypes.CDLL(None).renameat2(-100, b'ex1', -100, b'ex2', 2) == 0"
SCRIPT = (
    "echo atomic > out2.tmp && mv out2.tmp out2\n"
    "echo one > ex1; echo two > ex2\n"
    f'python3 -c "{EXCHANGE}"\n'
    "echo draft > out1\n"
    "sh -c 'echo final > out1'\n"
    "exec 3>shared\n"
    "(echo child >&3)\n"
    "echo parent >&3\n"
    "exec 3>&-\n"
    "echo tmp > scratch; rm scratch\n"
    f"head -c {BIG} /dev/zero > big\n"
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_written_files_get_their_digest_at_the_last_close(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "repo")
    repo.write("README", "x\n")
    sha = repo.commit("init")
    work = repo.path.resolve()
    subprocess.run(
        ["git", "-C", str(work), "remote", "add", "origin", "git@github.com:org/repo.git"], check=True
    )
    db = f"sqlite:///{tmp_path / 'live.db'}"
    rec = tmp_path / "run.jsonl"
    res = liubai(["--store", db, "trace", "--record", str(rec), "--", "sh", "-c", SCRIPT], cwd=work)
    assert res.returncode == 0, res.stderr

    digests = [json.loads(line) for line in rec.read_text().splitlines() if '"type":"digest"' in line]
    final = {d["path"]: d for d in digests}  # the last digest of each file
    assert final[str(work / "out1")]["sha256"] == _sha(b"final\n")
    assert final[str(work / "shared")]["sha256"] == _sha(b"child\nparent\n")
    assert [d for d in digests if d["path"] == str(work / "shared")] == [final[str(work / "shared")]]
    assert BIG > INLINE_MAX and final[str(work / "big")]["sha256"] == _sha(bytes(BIG))
    moved = [d for d in digests if d["path"] == str(work / "out2")]  # mv's, as a write via rename
    assert [d["sha256"] for d in moved] == [_sha(b"atomic\n")]
    assert final[str(work / "out2.tmp")]["sha256"] == _sha(b"atomic\n")  # what the shell wrote there
    assert (final[str(work / "ex1")]["sha256"], final[str(work / "ex2")]["sha256"]) == (
        _sha(b"two\n"),
        _sha(b"one\n"),
    )
    scratch = final[str(work / "scratch")]  # removed by the run: a digest only if taken before the rm
    assert scratch["sha256"] == _sha(b"tmp\n") or scratch["hash_note"].startswith("the file was gone")

    prov = tmp_path / "prov.json"
    res = liubai(["--store", db, "export", "--run", _run_id(db), "-f", "slsa", "-o", str(prov)], cwd=work)
    assert res.returncode == 0, res.stderr
    st = json.loads(prov.read_bytes())
    subjects = {s["name"]: s["digest"]["sha256"] for s in st["subject"]}
    assert subjects[str(work / "out1")] == _sha(b"final\n")
    assert subjects[str(work / "shared")] == _sha(b"child\nparent\n")
    assert subjects[str(work / "out2")] == _sha(b"atomic\n")
    assert (subjects[str(work / "ex1")], subjects[str(work / "ex2")]) == (_sha(b"two\n"), _sha(b"one\n"))
    deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
    source = deps[0]
    zero = next(d for d in deps if d.get("name") == "/dev/zero")  # read by head: a device is never hashed
    assert "digest" not in zero and zero["annotations"]["liubai.status"] == "not-a-regular-file"
    assert source["uri"] == f"git+ssh://git@github.com/org/repo.git@{sha}"

    res = liubai(["verify", str(prov), "--allow-unsigned", "--check-files", str(work)], cwd=work)
    assert res.returncode == 0, res.stdout + res.stderr
    (work / "out1").write_text("tampered\n")
    res = liubai(["verify", str(prov), "--allow-unsigned", "--check-files", str(work)], cwd=work)
    assert res.returncode == 1 and f"MISMATCH {work / 'out1'}" in res.stdout + res.stderr

    # the recording replayed on a machine that has none of the files gives the same subjects
    db2 = f"sqlite:///{tmp_path / 'replayed.db'}"
    res = liubai(["--store", db2, "ingest", "events", str(rec), "--host", "elsewhere"], cwd=work)
    assert res.returncode == 0, res.stderr
    run2 = _run_id(db2)
    res = liubai(["--store", db2, "export", "--run", run2, "-f", "slsa"], cwd=work)
    assert res.returncode == 0, res.stderr
    replayed = {s["name"]: s["digest"]["sha256"] for s in json.loads(res.stdout)["subject"]}
    assert replayed == subjects


def _run_id(db: str) -> str:
    from liubai.lineage.store import open_store

    store = open_store(db)
    try:
        (run,) = [n.id for batch in store.iter_nodes() for n in batch if n.id.startswith("run:")]
    finally:
        store.close()
    return run
