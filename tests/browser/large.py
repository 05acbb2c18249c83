"""A rollout at scale, for the explorer's level-of-detail tests and ``bench/ui_scale.py``.

One commit whose audit id two workloads carry; its pipeline run has ``processes`` processes that each
read ``files_each`` files, and its trace carries ``logs`` log lines: at the defaults the commit's lineage
at depth 3 is 10,000 nodes. A second, small commit (about 15 nodes) is the baseline measured beside it.
Built the way collectors build it: records -> join -> upsert.
"""

from __future__ import annotations

from dataclasses import dataclass

from liubai.lineage.join import join_records
from liubai.lineage.model import commit_node_id, repo_node_id
from liubai.lineage.records import (
    CommitRecord,
    FileAccessRecord,
    LogRecord,
    ManifestObjectRecord,
    ProcessRecord,
    Record,
    RunRecord,
)
from liubai.lineage.store.base import LineageStore

HOST = "build-9"
REPO = "https://git.example.com/platform/fleet.git"
LARGE_SHA = "7a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
LARGE_TRACE = "5d0c1f2e3a4b5c6d7e8f90a1b2c3d4e5"
SMALL_SHA = "1f2e3d4c5b6a79881726354a5b6c7d8e9f0a1b2c"
SMALL_TRACE = "6e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b"
HISTORY_REPO = "https://git.example.com/platform/history.git"
HISTORY_DAYS = ("2026-04-27", "2026-04-28", "2026-04-30")
HISTORY_PER_DAY = 12


@dataclass(frozen=True)
class LargeLineage:
    large_commit: str
    small_commit: str
    history_repo: str
    processes: int
    files_each: int
    logs: int

    @property
    def expected_nodes(self) -> int:
        """Commit, audit record, trace, two workloads, run, processes, their files, the logs."""
        return 6 + self.processes * (1 + self.files_each) + self.logs


def _ts(second: int) -> str:
    return f"2026-05-04T09:{second // 60 % 60:02d}:{second % 60:02d}.{second // 3600:06d}Z"


def _chain(sha: str, trace: str, pid0: int, processes: int, files_each: int, logs: int) -> list[Record]:
    audit = f"git-sha256:{sha}|trace:{trace}"
    recs: list[Record] = [
        CommitRecord(
            repo=REPO,
            sha=sha,
            parents=(),
            author_name="Ana Ruiz",
            author_email="ana@example.com",
            authored_at=_ts(0),
            committer_name="Ana Ruiz",
            committer_email="ana@example.com",
            committed_at=_ts(0),
            subject=f"Roll out {sha[:7]}",
            message=f"Roll out {sha[:7]}",
            changed_paths=("apps/fleet.yaml",),
            branch="main",
        ),
        RunRecord(
            host=HOST,
            root_pid=pid0,
            start_ns=pid0 * 1000,
            command=("make", "rollout"),
            started_at=_ts(5),
            ended_at=_ts(900),
            exit_code=0,
            commit=sha,
            audit_id=audit,
            trace_id=trace,
            repo=REPO,
        ),
    ]
    for i, name in enumerate(("fleet-api", "fleet-worker")):
        recs.append(
            ManifestObjectRecord(
                repo=REPO,
                commit=sha,
                path="apps/fleet.yaml",
                api_version="apps/v1",
                kind="Deployment",
                namespace=f"fleet-{sha[:4]}",
                name=name,
                audit_ids=(audit,),
                document_index=i,
            )
        )
    for p in range(processes):
        pid, start = pid0 + 1 + p, pid0 * 1000 + 1 + p
        recs.append(
            ProcessRecord(
                host=HOST,
                pid=pid,
                start_ns=start,
                run_pid=pid0,
                run_start_ns=pid0 * 1000,
                uid=1000,
                parent_uid=1000,
                comm="render",
                binary="/usr/bin/render",
                argv=("render", f"--service=svc-{p:03d}"),
                started_at=_ts(10 + p),
            )
        )
        recs += [
            FileAccessRecord(
                host=HOST,
                pid=pid,
                start_ns=start,
                path=f"/srv/svc-{p:03d}/conf/part-{f:03d}.yaml",
                mode="read",
            )
            for f in range(files_each)
        ]
    recs += [
        LogRecord(
            source="fleet-logs",
            record_id=f"{sha[:7]}-{i:05d}",
            time=_ts(20 + i % 3000),
            level="info",
            service="fleet-api",
            message=f"rolled out shard {i}",
            trace_id=trace,
            audit_id=audit,
        )
        for i in range(logs)
    ]
    return recs


def _history() -> list[Record]:
    """A repository with ``HISTORY_PER_DAY`` commits on each of ``HISTORY_DAYS``, each on the one before."""
    recs: list[Record] = []
    parent: tuple[str, ...] = ()
    for d, day in enumerate(HISTORY_DAYS):
        for i in range(HISTORY_PER_DAY):
            sha = f"{d + 1:02d}{i:02d}" + "ab" * 18
            at = f"{day}T{8 + i:02d}:00:00.000000Z"
            recs.append(
                CommitRecord(
                    repo=HISTORY_REPO,
                    sha=sha,
                    parents=parent,
                    author_name="Ana Ruiz",
                    author_email="ana@example.com",
                    authored_at=at,
                    committer_name="Ana Ruiz",
                    committer_email="ana@example.com",
                    committed_at=at,
                    subject=f"Change {d}.{i}",
                    message=f"Change {d}.{i}",
                    changed_paths=("apps/a.yaml",),
                    branch="main",
                )
            )
            parent = (sha,)
    return recs


def load(store: LineageStore, processes: int = 80, files_each: int = 110, logs: int = 1_114) -> LargeLineage:
    """Fill ``store`` with the large chain and the ~15-node baseline chain."""
    batch = join_records(
        [
            *_chain(LARGE_SHA, LARGE_TRACE, 7000, processes, files_each, logs),
            *_chain(SMALL_SHA, SMALL_TRACE, 9000, 2, 2, 3),
            *_history(),
        ]
    )
    if batch.rejected:
        raise AssertionError(f"large scenario records rejected: {batch.rejected}")
    store.upsert(batch)
    return LargeLineage(
        commit_node_id(LARGE_SHA),
        commit_node_id(SMALL_SHA),
        repo_node_id(HISTORY_REPO),
        processes,
        files_each,
        logs,
    )
