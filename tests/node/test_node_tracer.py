"""The node tracer against real runc containers in kubelet-style cgroups: attribution, host silence,
adoption of running processes, the script's own actions, the audit id, and restarts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from liubai.ebpf import procfs
from liubai.ebpf.events import (
    ADOPT_FORK,
    ADOPT_PROBE,
    ADOPT_SCAN,
    AdoptEvent,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    OpenEvent,
)
from liubai.ebpf.node import NodeEvent, NodeOptions, NodeTracer
from tests.node.conftest import Recorder, exited, run_pod
from tests.runc_pod import PodContainer, cgroups_path, new_container_id, new_pod_uid

AUDIT_ID = "git-sha1:" + "5e" * 20 + "|trace:" + "0af7651916cd43dd8448eb211c80319c"


def _busybox_sha256() -> str:
    with open("/bin/busybox", "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _execs(events: list[NodeEvent]) -> list[ExecEvent]:
    return [e.event for e in events if isinstance(e.event, ExecEvent)]


def _opens(events: list[NodeEvent]) -> set[str]:
    return {e.event.path for e in events if isinstance(e.event, OpenEvent)}


@pytest.mark.parametrize(
    ("runtime", "qos"),
    [
        ("containerd", "burstable"),
        ("crio", "besteffort"),
        ("docker", "guaranteed"),
        ("cgroupfs", "besteffort"),
        ("cgroupfs", "guaranteed"),
    ],
)
def test_container_processes_land_under_their_pod_and_container(
    node: Recorder, runtime: str, qos: str
) -> None:
    pod = new_pod_uid()
    box = PodContainer(pod, runtime=runtime, qos=qos)
    code, out, err = run_pod(box, "cat /data/config.txt > /tmp/copy; cat /tmp/copy; sleep 0.3; echo end")
    assert code == 0, err
    assert out == "setting=1\nend\n"
    events = node.wait_for(exited(box))
    mine = node.of(box)
    assert mine, f"no event attributed to the {runtime} container"
    ref = mine[0].container
    assert ref is not None
    assert (ref.pod_uid, ref.container_id, ref.runtime, ref.qos) == (
        pod,
        box.container_id,
        "containerd" if runtime == "containerd" else runtime,
        qos,
    )
    # the container's first exec is seen (runc init moved itself into the cgroup before it)
    assert "/bin/sh" in [e.filename for e in _execs(mine)]
    assert {"/data/config.txt", "/tmp/copy"} <= _opens(mine)
    # every event leaves with a start time (the kernel's adoptions are fixed up from /proc)
    assert all(e.event.start_ns > 0 for e in mine)
    # no event of another pod's cgroup is given this container
    pids = {e.event.pid for e in mine}
    assert all(
        e.container == ref
        for e in events
        if e.event.pid in pids and e.container is not None and e.container.pod_uid == pod
    )


def test_the_scripts_own_actions_are_what_the_kernel_reports(node: Recorder) -> None:
    box = PodContainer(new_pod_uid())
    script = "cat /data/config.txt > /tmp/a; touch /tmp/b; sh -c 'exit 3'; sleep 0.3; echo end"
    code, _out, err = run_pod(box, script)
    assert code == 0, err
    node.wait_for(exited(box))
    mine = node.of(box)
    sh = next(e for e in _execs(mine) if e.filename == "/bin/sh")
    # the image was hashed through the container's root: busybox, not the host's /bin/sh
    assert sh.sha256 == _busybox_sha256()
    assert {"/data/config.txt", "/tmp/a", "/tmp/b"} <= _opens(mine)
    writes = {e.event.path for e in mine if isinstance(e.event, OpenEvent) and e.event.flags & 3}
    assert {"/tmp/a", "/tmp/b"} <= writes and "/data/config.txt" not in writes
    exits = [e.event for e in mine if isinstance(e.event, ExitEvent)]
    assert 3 in [x.exit_code for x in exits]  # the inner shell
    assert next(x for x in exits if x.pid == sh.pid).exit_code == 0  # the container's init
    # every process that ran in the container was born there (fork) or adopted there, and ended
    born = {e.event.child for e in mine if isinstance(e.event, ForkEvent)}
    adopted = {e.event.pid for e in mine if isinstance(e.event, AdoptEvent)}
    assert {e.event.pid for e in mine} <= born | adopted
    assert {x.pid for x in exits} == born | adopted


def test_host_processes_never_appear(node: Recorder, tmp_path: object) -> None:
    marker = f"/tmp/liubai-host-{uuid.uuid4().hex}"
    box = PodContainer(new_pod_uid())
    box.start("i=0; while [ $i -lt 20 ]; do cat /data/config.txt > /dev/null; i=$((i+1)); done; sleep 0.5")
    try:
        host = subprocess.run(
            ["sh", "-c", f"echo x > {marker}; cat {marker}; ls / > /dev/null"],
            capture_output=True,
            check=True,
        )
        assert host.stdout == b"x\n"
        code, _out, err = box.wait(timeout=60)
        assert code == 0, err
    finally:
        box.delete()
        if os.path.exists(marker):
            os.unlink(marker)
    events = node.wait_for(exited(box))
    assert node.of(box)
    assert not [e for e in events if isinstance(e.event, OpenEvent) and marker in e.event.path]
    # nothing outside a pod's cgroup: every event is a container's
    assert [e for e in events if e.container is None] == []
    assert node.tracer.counters["unattributed"] == 0


def test_a_container_gone_before_its_events_are_read_is_still_attributed(pod_roots: list[str]) -> None:
    """A busy node's reader falls behind: a short container and its cgroup may be gone before its
    first event is read, so /proc and the cgroup tree can no longer name it."""
    box = PodContainer(new_pod_uid())
    with NodeTracer() as tracer:
        tracer.start()
        code, out, err = run_pod(box, "cat /data/config.txt; echo end")
        assert (code, out) == (0, "setting=1\nend\n"), err
        assert not os.path.isdir(os.path.dirname(pod_roots[0]) + box.cgroup)  # runc removed it
        events: list[NodeEvent] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not exited(box)(events):
            events += tracer.poll(50)
        events += tracer.flush()
        unattributed = tracer.counters["unattributed"]
    of_box = [e for e in events if e.container and e.container.container_id == box.container_id]
    assert "/data/config.txt" in _opens(of_box)
    assert {e.container.pod_uid for e in of_box if e.container} == {box.pod_uid}
    assert [e for e in events if e.container is None] == [] and unattributed == 0


def test_processes_running_before_the_tracer_are_adopted(pod_roots: list[str]) -> None:
    box = PodContainer(new_pod_uid())
    # waits (without forking: no fork may adopt it first) for the host to write into its fifo, then acts
    box.start(
        "mkfifo /tmp/go; read x < /tmp/go; cat /data/config.txt > /tmp/after; sleep 0.3; echo end",
        {"X_GITOPS_AUDIT_ID": AUDIT_ID},
    )
    try:
        init = None
        for _ in range(200):
            init = box.init_pid()
            if init is not None and os.path.exists(f"/proc/{init}/root/tmp/go"):
                break
            time.sleep(0.05)
        assert init is not None
        with NodeTracer() as tracer:
            adopted = tracer.start()
            mine = [a for a in adopted if a.container.container_id == box.container_id]
            assert init in [a.info.pid for a in mine]
            first = next(a for a in mine if a.info.pid == init)
            assert first.container.pod_uid == box.pod_uid
            assert first.audit_id == AUDIT_ID
            assert first.info.cwd == "/"  # the container's view, not the bundle's host path
            with open(f"/proc/{init}/root/tmp/go", "w") as fh:
                fh.write("1")
            events: list[NodeEvent] = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not any(
                isinstance(e.event, ExitEvent) and e.event.pid == init for e in events
            ):
                events += tracer.poll(50)
            events += tracer.flush()
        code, _out, err = box.wait(timeout=30)
        assert code == 0, err
    finally:
        box.delete()
    of_box = [e for e in events if e.container and e.container.container_id == box.container_id]
    assert "/tmp/after" in _opens(of_box)
    assert any(isinstance(e.event, ExitEvent) and e.event.pid == init for e in of_box)


def test_audit_id_is_read_from_the_environment_at_exec(node: Recorder) -> None:
    with_id = PodContainer(new_pod_uid())
    without = PodContainer(new_pod_uid())
    run_pod(with_id, "sleep 0.3; echo end", {"X_GITOPS_AUDIT_ID": AUDIT_ID})
    run_pod(without, "sleep 0.3; echo end")
    node.wait_for(lambda ev: exited(with_id)(ev) and exited(without)(ev))
    first = next(
        e for e in node.of(with_id) if isinstance(e.event, ExecEvent) and e.event.filename == "/bin/sh"
    )
    assert first.audit_id == AUDIT_ID
    other = next(
        e for e in node.of(without) if isinstance(e.event, ExecEvent) and e.event.filename == "/bin/sh"
    )
    assert other.audit_id is None


def test_a_restarted_container_belongs_to_the_same_pod(node: Recorder) -> None:
    pod = new_pod_uid()
    first, second = PodContainer(pod), PodContainer(pod)
    run_pod(first, "echo one > /tmp/x; sleep 0.2; echo end")
    run_pod(second, "echo two > /tmp/x; sleep 0.2; echo end")
    node.wait_for(lambda ev: exited(first)(ev) and exited(second)(ev))
    a, b = node.of(first), node.of(second)
    assert a and b
    assert {e.container.pod_uid for e in a + b if e.container} == {pod}
    assert first.container_id != second.container_id
    assert {e.event.pid for e in a}.isdisjoint({e.event.pid for e in b})


def test_without_v2_pod_cgroups_exec_probes_attribute_from_proc(pod_roots: list[str], tmp_path: Path) -> None:
    """A pure cgroup v1 host, as far as the tracer can tell (its v2 mount holds no pod root): the
    kernel cannot filter, says so, and each exec is checked against /proc; host execs stay out."""
    waiting = PodContainer(new_pod_uid())
    waiting.start("mkfifo /tmp/go; read x < /tmp/go; echo end")  # its cgroups exist in v1
    try:
        for _ in range(200):
            pid = waiting.init_pid()
            if pid is not None and os.path.exists(f"/proc/{pid}/root/tmp/go"):
                break
            time.sleep(0.05)
        with NodeTracer(NodeOptions(cgroup2=str(tmp_path))) as tracer:
            tracer.start()
            assert tracer.attribution == "procfs"
            box = PodContainer(new_pod_uid(), runtime="cgroupfs")
            # what a process does before /proc answered its exec's probe is not seen: act a bit later
            box.start("sleep 0.5; cat /data/config.txt > /tmp/out; sleep 0.3; echo end")
            subprocess.run(["sh", "-c", "cat /etc/hostname > /dev/null"], check=True)
            events: list[NodeEvent] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and box.proc is not None and box.proc.poll() is None:
                events += tracer.poll(50)
            events += tracer.poll(50) + tracer.flush()
            box.wait(timeout=30)
            box.delete()
            assert tracer.counters["probes"] > 0
        init = waiting.init_pid()
        assert init is not None
        with open(f"/proc/{init}/root/tmp/go", "w") as fh:
            fh.write("1")
        waiting.wait(timeout=30)
    finally:
        waiting.delete()
    mine = [e for e in events if e.container and e.container.container_id == box.container_id]
    adopted = [e.event for e in mine if isinstance(e.event, AdoptEvent)]
    assert adopted and adopted[0].reason == ADOPT_PROBE
    assert "/tmp/out" in _opens(mine)
    assert [e for e in events if e.container is None] == []


def test_the_first_pod_root_on_a_node_is_found_and_its_running_processes_adopted(
    pod_roots: list[str],
) -> None:
    """A kubelet nested like kind's (kubelet.slice/kubelet-kubepods.slice) whose root appears only after
    the tracer started: the re-scan finds it and adopts what already runs there."""
    with NodeTracer(NodeOptions(rescan_s=0.2)) as tracer:
        tracer.start()
        box = PodContainer(new_pod_uid(), prefix="/kubelet.slice")
        assert box.cgroup.startswith(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
        )
        box.start(
            "mkfifo /tmp/go; read x < /tmp/go; cat /data/config.txt > /tmp/later; sleep 0.3; echo end",
            {"X_GITOPS_AUDIT_ID": AUDIT_ID},
        )
        try:
            events: list[NodeEvent] = []
            init = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                events += tracer.poll(50)
                init = box.init_pid()
                if init is not None and any(
                    isinstance(e.event, AdoptEvent) and e.event.pid == init for e in events
                ):
                    break
            assert init is not None
            while not os.path.exists(f"/proc/{init}/root/tmp/go") and time.monotonic() < deadline:
                time.sleep(0.05)
            with open(f"/proc/{init}/root/tmp/go", "w") as fh:
                fh.write("1")
            code, _out, err = box.wait(timeout=30)
            assert code == 0, err
            events += tracer.poll(50) + tracer.flush()
        finally:
            box.delete()
            _remove_cgroups("kubelet.slice")
    mine = [e for e in events if e.container and e.container.container_id == box.container_id]
    scanned = next(e for e in mine if isinstance(e.event, AdoptEvent) and e.event.pid == init)
    assert isinstance(scanned.event, AdoptEvent) and scanned.event.reason == ADOPT_SCAN
    assert scanned.audit_id == AUDIT_ID
    assert scanned.container is not None and scanned.container.pod_uid == box.pod_uid
    assert "/tmp/later" in _opens(mine)


def _remove_cgroups(name: str) -> None:
    from tests.node.conftest import _remove_tree

    for entry in os.scandir("/sys/fs/cgroup"):
        if entry.is_dir():
            _remove_tree(os.path.join(entry.path, name))


def test_a_process_moved_into_a_pod_cgroup_is_adopted_at_its_next_fork(
    node: Recorder, pod_roots: list[str]
) -> None:
    """The kernel adopts it (no root pid, no /proc scan): its events carry its real start time,
    which the kernel cannot read and user space fixes, and its container."""
    uid, cid = new_pod_uid(), new_container_id()
    mount = os.path.dirname(pod_roots[0])
    cgroup = os.path.join(mount, cgroups_path(uid, cid).lstrip("/"))
    os.makedirs(cgroup)
    proc = subprocess.Popen(
        ["sh", "-c", "read x; cat /etc/hostname > /dev/null; sleep 0.3"], stdin=subprocess.PIPE
    )
    try:
        start = procfs.start_ns(proc.pid)
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as fh:
            fh.write(str(proc.pid))
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        events = node.wait_for(
            lambda ev: any(isinstance(e.event, ExitEvent) and e.event.pid == proc.pid for e in ev)
        )
    finally:
        proc.kill()
        proc.wait()
        for path in (cgroup, os.path.dirname(cgroup)):  # the container's and the pod's level
            try:
                os.rmdir(path)
            except OSError:
                pass
    own = [e for e in events if e.event.pid == proc.pid]
    assert isinstance(own[0].event, AdoptEvent) and own[0].event.reason == ADOPT_FORK
    assert {e.event.start_ns for e in own} == {start}
    assert all(e.container is not None and e.container.container_id == cid for e in own)
    assert any(isinstance(e.event, ForkEvent) for e in own)
