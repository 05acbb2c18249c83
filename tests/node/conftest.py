"""The node tests' parts: the loaded node tracer, read in the background, and real runc containers."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from liubai.ebpf import cgroups
from liubai.ebpf.node import NodeEvent, NodeTracer
from tests._real import missing
from tests.runc_pod import PodContainer, runc_missing


@pytest.fixture(scope="session")
def kernel() -> None:
    from liubai.ebpf.loader import preflight

    problems = preflight()
    if problems:
        missing("ebpf", "; ".join(problems))


@pytest.fixture(scope="session")
def runc() -> None:
    reason = runc_missing()
    if reason is not None:
        missing("runc", reason)


@pytest.fixture(scope="session")
def pod_roots(kernel: None, runc: None) -> Iterator[list[str]]:
    """The pod roots a kubelet creates when it starts (systemd and cgroupfs drivers), in cgroup v2."""
    mount = cgroups.cgroup2_mount()
    if mount is None:
        missing("ebpf", "no cgroup v2 hierarchy is mounted (node mode filters on v2 cgroup ids)")
        raise AssertionError  # not reached
    made = []
    for name in ("kubepods.slice", "kubepods"):
        path = os.path.join(mount, name)
        if not os.path.isdir(path):
            os.mkdir(path)
            made.append(name)
    yield [os.path.join(mount, n) for n in ("kubepods.slice", "kubepods")]
    # runc removes a container's own cgroup only: take away the pod and QoS levels the tests made
    hierarchies = [mount, *(e.path for e in os.scandir("/sys/fs/cgroup") if e.is_dir() and e.path != mount)]
    for name in made:
        for hierarchy in hierarchies:
            _remove_tree(os.path.join(hierarchy, name))


def _remove_tree(path: str) -> None:
    """Remove an empty cgroup tree, deepest first (a cgroup with processes stays)."""
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


class Recorder:
    """A started NodeTracer polled by a thread; ``events`` grows as the kernel reports."""

    def __init__(self, tracer: NodeTracer) -> None:
        self.tracer = tracer
        self.events: list[NodeEvent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self.tracer.poll(20)
            with self._lock:
                self.events.extend(got)
        with self._lock:
            self.events.extend(self.tracer.flush())

    def snapshot(self) -> list[NodeEvent]:
        with self._lock:
            return list(self.events)

    def wait_for(self, pred: Callable[[list[NodeEvent]], bool], timeout: float = 15.0) -> list[NodeEvent]:
        deadline = time.monotonic() + timeout
        while True:
            events = self.snapshot()
            if pred(events) or time.monotonic() > deadline:
                return events
            time.sleep(0.05)

    def of(self, container: PodContainer) -> list[NodeEvent]:
        return [
            e for e in self.snapshot() if e.container and e.container.container_id == container.container_id
        ]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture(scope="session")
def node(pod_roots: list[str]) -> Iterator[Recorder]:
    tracer = NodeTracer()
    tracer.start()
    rec = Recorder(tracer)
    yield rec
    rec.stop()
    tracer.close()


def run_pod(container: PodContainer, script: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``script`` in ``container`` to its end, then remove the container."""
    container.start(script, env)
    try:
        return container.wait(timeout=60)
    finally:
        container.delete()


def exited(container: PodContainer) -> Callable[[list[NodeEvent]], bool]:
    """Whether the events show the container's first process ended (its last event)."""

    def check(events: list[NodeEvent]) -> bool:
        pid = None
        for e in events:
            if e.container is None or e.container.container_id != container.container_id:
                continue
            if (
                type(e.event).__name__ == "ExecEvent"
                and pid is None
                and getattr(e.event, "filename", "") == "/bin/sh"
            ):
                pid = e.event.pid
            if pid is not None and type(e.event).__name__ == "ExitEvent" and e.event.pid == pid:
                return True
        return False

    return check
