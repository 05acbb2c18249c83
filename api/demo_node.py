"""The demo's node step: the payments Pod's container run for real and traced by the node agent.

No kubelet runs here, so the demo does the kubelet's part for one Pod: it runs the container with Debian's
``runc`` in the cgroup a containerd + systemd kubelet would give it (``pod_container``), with the
environment the Pod spec asks for (``X_GITOPS_AUDIT_ID`` from the annotation the webhook stamped, as the
downward API would), and writes the container's status back to the Pod. ``liubai agent --ebpf`` traces it
and ships to a ``liubai serve`` of the demo's store, as on a real node. Where runc or eBPF is missing, the
demo ingests the journal such a run left (``RECORDED_NODE``) with ``liubai ingest node`` and says so.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from liubai.api.demo_cluster import NAMESPACE, DeployFailed, free_port, kubectl, liubai_cmd, poll_until
from liubai.api.pod_container import PodContainer, runc_missing
from liubai.lineage.model import AUDIT_ID_ENV

__all__ = ["RECORDED_NODE", "NodeRun", "node_problems", "recorded_pod_uid", "run_payments_pod"]

RECORDED_NODE = Path(__file__).resolve().parent / "demo_data" / "recorded_node.jsonl"
APP = "payments"
IMAGE_ID = "docker.io/library/busybox@sha256:" + "0" * 64  # the busybox-static rootfs has no registry digest
# What the payments container does: read its config, append to its ledger, log a line carrying the audit id.
SCRIPT = (
    "cat /data/config.txt > /dev/null; echo 'charge 42' >> /tmp/ledger; cat /tmp/ledger > /dev/null; "
    'echo "{\\"msg\\":\\"payments started\\",\\"x-gitops-audit-id\\":\\"$X_GITOPS_AUDIT_ID\\"}"; sleep 0.5'
)


@dataclass(frozen=True, slots=True)
class NodeRun:
    pod: str
    pod_uid: str
    container_id: str
    output: str


def node_problems() -> list[str]:
    """Why the payments container cannot run and be traced here ([] when it can)."""
    why = runc_missing()
    problems = [why] if why else []
    try:
        from liubai.ebpf.loader import preflight
    except ImportError as exc:
        return [*problems, f"eBPF support cannot load: {exc}"]
    return problems + [str(p) for p in preflight()]


@contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` running until the block ends; SIGTERM then (what it holds is flushed), kill if it hangs."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _alive(proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    if proc.poll() is not None:
        raise DeployFailed(f"{what} exited {proc.returncode}: {log.read_text(errors='replace')[-800:]}")


@contextmanager
def _running_api(store_url: str, work: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "api.log"
    argv = liubai_cmd(store_url, "serve", "--host", "127.0.0.1", "--port", str(port))
    with _process(argv, log) as proc, httpx.Client(timeout=2) as client:

        def up() -> bool:
            _alive(proc, log, "liubai serve")
            try:
                return client.get(f"{url}/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        poll_until(f"liubai serve answering {url}/healthz", up, 60)
        yield url


@contextmanager
def _running_agent(store_url: str, server: str, state: Path, work: Path, pod_uid: str) -> Iterator[None]:
    """``liubai agent --ebpf`` recording only the demo's namespace, until its first window is written."""
    from liubai.collector.node_journal import JOURNAL_NAME, read_journal_state

    log = work / "agent.log"
    args = ["agent", "--server", server, "--state-dir", str(state), "--ebpf", "--window", "0.5"]
    args += ["--poll", "0.2", "--node-name", "demo-node", "--namespace-of", f"{pod_uid}={NAMESPACE}"]
    args += ["--include-namespace", NAMESPACE, "--trace-socket", "off"]
    with _process(liubai_cmd(store_url, *args), log) as proc:

        def recording() -> bool:
            _alive(proc, log, "liubai agent --ebpf")
            return read_journal_state(state / JOURNAL_NAME).last_window_end is not None

        poll_until("the node agent's first window", recording, 120)
        yield
    if proc.returncode not in (0, -signal.SIGTERM):
        raise DeployFailed(f"liubai agent --ebpf ended {proc.returncode}: {log.read_text()[-800:]}")


def _payments_pod(kubeconfig: str) -> dict[str, Any]:
    pods = json.loads(kubectl(kubeconfig, "get", "pods", "-n", NAMESPACE, "-l", f"app={APP}", "-o", "json"))
    items: list[dict[str, Any]] = pods["items"]
    if not items:
        raise DeployFailed(f"no Pod of {NAMESPACE}/{APP} to run")
    return items[0]


def _started(kubeconfig: str, pod: dict[str, Any], container_id: str) -> None:
    """The status a kubelet writes once the container runs."""
    spec = pod["spec"]["containers"][0]
    status = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": spec["name"],
                    "image": spec["image"],
                    "imageID": IMAGE_ID,
                    "containerID": f"containerd://{container_id}",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": pod["metadata"]["creationTimestamp"]}},
                }
            ],
        }
    }
    name = pod["metadata"]["name"]
    kubectl(
        kubeconfig,
        "patch",
        "pod",
        name,
        "-n",
        NAMESPACE,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )


def run_payments_pod(store_url: str, kubeconfig: str, work: Path, record_to: Path | None = None) -> NodeRun:
    """Run the payments Pod's container under the node agent; its records land in ``store_url``."""
    from liubai.collector.node_journal import JOURNAL_NAME

    pod = _payments_pod(kubeconfig)
    meta = pod["metadata"]
    audit_id = meta.get("annotations", {}).get("x-gitops-audit-id", "")
    env = {AUDIT_ID_ENV: audit_id} if audit_id else {}
    state = work / "agent"
    box = PodContainer(meta["uid"])
    with _running_api(store_url, work) as server, _running_agent(store_url, server, state, work, meta["uid"]):
        try:
            box.start(SCRIPT, env)
            code, out, err = box.wait(60)
        finally:
            box.delete()
        if code != 0:
            raise DeployFailed(f"the payments container exited {code}: {err.strip()[-500:]}")
        _started(kubeconfig, pod, box.container_id)
    if record_to is not None:
        shutil.copyfile(state / JOURNAL_NAME, record_to)
    return NodeRun(meta["name"], meta["uid"], box.container_id, out.strip())


def recorded_pod_uid(journal: Path) -> str | None:
    """The Pod whose container the recorded journal traced."""
    with journal.open("rb") as fh:
        for line in fh:
            record = json.loads(line).get("record") or {}
            if record.get("pod_uid"):
                return str(record["pod_uid"])
    return None
