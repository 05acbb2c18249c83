"""``liubai trace -- CMD``: run a command under eBPF tracing and ingest its run; ``liubai ingest events``.

The run is tied to its commit (``--commit``, CI_COMMIT_SHA, GITHUB_SHA, else ``git rev-parse HEAD``) and
audit id / trace (``--audit-id``, X_GITOPS_AUDIT_ID, else TRACEPARENT). CMD's exit code becomes liubai's;
its stdio is untouched (liubai's own lines go to stderr). Without root, tracefs or bcc nothing runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from liubai.api.cli.common import fail, say, state, store_session
from liubai.api.cli.ingest import ingest_app
from liubai.collector.handoff_client import AgentRun, AgentUnavailable, connect, run_with_agent
from liubai.collector.handoff_protocol import Channel
from liubai.collector.recording import RecordingWriter, replay_recording
from liubai.collector.runs import IngestStats, RunCollector, RunInfo, ingest_run
from liubai.ebpf import procfs
from liubai.ebpf.events import Event
from liubai.ebpf.run import RunResult, attach_tree, exit_status_code, run_command
from liubai.lineage.model import AUDIT_ID_ENV, AuditIdError, parse_audit_id, parse_traceparent
from liubai.lineage.text import visible
from liubai.lineage.urls import redact_url, repository_uri

__all__ = ["RunContext", "register", "resolve_context"]

CANNOT_TRACE_EXIT = 125


@dataclass(slots=True)
class RunContext:
    """Who the run is for: its commit (and the repo that named it, with the URI of its remote), audit
    id and trace id."""

    commit: str | None
    commit_source: str | None
    repo: str | None
    audit_id: str | None
    trace_id: str | None
    repo_url: str | None = None


def _git(cwd: str, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="backslashreplace",
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def resolve_context(commit: str | None, audit_id: str | None, env: Mapping[str, str], cwd: str) -> RunContext:
    """Apply the precedence rules: flags, then CI variables, then the git checkout in ``cwd``."""
    source: str | None = None
    repo: str | None = None
    if commit:
        source = "--commit"
    else:
        for var in ("CI_COMMIT_SHA", "GITHUB_SHA"):
            if env.get(var):
                commit, source = env[var], var
                break
    if not commit:
        commit = _git(cwd, "rev-parse", "HEAD")
        source = "git rev-parse HEAD" if commit else None
    if source == "git rev-parse HEAD" or (commit and _git(cwd, "rev-parse", "HEAD") == commit):
        repo = _git(cwd, "rev-parse", "--show-toplevel")
    repo_url = _remote_uri(cwd) if repo else None
    raw_audit = audit_id or env.get(AUDIT_ID_ENV) or None
    trace_id: str | None = None
    if raw_audit:
        try:
            trace_id = parse_audit_id(raw_audit).trace
        except AuditIdError:
            trace_id = None  # kept raw: the join records it as rejected with the reason
    elif env.get("TRACEPARENT"):
        trace_id = parse_traceparent(env["TRACEPARENT"])
    return RunContext(commit.lower() if commit else None, source, repo, raw_audit, trace_id, repo_url)


def _remote_uri(cwd: str) -> str | None:
    """The URI of the checkout's remote: the current branch's upstream remote, else ``origin``, else the
    only remote there is; None without one (a local repository) or when it is no URI-able location."""
    branch = _git(cwd, "symbolic-ref", "--short", "HEAD")
    remote = _git(cwd, "config", "--get", f"branch.{branch}.remote") if branch else None
    if remote is None:
        names = (_git(cwd, "remote") or "").split()
        remote = "origin" if "origin" in names else names[0] if len(names) == 1 else None
    url = _git(cwd, "remote", "get-url", remote) if remote else None
    return repository_uri(url) if url else None


def _visible(text: str | None) -> str | None:
    return None if text is None else visible(text)


def _cannot_trace(reasons: list[str]) -> typer.Exit:
    return fail("cannot trace (the command was NOT run): " + "; ".join(reasons), code=CANNOT_TRACE_EXIT)


def trace(
    ctx: typer.Context,
    cmd: Annotated[
        list[str] | None, typer.Argument(help="The command to run, after '--'.", show_default=False)
    ] = None,
    commit: Annotated[
        str | None,
        typer.Option(
            "--commit", help="Commit the run is for (default: CI_COMMIT_SHA, GITHUB_SHA, git HEAD)."
        ),
    ] = None,
    audit_id: Annotated[
        str | None,
        typer.Option("--audit-id", help="x-gitops-audit-id of the run (default: X_GITOPS_AUDIT_ID)."),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option("--record", help="Also write the decoded events as JSON lines to this file."),
    ] = None,
    pid: Annotated[
        int | None,
        typer.Option("--pid", help="Attach to this running process and its descendants instead of CMD."),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Host name in node ids (default: this machine's).")
    ] = None,
    no_ingest: Annotated[
        bool, typer.Option("--no-ingest", help="Only record (with --record); write nothing to the store.")
    ] = False,
    linger: Annotated[
        float,
        typer.Option(
            "--linger",
            min=0,
            help="After CMD exits, keep tracing its still-running descendants for up to this many seconds.",
        ),
    ] = 5.0,
) -> None:
    """Run CMD under eBPF tracing; ingest the run, its process tree and the files read, written and executed.

    Each file the run writes is hashed (sha256) as soon as its last descriptor closes; that digest is
    what `liubai export --run RUN -f slsa` attests. CMD's exit code is liubai's (128+N when killed by
    signal N); 125 means tracing could not start and CMD was not run. With --pid, liubai traces until that process ends and exits 0. Needs root,
    tracefs and Debian's bcc (scripts/setup-ebpf).

    Example: sudo liubai trace --commit 3f2a9c1e0b7d4a5c6e8f9a0b1c2d3e4f5a6b7c8d -- make -j2 build
    """
    argv = list(cmd or [])
    if pid is None and not argv:
        raise fail("nothing to trace: give a command after '--' (or --pid PID)", code=2)
    if pid is not None and argv:
        raise fail("give either --pid or a command, not both", code=2)
    if no_ingest and record is None:
        raise fail("--no-ingest without --record would keep nothing", code=2)
    agent = _agent() if pid is None else None
    problems = _preflight() if agent is None else []
    if record is not None:
        try:
            record.open("w", encoding="utf-8").close()
        except OSError as exc:
            problems.append(f"cannot write the recording {record}: {exc.strerror}")
    if problems:
        if agent is not None:
            agent.close()
        raise _cannot_trace(list(problems))
    cwd = os.getcwd()
    rc = resolve_context(commit, audit_id, os.environ, cwd)
    hostname = host or socket.gethostname()
    infos: list[RunInfo] = []
    adopted: list[tuple[procfs.ProcInfo, tuple[int, int] | None]] = []

    def begin(
        root_pid: int, start_ns: int, root_cwd: str | None, command: tuple[str, ...], ppid: int
    ) -> None:
        """Record the root; text from argv, the environment and the OS may hold lone surrogates."""
        infos.append(
            RunInfo(
                host=visible(hostname),
                root_pid=root_pid,
                start_ns=start_ns,
                command=tuple(map(visible, command)),
                boot_offset_ns=procfs.boot_offset_ns(),
                cwd=_visible(root_cwd),
                commit=_visible(rc.commit),
                audit_id=_visible(rc.audit_id),
                trace_id=_visible(rc.trace_id),
                repo=_visible(rc.repo),
                repo_url=_visible(rc.repo_url),
                root_ppid=ppid,
                root_uid=os.geteuid() if pid is None else None,
            )
        )

    handed = _hand_off(agent, argv, lambda p, s: begin(p, s, cwd, tuple(argv), os.getpid()), linger)
    if handed is not None:
        result, events, decode_errors, still = (
            handed.result,
            handed.events,
            handed.decode_errors,
            handed.still_running,
        )
        if handed.failure:
            decode_errors += 1  # the run is marked incomplete: something was surely not read
            say(
                f"liubai: warning: the agent broke off the run ({handed.failure}); the trace is incomplete",
                err=True,
            )
    else:
        result, events, decode_errors, still = _trace_here(argv, pid, cwd, begin, adopted, linger)
    info = infos[0]
    collector = RunCollector(info)
    writer = RecordingWriter(str(record), info) if record is not None else None
    for proc_info, parent in adopted:
        collector.adopt(proc_info, parent)
        if writer is not None:
            writer.adopt(proc_info, parent)
    for event in events:
        collector.add(event)
        if writer is not None:
            writer.event(event)
    info.end_ns = result.end_ns
    root_proc = collector.procs.get((info.root_pid, info.start_ns))
    info.exit_code = (
        result.exit_code if result.exit_code is not None else (root_proc.exit_code if root_proc else None)
    )
    info.lost_events = result.lost_events + decode_errors
    info.still_running = still if pid is None else 0
    if writer is not None:
        writer.close(info)
    code = exit_status_code(info.exit_code) if pid is None else 0
    if info.lost_events:
        say(
            f"liubai: warning: {info.lost_events} kernel events were lost (ring buffer full); the graph is incomplete",
            err=True,
        )
    if info.still_running:
        say(
            f"liubai: warning: {info.still_running} processes of the run were still running when tracing "
            f"stopped (--linger {linger:g}s): their later activity is not recorded",
            err=True,
        )
    if not no_ingest:
        try:
            with store_session(ctx, create=True) as store:
                stats = ingest_run(store, collector)
        except typer.Exit as exc:
            raise typer.Exit(code or exc.exit_code) from None
        _summary(ctx, "traced", collector, stats, rc.commit, rc.commit_source)
    if record is not None:
        say(f"liubai: recorded {collector.events:,} events to {record}", err=True)
    raise typer.Exit(code)


def _preflight() -> list[str]:
    """What stops tracing here (the loader is imported only when we trace ourselves)."""
    from liubai.ebpf.loader import preflight

    return list(preflight())


def _agent() -> Channel | None:
    """The node agent to hand the command to, if one answers; else None (we trace it ourselves)."""
    try:
        return connect()
    except AgentUnavailable:
        return None


def _hand_off(
    agent: Channel | None, argv: list[str], started: Callable[[int, int], None], linger: float
) -> AgentRun | None:
    """The run as the agent traced it; None when there is no agent or it refused before CMD ran."""
    if agent is None:
        return None
    try:
        return run_with_agent(agent, argv, started, linger_s=linger)
    except AgentUnavailable:
        agent.close()
        return None


def _trace_here(
    argv: list[str],
    pid: int | None,
    cwd: str,
    begin: Callable[[int, int, str | None, tuple[str, ...], int], None],
    adopted: list[tuple[procfs.ProcInfo, tuple[int, int] | None]],
    linger: float,
) -> tuple[RunResult, list[Event], int, int]:
    """Load the tracer and run CMD (or attach to ``pid``) under it: (result, events, decode errors,
    processes still running)."""
    from liubai.collector.live_events import LiveEvents
    from liubai.ebpf.loader import Tracer, TracerError

    problems = _preflight()
    if problems:
        raise _cannot_trace(problems)
    try:
        tracer = Tracer()
    except TracerError as exc:
        raise _cannot_trace([str(exc)]) from None
    live = LiveEvents(tracer.decoder, lost=tracer.lost_events)
    tracer.on_raw(live, live.settle)
    try:
        if pid is None:

            def started(root_pid: int, start_ns: int) -> None:
                live.start_at(root_pid, cwd)  # the command is held until this returns: no chdir yet
                begin(root_pid, start_ns, cwd, tuple(argv), os.getpid())

            result = run_command(tracer, argv, started, alive=live.alive, linger_s=linger)
        else:
            try:
                root = procfs.proc_info(pid)
            except OSError:
                raise fail(f"no process with pid {pid}", code=2) from None
            begin(root.pid, root.start_ns, root.cwd, root.argv, root.ppid)
            starts: dict[int, int] = {}

            def adopt(info: procfs.ProcInfo) -> None:
                parent = (info.ppid, starts[info.ppid]) if info.ppid in starts and info.pid != pid else None
                starts[info.pid] = info.start_ns
                before = procfs.clock_boot_ns()  # traced already: its chdirs may race the read
                os_cwd = procfs.read_os_cwd(info.pid)
                live.start_at(info.pid, os_cwd, (before, procfs.clock_boot_ns()))
                adopted.append((info, parent))

            def ready(count: int) -> None:
                say(f"liubai: attached to pid {pid} ({count} processes); tracing until it exits", err=True)

            result = attach_tree(tracer, pid, adopt, on_ready=ready)
    finally:
        tracer.close(background=True)  # every event is read: the kernel's detach need not hold us
    events = list(live.events())
    return result, events, live.decode_errors, live.alive()


def _summary(
    ctx: typer.Context,
    verb: str,
    collector: RunCollector,
    stats: IngestStats,
    commit: str | None,
    source: str | None,
) -> None:
    info = collector.info
    linked = f"commit {commit[:12]} (from {source})" if commit else "no commit (none given or found)"
    say(
        f"liubai: {verb} run {info.root_pid} on {info.host}: {stats.processes:,} processes, "
        f"{stats.file_accesses:,} file accesses, {info.lost_events} lost events, exit code {info.exit_code}; "
        f"linked to {linked}; stored in {redact_url(state(ctx).store_url)}",
        err=True,
    )
    doubts = collector.doubts()
    if doubts:
        say("liubai: uncertain: " + ", ".join(f"{n:,} {what}" for what, n in doubts.items()), err=True)


def events(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file written by 'liubai trace --record'.")],
    commit: Annotated[
        str | None, typer.Option("--commit", help="Link the run to this commit instead of the recorded one.")
    ] = None,
    audit_id: Annotated[
        str | None, typer.Option("--audit-id", help="Use this audit id instead of the recorded one.")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Host name in node ids instead of the recorded one.")
    ] = None,
) -> None:
    """Replay a recorded trace into the graph (no BPF needed); gives the same graph as the live ingest.

    Example: liubai ingest events build-run.jsonl --commit 3f2a9c1e0b7d4a5c6e8f9a0b1c2d3e4f5a6b7c8d
    """
    trace_id = None
    if audit_id:
        try:
            trace_id = parse_audit_id(audit_id).trace
        except AuditIdError:
            trace_id = None
    try:
        with open(file, encoding="utf-8", errors="surrogateescape") as fh:  # see replay_recording
            replay = replay_recording(
                fh,
                str(file),
                commit=commit.lower() if commit else None,
                audit_id=audit_id,
                trace_id=trace_id,
                host=host,
            )
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    for r in replay.rejected[:20]:
        say(f"rejected {r.location}: {r.reason}", err=True)
    if len(replay.rejected) > 20:
        say(f"... and {len(replay.rejected) - 20} more rejected lines (all kept in the store)", err=True)
    if not replay.complete:
        say(f"liubai: warning: {file} has no 'end' line (the recording was cut short)", err=True)
    with store_session(ctx, create=True) as store:
        stats = ingest_run(store, replay.collector, replay.rejected)
    _summary(
        ctx,
        "replayed",
        replay.collector,
        stats,
        replay.collector.info.commit,
        "the recording" if not commit else "--commit",
    )


def register(app: typer.Typer) -> None:
    app.command(
        "trace",
        context_settings={"allow_extra_args": False, "ignore_unknown_options": True},
    )(trace)
    ingest_app.command("events")(events)
