"""``liubai agent``: ship log files and traced-run recordings to a liubai API, spooling while it is away."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from platformdirs import user_state_dir

from liubai.api.cli.common import fail, fail_error, say
from liubai.lineage.urls import has_user_info, redact_url

if TYPE_CHECKING:
    from liubai.collector.agent import Agent

__all__ = ["agent_cmd", "register"]


def agent_cmd(
    server: Annotated[str, typer.Option("--server", envvar="LIUBAI_SERVER", help="API base URL.")],
    token: Annotated[
        str | None, typer.Option("--token", envvar="LIUBAI_TOKEN", help="API token with the ingest scope.")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="Read the token from this file (keeps it out of ps).")
    ] = None,
    logs: Annotated[
        list[Path] | None, typer.Option("--logs", help="JSON-lines log file (repeatable).")
    ] = None,
    otlp: Annotated[
        list[Path] | None, typer.Option("--otlp", help="OTLP/JSON log export (repeatable).")
    ] = None,
    events: Annotated[
        list[Path] | None,
        typer.Option("--events", help="Recording from 'liubai trace --record' (repeatable)."),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Positions, status.json and the spool (default: user state dir)."),
    ] = None,
    name: Annotated[
        str, typer.Option("--name", help="Agent name reported to the API's /metrics.")
    ] = socket.gethostname(),
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=100_000, help="Records per batch.")
    ] = 500,
    spool_max: Annotated[int, typer.Option("--spool-max-bytes", min=1024, help="Spool size limit.")] = 256
    * 2**20,
    send_deadline: Annotated[
        float, typer.Option("--send-deadline", min=0.1, help="Seconds to retry one batch before spooling it.")
    ] = 10.0,
    deadline: Annotated[
        float | None,
        typer.Option("--deadline", min=0.1, help="Give up waiting for the API after this many seconds."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep running and re-check inputs for new records.")
    ] = False,
    poll: Annotated[float, typer.Option("--poll", min=0.05, help="Seconds between passes.")] = 1.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port", min=1, max=65535, help="Serve the agent's own Prometheus metrics on 127.0.0.1."
        ),
    ] = None,
    ebpf: Annotated[
        bool,
        typer.Option("--ebpf", help="Node mode: trace the processes of this node's pod containers (root)."),
    ] = False,
    window: Annotated[
        float, typer.Option("--window", min=0.1, help="Node mode: seconds per recorded window.")
    ] = 10.0,
    include_namespace: Annotated[
        list[str] | None,
        typer.Option("--include-namespace", help="Node mode: record only these namespaces (repeatable)."),
    ] = None,
    exclude_namespace: Annotated[
        list[str] | None,
        typer.Option("--exclude-namespace", help="Node mode: leave these namespaces out (repeatable)."),
    ] = None,
    exclude_path: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude-path",
            help="Node mode: leave opens under this prefix out, counted (repeatable; default /proc /sys /dev).",
        ),
    ] = None,
    max_processes: Annotated[
        int,
        typer.Option(
            "--max-processes", min=1, help="Node mode: processes per container per window recorded."
        ),
    ] = 1000,
    max_paths: Annotated[
        int, typer.Option("--max-paths", min=1, help="Node mode: distinct paths per container per window.")
    ] = 2000,
    node_name: Annotated[
        str, typer.Option("--node-name", help="Node mode: this node's name in process and file ids.")
    ] = socket.gethostname(),
    namespace_of: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace-of", help="Node mode: POD_UID=NAMESPACE for the namespace filters (repeatable)."
        ),
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option("--kubeconfig", help="Node mode: look Pods' namespaces up in this cluster."),
    ] = None,
    kube_node: Annotated[
        str | None,
        typer.Option("--kube-node", help="Node mode: list only the Pods of this Kubernetes node."),
    ] = None,
    trace_socket: Annotated[
        str | None,
        typer.Option(
            "--trace-socket",
            envvar="LIUBAI_AGENT_SOCKET",
            help="Node mode: take 'liubai trace' commands on this socket, or 'off' "
            "(default /run/liubai/trace.sock).",
        ),
    ] = None,
) -> None:
    """Ship records to a liubai API; spool to disk while it is down, catch up in order when it is back.

    Example: liubai agent --server http://10.0.0.5:8000 --token lb_… --logs /var/log/app.jsonl --events run.events

    Node mode (as root): liubai agent --server http://10.0.0.5:8000 --token-file /etc/liubai/token --ebpf
    --follow --exclude-namespace kube-system
    """
    from liubai.collector.agent import (  # httpx only when shipping
        Agent,
        AgentConfig,
        AgentError,
        Source,
        make_source,
    )

    # One plain line per event (no wrapping): agents run under systemd/journald and log scrapers.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise at INFO
    server = _checked_server(server)
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise fail(f"cannot read --token-file {token_file}: not UTF-8 text") from None
        except OSError as exc:
            raise fail(f"cannot read --token-file {token_file}: {exc.strerror}") from None
    if token is not None and (not token.isascii() or not token.isprintable() or " " in token):
        where = f"--token-file {token_file}" if token_file is not None else "--token"
        raise fail(f"the token in {where} contains a space, line break, control or non-ASCII character")
    inputs = (
        [("logs", p) for p in logs or []]
        + [("otlp", p) for p in otlp or []]
        + [("events", p) for p in events or []]
    )
    if not inputs and not ebpf:
        raise fail("nothing to ship: give --logs, --otlp, --events or --ebpf")
    state = state_dir or Path(user_state_dir("liubai")) / "agent"
    node = None
    if ebpf:
        from liubai.api.cli.agent_node import NodeSettings, start_node_mode
        from liubai.collector.handoff_protocol import socket_setting

        settings = NodeSettings(
            node_name=node_name,
            window_s=window,
            include_namespaces=tuple(include_namespace or ()),
            exclude_namespaces=tuple(exclude_namespace or ()),
            exclude_paths=tuple(exclude_path) if exclude_path else None,
            max_processes=max_processes,
            max_paths=max_paths,
            namespace_of=tuple(namespace_of or ()),
            kubeconfig=kubeconfig,
            kube_node=kube_node,
            trace_socket=socket_setting(trace_socket),
        )
        node = start_node_mode(settings, state)
        follow = True  # a node is recorded until the agent is stopped
    try:
        sources: list[Source] = [make_source(kind, str(path)) for kind, path in inputs]
        if node is not None:
            sources.append(node.source)
        agent = Agent(
            AgentConfig(
                server=server,
                token=token,
                state_dir=state,
                name=name,
                batch_size=batch_size,
                spool_max_bytes=spool_max,
                send_deadline_s=send_deadline,
                poll_s=poll,
                deadline_s=deadline,
            ),
            sources,
        )
    except AgentError as exc:
        raise fail_error(exc) from None
    except OSError as exc:
        raise fail(f"cannot use agent state dir: {exc}") from None
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if node is not None:
            node.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if metrics_port is not None:
        try:
            _serve_metrics(agent, metrics_port)
        except OSError as exc:
            agent.close()
            raise fail(f"cannot serve metrics on 127.0.0.1:{metrics_port}: {exc.strerror or exc}") from None
    try:
        status = agent.run(follow=follow, should_stop=lambda: stopping or (node is not None and node.failed))
        if node is not None:  # the last window: to the API, or the spool
            node.finish()
            agent.pump(node.source)
            if node.failed:
                raise fail(f"--ebpf: recording stopped: {node.error}")
    except AgentError as exc:
        raise fail_error(exc) from None
    finally:
        if node is not None:
            node.finish()
        agent.close()
    say(
        f"sent {status.sent_batches} batches ({status.duplicate_batches} already applied), "
        f"spooled {status.spooled_batches}, replayed {status.replayed_batches}, dropped {status.dropped_batches}, "
        f"refused {status.refused_batches} (kept in dead-letter), split {status.split_batches}, "
        f"{status.oversized_records} records over the API's limit sent as rejects; {status.spool_pending} still spooled"
    )
    if not status.done and not follow and not stopping:
        raise typer.Exit(1)


def _checked_server(server: str) -> str:
    """``server`` if it is an http(s) URL with a host; else one line naming it (any password masked)."""
    import httpx

    shown = redact_url(server)
    try:
        url = httpx.URL(server)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:  # its message may quote a password
        raise fail(
            f"--server {shown!r} is not a URL" + ("" if has_user_info(server) else f": {exc}")
        ) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise fail(f"--server {shown!r} is not an http(s) URL with a host, e.g. http://10.0.0.5:8000")
    return server


def _serve_metrics(agent: Agent, port: int) -> None:
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    for field, doc in (
        ("spool_bytes", "Bytes waiting in the spool"),
        ("spool_pending", "Batches waiting in the spool"),
        ("dropped_batches", "Batches dropped because the spool was full"),
        ("sent_batches", "Batches the API applied"),
        ("refused_batches", "Batches the API refused for good (kept in the spool's dead-letter directory)"),
        ("split_batches", "Batches halved because the API refused them as too large"),
        ("oversized_records", "Records alone over the API's ingest limit, sent as rejected records"),
    ):
        gauge = Gauge(f"liubai_agent_{field}", doc, registry=registry)
        gauge.set_function(_reader(agent, field))
    start_http_server(port, addr="127.0.0.1", registry=registry)


def _reader(agent: Agent, field: str) -> Callable[[], float]:
    return lambda: float(getattr(agent.status, field))


def register(app: typer.Typer) -> None:
    app.command("agent")(agent_cmd)
