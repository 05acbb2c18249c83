"""SLSA provenance for a traced pipeline run: an in-toto Statement v1 with a SLSA Provenance v1 predicate.

The statement says what the run produced (``subject``: files it WROTE) from what (``resolvedDependencies``:
the git commit that triggered it and the files it READ and EXECUTED). A subject's digest is the one the
tracer took while the run happened, when the last descriptor of the file closed; a written file without
one (the file was gone, unreadable or changed before it could be hashed, or the trace predates such
digests) is listed among the byproducts with the reason, never as a subject with a digest taken later.
Every file is also compared with the disk where it lives on this host, and the outcome is annotated
(unchanged, changed since the run, missing). A dependency without a recorded digest is hashed now only to
report its "digest at export time", labelled as such.

The source is ``git+<repository URI>@<commit>`` (RFC 3986: the remote's URL, ``file:///`` for a local
repository without one); with no repository known it carries the commit digest and no URI, and says so.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from liubai.lineage.canonical import canonical_json
from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.export import liubai_version
from liubai.lineage.filehash import NotRegularFile, sha256_of_regular_file
from liubai.lineage.model import (
    AuditIdError,
    Direction,
    Edge,
    EdgeKind,
    Node,
    NodeKind,
    parse_audit_id,
)
from liubai.lineage.store.base import LineageStore
from liubai.lineage.text import clip
from liubai.lineage.urls import git_source_uri

__all__ = [
    "BUILD_TYPE",
    "PREDICATE_TYPE",
    "REPORT_NAME",
    "STATEMENT_TYPE",
    "SlsaError",
    "FileStatus",
    "build_provenance",
    "run_id_of",
    "check_statement",
    "statement_bytes",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://liubai.dev/provenance/traced-run/v1"
BUILDER_PREFIX = "https://liubai.dev/builder/traced-host/"
REPORT_NAME = "liubai.run-report"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*")
_PAGE = 500


class SlsaError(LiubaiError, ValueError):
    """No provenance can be made for what was asked (not a run, or nothing to attest)."""

    code = ErrorCode.BAD_INPUT


class FileStatus:
    """What became of a file since the run, as written into ``annotations["liubai.status"]``."""

    UNCHANGED = "unchanged"  # on disk, matches the digest recorded during the run
    CHANGED = "changed-since-run"  # on disk, differs from the recorded digest
    MISSING = "missing"  # no longer on disk
    HASHED_AT_EXPORT = "digest-not-recorded"  # no digest recorded; digest given is the content at export time
    NO_RUN_DIGEST = "no-run-time-digest"  # a written file the run left no digest of (the reason is annotated)
    OTHER_HOST = "not-checked-other-host"  # the file lives on another machine
    UNREADABLE = "unreadable"
    NOT_REGULAR = "not-a-regular-file"  # a device, FIFO or socket: no content to vouch for


@dataclass(slots=True)
class _FileFacts:
    node: Node
    accesses: set[str] = field(default_factory=set)
    recorded: dict[str, list[str]] = field(default_factory=dict)  # access kind -> digests recorded
    written: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (at, sha256, note)

    @property
    def path(self) -> str:
        return str(self.node.props.get("path") or self.node.id.split(":", 2)[2])

    @property
    def host(self) -> str:
        return str(self.node.props.get("host") or self.node.id.split(":", 2)[1])


def _pages(
    store: LineageStore, node_id: str, direction: Direction, kinds: list[EdgeKind]
) -> Iterator[tuple[Edge, dict[str, Node]]]:
    after: str | None = None
    while True:
        page = store.neighbors(node_id, direction, kinds, first=_PAGE, after=after)
        by_id = {n.id: n for n in page.nodes}
        for e in page.edges:
            yield e, by_id
        if page.end_cursor is None:
            return
        after = page.end_cursor


def run_id_of(value: str) -> str:
    """A run id as users type it (with or without the ``run:`` prefix) as its node id."""
    value = value.strip()
    return value if value.startswith("run:") else f"run:{value}"


def _descriptor(
    facts: _FileFacts,
    recorded: list[str],
    local_host: str,
    *,
    hash_at_export: bool = True,
    note: str | None = None,
) -> dict[str, Any]:
    """A ResourceDescriptor for one file, its digest chosen by the module's rule and its status annotated.
    ``hash_at_export`` False (a subject): no recorded digest means none at all, whatever is on disk now."""
    ann: dict[str, Any] = {"liubai.accesses": sorted(facts.accesses)}
    digest: str | None = recorded[-1] if recorded else None
    if len(set(recorded)) > 1:
        ann["liubai.recorded_sha256"] = sorted(set(recorded))
    if recorded:
        ann["liubai.digest_source"] = "recorded-during-run"
    if note is not None:
        ann["liubai.hash_note"] = note
    if facts.host != local_host:
        status = FileStatus.OTHER_HOST if digest is not None or hash_at_export else FileStatus.NO_RUN_DIGEST
    else:
        try:
            current = sha256_of_regular_file(facts.path)
        except FileNotFoundError:
            status = FileStatus.MISSING
        except NotRegularFile:
            status = FileStatus.NOT_REGULAR
        except OSError as exc:
            status = FileStatus.UNREADABLE
            ann["liubai.error"] = exc.strerror or str(exc)
        else:
            if digest is None and hash_at_export:
                digest, status = current, FileStatus.HASHED_AT_EXPORT
                ann["liubai.digest_source"] = "hashed-at-export"
            elif digest is None:
                status = FileStatus.NO_RUN_DIGEST
                ann["liubai.digest_at_export"] = current
            elif current == digest:
                status = FileStatus.UNCHANGED
            else:
                status = FileStatus.CHANGED
                ann["liubai.digest_at_export"] = current
    ann["liubai.status"] = status
    out: dict[str, Any] = {"name": facts.path, "uri": f"file://{quote(facts.host)}{quote(facts.path)}"}
    if digest is not None:
        out["digest"] = {"sha256": digest}
    out["annotations"] = ann
    return out


def _run_time_digest(facts: _FileFacts) -> tuple[str | None, str | None, str | None]:
    """(digest, why none, when taken) of a written file as the run left it: the digest taken at the
    latest close (a later close without one voids an earlier digest), else the last one recorded."""
    timed = [w for w in facts.written if w[0]]
    if timed:
        at, digest, note = max(timed, key=lambda w: w[0])
        return digest, None if digest else note or "no digest was taken at its last close", at
    digests = [d for _, d, _ in facts.written if d]
    if digests:
        return digests[-1], None, None
    notes = [n for _, _, n in facts.written if n]
    return None, notes[-1] if notes else "the trace recorded no digest of it while the run went on", None


def build_provenance(store: LineageStore, run_id: str, *, local_host: str | None = None) -> dict[str, Any]:
    """The in-toto Statement for one PipelineRun node; files are checked on disk when they live on this host."""
    local_host = local_host or socket.gethostname()
    run = store.get(run_id)
    if run is None:
        raise SlsaError(f"no pipeline run {clip(run_id)!r} in the store", code=ErrorCode.NOT_FOUND)
    if run.kind is not NodeKind.PIPELINE_RUN:
        raise SlsaError(
            f"{run_id!r} is a {run.kind.value}, not a PipelineRun: SLSA provenance is made for runs"
        )
    p = run.props

    processes = sorted(
        (
            by_id[e.dst]
            for e, by_id in _pages(store, run_id, Direction.DOWNSTREAM, [EdgeKind.RAN])
            if e.dst in by_id
        ),
        key=lambda n: (n.props.get("started_at") or "", n.id),
    )
    files: dict[str, _FileFacts] = {}
    access_kinds = [EdgeKind.EXECUTED, EdgeKind.READ, EdgeKind.WROTE]
    for proc in processes:
        for e, by_id in _pages(store, proc.id, Direction.DOWNSTREAM, access_kinds):
            node = by_id.get(e.dst)
            if node is None:
                continue
            facts = files.setdefault(node.id, _FileFacts(node))
            facts.accesses.add(e.kind.value)
            digest = e.props.get("sha256")
            if digest is None and e.kind is EdgeKind.EXECUTED and proc.props.get("binary") == facts.path:
                digest = proc.props.get("binary_sha256")
            valid = digest.lower() if isinstance(digest, str) and _HEX64.fullmatch(digest.lower()) else None
            if valid is not None:
                facts.recorded.setdefault(e.kind.value, []).append(valid)
            if e.kind is EdgeKind.WROTE:
                at, note = e.props.get("hashed_at"), e.props.get("hash_note")
                facts.written.append(
                    (at if isinstance(at, str) else "", valid, note if isinstance(note, str) else None)
                )

    subject: list[dict[str, Any]] = []
    unattested: list[dict[str, Any]] = []
    deps: list[dict[str, Any]] = []
    commit_dep = _commit_dependency(store, run)
    if commit_dep is not None:
        deps.append(commit_dep)
    for facts in sorted(files.values(), key=lambda f: f.path):
        if EdgeKind.WROTE.value in facts.accesses:
            digest, note, at = _run_time_digest(facts)
            desc = _descriptor(facts, [digest] if digest else [], local_host, hash_at_export=False, note=note)
            if at is not None:
                desc["annotations"]["liubai.hashed_at"] = at  # the writer's last close
            (subject if "digest" in desc else unattested).append(desc)
        if facts.accesses & {EdgeKind.READ.value, EdgeKind.EXECUTED.value}:
            recorded = facts.recorded.get(EdgeKind.EXECUTED.value, []) + facts.recorded.get(
                EdgeKind.READ.value, []
            )
            deps.append(_descriptor(facts, recorded, local_host))
    if not subject:
        raise SlsaError(
            f"run {run_id!r} wrote no file whose digest was taken while it ran: nothing to attest"
        )

    report = _run_report(run, processes, subject, deps, unattested)
    report["annotations"].update(_writers(store, [run.id, *(p.id for p in processes), *files]))
    metadata: dict[str, Any] = {"invocationId": _invocation_id(run)}
    if p.get("started_at"):
        metadata["startedOn"] = p["started_at"]
    if p.get("ended_at"):
        metadata["finishedOn"] = p["ended_at"]
    host = str(p.get("host") or run_id.split(":")[1])
    return {
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    k: v
                    for k, v in {
                        "command": p.get("command"),
                        "cwd": p.get("cwd"),
                        "repository": p.get("repo"),
                        "commit": p.get("commit"),
                        "auditId": p.get("audit_id"),
                    }.items()
                    if v is not None
                },
                "internalParameters": {
                    "runId": run_id,
                    "host": host,
                    "rootPid": p.get("root_pid"),
                    "startNs": None if p.get("start_ns") is None else str(p["start_ns"]),  # beyond 2**53
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_PREFIX + quote(host, safe=""),
                    "version": {"liubai": liubai_version()},
                },
                "metadata": metadata,
                "byproducts": [*unattested, report],
            },
        },
    }


def _commit_dependency(store: LineageStore, run: Node) -> dict[str, Any] | None:
    """The commit that triggered the run (the TRIGGERED edge, else the run's own props), as
    ``git+<repository URI>@<sha>``. The repository is the run's remote, else the commit's repository,
    else the run's local checkout; none that is a URI: the digest alone, and an annotation saying so."""
    commit: Node | None = None
    for e, by_id in _pages(store, run.id, Direction.UPSTREAM, [EdgeKind.TRIGGERED]):
        commit = by_id.get(e.src)
        break
    sha = (commit.props.get("sha") if commit else None) or run.props.get("commit")
    if not isinstance(sha, str) or not sha:
        return None
    sha = sha.lower()
    locations: list[Any] = [run.props.get("repo_url")]
    if commit is not None:
        locations.append(commit.props.get("repo"))
        for e, _ in _pages(store, commit.id, Direction.UPSTREAM, [EdgeKind.HAS_COMMIT]):
            locations.append(e.src.removeprefix("repo:"))
            break
    locations.append(run.props.get("repo"))
    out: dict[str, Any] = {"name": "source", "digest": {"gitCommit": sha}}
    for location in locations:
        uri = git_source_uri(location, sha) if isinstance(location, str) and location else None
        if uri is not None:
            out["uri"] = uri
            return out
    named = sorted({loc for loc in locations if isinstance(loc, str) and loc})
    out["annotations"] = {
        "liubai.status": "repository-unknown",
        "liubai.note": "no repository URI is known for this commit, so the source names none",
    }
    if named:
        out["annotations"]["liubai.repository_named"] = named
    return out


def _writers(store: LineageStore, node_ids: list[str]) -> dict[str, Any]:
    """Who wrote the run's facts: ``liubai.writers`` (writer -> node count) and, where another writer's
    value differs from a fact, ``liubai.claims``, so the statement never hides a contested value."""
    found = store.provenance(node_ids)
    writers: dict[str, int] = {}
    claims: list[dict[str, Any]] = []
    for node_id in sorted(found):
        prov = found[node_id]
        name = prov.writer or "unrecorded"
        writers[name] = writers.get(name, 0) + 1
        claims.extend(
            {"node": node_id, "key": c.key, "writer": c.writer, "value": c.value} for c in prov.claims
        )
    out: dict[str, Any] = {"liubai.writers": dict(sorted(writers.items()))}
    if claims:
        out["liubai.claims"] = claims
    return out


def _invocation_id(run: Node) -> str:
    raw = run.props.get("audit_id")
    if isinstance(raw, str) and raw:
        try:
            return parse_audit_id(raw).canonical
        except AuditIdError:
            pass
    trace = run.props.get("trace_id")
    if isinstance(trace, str) and trace:
        return f"trace:{trace}"
    return run.id


def _run_report(
    run: Node,
    processes: list[Node],
    subject: list[dict[str, Any]],
    deps: list[dict[str, Any]],
    unattested: list[dict[str, Any]],
) -> dict[str, Any]:
    """One byproduct that lists, by status, every file that is not simply unchanged since the run."""
    by_status: dict[str, list[str]] = {}
    for desc in [*subject, *deps, *unattested]:
        status = desc.get("annotations", {}).get("liubai.status")
        if status and status != FileStatus.UNCHANGED and "name" in desc and desc["name"] != "source":
            by_status.setdefault(status, []).append(desc["name"])
    ann: dict[str, Any] = {
        "liubai.exit_code": run.props.get("exit_code"),
        "liubai.processes": len(processes),
        "liubai.lost_events": run.props.get("lost_events", 0),
        "liubai.files_by_status": {k: sorted(set(v)) for k, v in sorted(by_status.items())},
    }
    if run.props.get("lost_events"):
        ann["liubai.warning"] = (
            "the kernel dropped trace events during this run: the file lists may be incomplete"
        )
    return {"name": REPORT_NAME, "uri": f"liubai:{run.id}", "annotations": ann}


def statement_bytes(statement: dict[str, Any]) -> bytes:
    return canonical_json(statement)


def check_statement(doc: Any) -> list[str]:
    """Problems with an in-toto Statement v1 / SLSA Provenance v1 document; empty when it is well formed."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        return ["statement is not a JSON object"]
    if doc.get("_type") != STATEMENT_TYPE:
        problems.append(f"_type is {doc.get('_type')!r}, want {STATEMENT_TYPE!r}")
    subject = doc.get("subject")
    if not isinstance(subject, list) or not subject:
        problems.append("subject must be a non-empty list")
    else:
        for i, s in enumerate(subject):
            digest = s.get("digest") if isinstance(s, dict) else None
            if not isinstance(digest, dict) or not digest:
                problems.append(f"subject #{i} has no digest")
            elif "sha256" in digest and not _HEX64.fullmatch(str(digest["sha256"])):
                problems.append(
                    f"subject #{i} ({s.get('name')!r}) has a malformed sha256 {digest['sha256']!r}"
                )
    if doc.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"predicateType is {doc.get('predicateType')!r}, want {PREDICATE_TYPE!r}")
    pred = doc.get("predicate")
    if not isinstance(pred, dict):
        return [*problems, "predicate missing"]
    build = pred.get("buildDefinition")
    if (
        not isinstance(build, dict)
        or not build.get("buildType")
        or not isinstance(build.get("externalParameters"), dict)
    ):
        problems.append("predicate.buildDefinition needs buildType and externalParameters")
    details = pred.get("runDetails")
    if (
        not isinstance(details, dict)
        or not isinstance(details.get("builder"), dict)
        or not details["builder"].get("id")
    ):
        problems.append("predicate.runDetails.builder.id is missing")
    descriptors = [
        *(subject if isinstance(subject, list) else []),
        *(build.get("resolvedDependencies") or [] if isinstance(build, dict) else []),
        *(details.get("byproducts") or [] if isinstance(details, dict) else []),
    ]
    for d in descriptors:
        if not isinstance(d, dict) or not ({"uri", "digest", "content"} & set(d)):
            problems.append(f"resource {_shown(d)} has none of uri, digest or content")
        elif "uri" in d and not (isinstance(d["uri"], str) and _URI.fullmatch(d["uri"])):
            problems.append(
                f"resource {_shown(d.get('name'))} has uri {_shown(d['uri'])}, not an RFC 3986 URI"
            )
    return problems


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
