"""``liubai agent --ebpf``: the node mode, recording pod containers' processes into a journal that the
agent ships. Recording runs in its own thread, so the API being down never holds it up."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from liubai.api.cli.common import fail

if TYPE_CHECKING:
    from liubai.collector.agent import Source
    from liubai.collector.node_options import NodeCollectorOptions
    from liubai.collector.node_recorder import NodeRecorder

__all__ = ["NodeMode", "NodeSettings", "start_node_mode"]


@dataclass(frozen=True, slots=True)
class NodeSettings:
    node_name: str
    window_s: float
    include_namespaces: tuple[str, ...]
    exclude_namespaces: tuple[str, ...]
    exclude_paths: tuple[str, ...] | None
    max_processes: int
    max_paths: int
    namespace_of: tuple[str, ...]
    kubeconfig: Path | None
    kube_node: str | None
    trace_socket: Path | None = None  # where 'liubai trace' hands commands over (None: off)


@dataclass(slots=True)
class NodeMode:
    recorder: NodeRecorder
    source: Source
    thread: threading.Thread
    stop: threading.Event

    @property
    def failed(self) -> bool:
        return self.recorder.error is not None

    @property
    def error(self) -> str:
        return self.recorder.error or ""

    def finish(self) -> None:
        """Stop recording; the last window is in the journal when this returns."""
        self.stop.set()
        self.thread.join()


def _namespace_table(pairs: tuple[str, ...]) -> dict[str, str]:
    table: dict[str, str] = {}
    for pair in pairs:
        uid, sep, namespace = pair.partition("=")
        if not sep or not uid or not namespace:
            raise fail(f"--namespace-of {pair!r}: want POD_UID=NAMESPACE")
        table[uid] = namespace
    return table


def _options(settings: NodeSettings) -> NodeCollectorOptions:
    from liubai.collector.node_options import (
        DEFAULT_EXCLUDED_PATHS,
        NamespaceOf,
        NodeCollectorOptions,
        static_namespaces,
    )

    lookup: NamespaceOf | None = None
    table = _namespace_table(settings.namespace_of)
    if settings.kubeconfig is not None:
        from liubai.collector.k8s.api import KubeError, connect
        from liubai.collector.node_namespaces import KubeNamespaces

        try:
            kube = KubeNamespaces(connect(str(settings.kubeconfig)), settings.kube_node)
        except KubeError as exc:
            raise fail(f"--kubeconfig {settings.kubeconfig}: {exc}") from None

        def both(uid: str) -> str | None:
            return table.get(uid) or kube(uid)

        lookup = both
    elif table:
        lookup = static_namespaces(table)
    try:
        return NodeCollectorOptions(
            host=settings.node_name,
            window_s=settings.window_s,
            include_namespaces=frozenset(settings.include_namespaces),
            exclude_namespaces=frozenset(settings.exclude_namespaces),
            exclude_paths=DEFAULT_EXCLUDED_PATHS
            if settings.exclude_paths is None
            else settings.exclude_paths,
            max_processes=settings.max_processes,
            max_paths=settings.max_paths,
            namespace_of=lookup,
        )
    except ValueError as exc:
        raise fail(f"node mode: {exc}") from None


def start_node_mode(settings: NodeSettings, state_dir: Path) -> NodeMode:
    """Load the node tracer and start recording; one clear line and exit 2 when it cannot run here."""
    opts = _options(settings)
    if os.geteuid() != 0:
        raise fail("--ebpf traces the node's pod containers with eBPF and needs root (run it as root)")
    try:
        from liubai.ebpf.node import NodeOptions, NodeTracer
    except ImportError as exc:
        raise fail(f"--ebpf needs bcc (Debian package python3-bpfcc): {exc}") from None
    from liubai.collector.node_journal import NodeJournalSource
    from liubai.collector.node_recorder import NodeRecorder

    try:
        tracer = NodeTracer(NodeOptions(handoff_socket=settings.trace_socket))
        recorder = NodeRecorder(tracer, opts, state_dir)
        adopted = recorder.start()
    except (OSError, RuntimeError, ValueError) as exc:
        raise fail(f"--ebpf: cannot load the node tracer: {' '.join(str(exc).split())}") from None
    stop = threading.Event()
    thread = threading.Thread(target=recorder.run, args=(stop,), name="node-recorder", daemon=True)
    thread.start()
    source = NodeJournalSource(str(recorder.journal.path), label=f"node:{settings.node_name}")
    logging.getLogger("liubai.node").info(
        "node mode on %s: %d processes already running in pod containers adopted; windows of %.0f s in %s",
        settings.node_name,
        adopted,
        settings.window_s,
        recorder.journal.path,
    )
    if settings.trace_socket is not None:
        logging.getLogger("liubai.node").info(
            "trace hand-off: 'liubai trace' commands are taken on %s", settings.trace_socket
        )
    else:
        logging.getLogger("liubai.node").info("trace hand-off: off ('liubai trace' loads its own tracer)")
    return NodeMode(recorder, source, thread, stop)
