"""Closed written files waiting to be hashed at the end of their batch, and those read at the last batch's
end, each indexed by path. A rename looks only at what lies at or below its two names (a build renames
thousands of files while as many wait), and an event read after a file was hashed, which may have come
before the reading, can still withdraw its digest."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from dataclasses import dataclass

from liubai.ebpf.events import DigestEvent

__all__ = ["REOPENED", "DigestJobs", "Job", "PathIndex", "fill"]

REOPENED = "it was opened for writing again before it could be hashed"


@dataclass(slots=True)
class Job:
    """A closed file: the digests one read of ``path`` fills. The file must not have changed after
    ``since`` (the close, or the rename that moved it there)."""

    digests: list[DigestEvent]
    path: str
    since: int


def fill(digests: list[DigestEvent], sha256: str | None, why: str | None) -> None:
    for digest in digests:
        digest.sha256, digest.hash_note = sha256, why


class PathIndex:
    """Jobs by path, the paths also kept sorted: those below a directory ``d`` are the slice from
    ``d/`` to ``d0`` (``0`` follows ``/``)."""

    def __init__(self, jobs: dict[str, Job] | None = None) -> None:
        self.jobs: dict[str, Job] = jobs or {}
        self._sorted = sorted(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __contains__(self, path: str) -> bool:
        return path in self.jobs

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.jobs))

    def get(self, path: str) -> Job | None:
        return self.jobs.get(path)

    def add(self, job: Job) -> None:
        self.jobs[job.path] = job
        insort(self._sorted, job.path)

    def pop(self, path: str) -> Job:
        del self._sorted[bisect_left(self._sorted, path)]
        return self.jobs.pop(path)

    def at_or_below(self, name: str) -> list[str]:
        paths, prefix = self._sorted, name + "/"
        first = bisect_left(paths, prefix)
        if first == len(paths) or not paths[first].startswith(prefix):  # nothing below: the usual case
            return [name] if name in self.jobs else []
        below = paths[first : bisect_left(paths, name + "0", first)]
        return [name, *below] if name in self.jobs else below


class DigestJobs:
    """The batch's closed files (``waiting``) and the last batch's, read (``hashed``)."""

    def __init__(self) -> None:
        self.waiting = PathIndex()
        self.hashed = PathIndex()
        self._withdrawn: list[tuple[Job, str]] = []

    def enqueue(self, job: Job) -> None:
        """Queue ``job`` under its path; a job already there (closed, then written again unseen) cannot
        be vouched for any more."""
        self.drop(job.path, REOPENED)
        self.waiting.add(job)

    def drop(self, path: str, why: str) -> None:
        """The file waiting at ``path`` (if any) is not hashed, for ``why``."""
        if path in self.waiting:
            fill(self.waiting.pop(path).digests, None, why)

    def take(self) -> dict[str, Job]:
        """The waiting jobs, to be hashed now (none wait after)."""
        jobs, self.waiting = self.waiting.jobs, PathIndex()
        return jobs

    def read(self, jobs: dict[str, Job]) -> None:
        """``jobs`` were just read (or handed to the worker): the ones a late event may withdraw."""
        self.hashed = PathIndex(jobs)

    def withdraw(self, paths: list[str], why: str) -> None:
        """An event read after the last batch's end, which may have come before its reading of
        ``paths``, changed what they name: those digests are withdrawn (an event's time is its
        syscall's exit, not the moment it took effect)."""
        for path in paths:
            if path in self.hashed:
                job = self.hashed.pop(path)
                fill(job.digests, None, why)
                self._withdrawn.append((job, why))

    def withdraw_again(self) -> None:
        """After the worker's digests are in: a withdrawal it raced with stands."""
        for job, why in self._withdrawn:
            fill(job.digests, None, why)
