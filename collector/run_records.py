"""A traced run's process model as records: the run, then each process and its file accesses.

``RunRecords`` is the output half of ``liubai.collector.runs.RunCollector`` (which derives from it): the
collector replays events into ``procs``; this turns what it holds into ``RunRecord``, ``ProcessRecord``
and ``FileAccessRecord`` and counts what the run could not know for sure.
"""

from __future__ import annotations

from collections.abc import Iterator

from liubai.collector.run_model import RunInfo, _Proc
from liubai.ebpf.paths import AFTER_LOSS, EXACT, KERNEL, weakest
from liubai.lineage.records import FileAccessRecord, ProcessRecord, RunRecord, iso_utc

__all__ = ["RunRecords"]


class RunRecords:
    """Records of the processes in ``procs`` (keyed by (pid, start_ns)) of the run ``info``."""

    info: RunInfo
    procs: dict[tuple[int, int], _Proc]
    unresolved: int  # opens whose path could not be resolved
    lexical: int  # opens whose path was resolved lexically only
    walked: int  # opens whose path was walked after the process ended

    def doubts(self) -> dict[str, int]:
        """What the run could not know for sure, by kind (only the non-zero counts)."""
        procs = self.procs.values()
        counts = {
            "opens with an unresolved path": self.unresolved,
            "opens with a lexical path": self.lexical,
            "opens with a path walked after the process ended": self.walked,
            "accesses resolved through a cwd or descriptor table lost events may have changed": sum(
                1 for p in procs for a in p.accesses.values() if self._after_loss(a.through_state)
            ),
            "processes with io_uring (file activity incomplete)": sum(1 for p in procs if p.incomplete),
            "execs without a hash": sum(1 for p in procs for x in p.execs if x["sha256"] is None),
            "execs whose image path is uncertain": sum(
                1
                for p in procs
                for x, state in zip(p.execs, p.execs_through_state, strict=True)
                if self._certainty(x["certainty"], state) not in (EXACT, KERNEL)
            ),
            "execs with partial argv": sum(
                1 for p in procs for x in p.execs if x["argv_status"] != "complete"
            ),
            "processes still running when tracing stopped": self.info.still_running,
        }
        return {k: v for k, v in counts.items() if v}

    def _after_loss(self, through_state: bool) -> bool:
        """Whether a resolution through the followed cwd or descriptor table is in doubt: the run lost
        events, and any of them may have been a chdir, close or dup of any process (none says whose)."""
        return through_state and self.info.lost_events > 0

    def _certainty(self, certainty: str, through_state: bool) -> str:
        return weakest(certainty, AFTER_LOSS) if self._after_loss(through_state) else certainty

    def _iso(self, boot_ns: int | None) -> str | None:
        if boot_ns is None:
            return None
        return iso_utc((boot_ns + self.info.boot_offset_ns) / 1e9)

    def records(self) -> Iterator[RunRecord | ProcessRecord | FileAccessRecord]:
        """The run first, then each process followed by its file accesses (stable order)."""
        info = self.info
        root = self.procs.get((info.root_pid, info.start_ns))
        if root is not None and info.exit_code is not None:
            root.exit_code = info.exit_code
            root.end_ns = root.end_ns or info.end_ns
        procs = [self.procs[k] for k in sorted(self.procs, key=lambda k: (k[1], k[0]))]
        yield RunRecord(
            host=info.host,
            root_pid=info.root_pid,
            start_ns=info.start_ns,
            command=tuple(info.command),
            started_at=self._iso(info.start_ns) or "",
            ended_at=self._iso(info.end_ns),
            end_ns=info.end_ns,
            exit_code=info.exit_code,
            commit=info.commit,
            audit_id=info.audit_id,
            trace_id=info.trace_id,
            repo=info.repo,
            repo_url=info.repo_url,
            cwd=info.cwd,
            lost_events=info.lost_events,
            unresolved_opens=self.unresolved,
            lexical_paths=self.lexical,
            incomplete_processes=sum(1 for p in procs if p.incomplete),
            unhashed_images=sum(1 for p in procs for x in p.execs if x["sha256"] is None),
            partial_argv=sum(1 for p in procs for x in p.execs if x["argv_status"] != "complete"),
            still_running=info.still_running,
            cut_at=self._iso(info.end_ns) if info.still_running else None,
        )
        for p in procs:
            yield from self._process_records(p)

    def process_records(self, key: tuple[int, int]) -> Iterator[ProcessRecord | FileAccessRecord]:
        """One process's record and its file accesses (totals so far), as ``records()`` gives them."""
        proc = self.procs.get(key)
        if proc is not None:
            yield from self._process_records(proc)

    def _process_records(self, p: _Proc) -> Iterator[ProcessRecord | FileAccessRecord]:
        info = self.info
        exec_failed = p.exec_failures > 0 and not p.exec_ok
        if exec_failed and p.pending is not None:  # what it tried to run, not its parent's image
            asked = p.pending_binary[0] if p.pending_binary else p.pending.filename
            p.argv, p.binary, p.binary_sha256 = p.pending.argv, asked, None
        yield ProcessRecord(
            host=info.host,
            pid=p.pid,
            start_ns=p.start_ns,
            run_pid=info.root_pid,
            run_start_ns=info.start_ns,
            ppid=p.ppid,
            parent_start_ns=p.parent_start_ns,
            uid=p.uid,
            parent_uid=p.parent_uid,
            comm=p.comm,
            binary=p.binary,
            binary_sha256=p.binary_sha256,
            argv=p.argv,
            cwd=p.fs.cwd,
            started_at=self._iso(p.start_ns),
            ended_at=self._iso(p.end_ns),
            exit_code=p.exit_code,
            exec_failed=exec_failed,
            hash_note=p.hash_note if p.binary_sha256 is None else None,
            argv_status=p.argv_status,
            execs=tuple(
                {**x, "certainty": self._certainty(x["certainty"], state)}
                for x, state in zip(p.execs, p.execs_through_state, strict=True)
            ),
            euid=p.creds.euid,
            suid=p.creds.suid,
            cap_eff=p.creds.cap_eff,
            escalation=p.escalation,
            privilege_drop=p.privilege_drop,
            file_activity_incomplete=p.incomplete,
        )
        images = {i for a in p.accesses.values() for i in a.exec_ids}
        for (path, mode), a in sorted(p.accesses.items()):
            yield FileAccessRecord(
                host=info.host,
                pid=p.pid,
                start_ns=p.start_ns,
                path=path,
                mode=mode,
                count=a.count,
                flags=a.flags if mode != "exec" else None,
                sha256=a.sha256 if mode != "read" else None,
                hash_note=a.hash_note,
                hashed_at=a.hashed_at,
                certainty=self._certainty(a.certainty, a.through_state),
                exec_ids=tuple(sorted(a.exec_ids)) if len(images) > 1 else (),
                via=a.via,
            )
