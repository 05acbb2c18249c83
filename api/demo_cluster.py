"""The demo's deploy step: the demo repo's manifests applied as Flux applies them, through ``liubai webhook``,
to a real Kubernetes API server, so the audit id is stamped at deploy time rather than written into Git.

A real control plane (``scripts/kube/cluster``: etcd, kube-apiserver, kube-controller-manager) runs where a
checkout's ``scripts/setup-system`` built and cached its binaries. The webhook is registered with a real
``MutatingWebhookConfiguration`` and called by the API server over TLS; a Flux ``Kustomization`` whose status
names the applied revision tells it the commit; the apply is made as Flux's service account. Without the
binaries, the demo replays the objects such a run left in the API server (``RECORDED_CLUSTER``) and says so.
No kubelet runs here: the Pods the controllers create stay Pending, except the one payments Pod whose
container the demo really runs (``demo_node``), whose status it writes back as a kubelet would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from liubai.collector.admission.registration import webhook_configuration
from liubai.collector.admission.selfsigned import self_signed

__all__ = [
    "CLUSTER_SCRIPT",
    "FLUX_USER",
    "RECORDED_CLUSTER",
    "ClusterInfo",
    "DemoDeployment",
    "cluster_problems",
    "deploy_demo",
    "free_port",
    "kubectl",
    "liubai_cmd",
    "poll_until",
    "running_cluster",
]

CLUSTER_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kube" / "cluster"
RECORDED_CLUSTER = Path(__file__).resolve().parent / "demo_data" / "recorded_cluster.json"
FLUX_USER = "system:serviceaccount:flux-system:kustomize-controller"
KUSTOMIZATION = ("flux-system", "apps")
NAMESPACE = "shop"
_FLUX_LABELS = {
    "kustomize.toolkit.fluxcd.io/name": KUSTOMIZATION[1],
    "kustomize.toolkit.fluxcd.io/namespace": KUSTOMIZATION[0],
}
T = TypeVar("T")
RECORDED_KINDS = (
    "namespaces,deployments,replicasets,pods,"
    "gitrepositories.source.toolkit.fluxcd.io,kustomizations.kustomize.toolkit.fluxcd.io"
)


class DeployFailed(RuntimeError):
    """A step of the live deploy failed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    server: str
    kubeconfig: str


@dataclass(frozen=True, slots=True)
class DemoDeployment:
    """What the webhook stamped on the live objects, read back from the API server."""

    revision: str  # the commit the Kustomization applied
    audit_ids: dict[str, str]  # Deployment name -> its x-gitops-audit-id
    pods: int


def _bin_dir() -> Path:
    home = os.environ.get("LIUBAI_KUBE_HOME")
    if home:
        return Path(home)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "liubai" / f"kube-{os.environ.get('LIUBAI_KUBE_VERSION', '1.36.3')}"


def cluster_problems() -> list[str]:
    """Why a live cluster cannot run here (empty: it can)."""
    problems = []
    if not CLUSTER_SCRIPT.is_file():
        problems.append("scripts/kube/cluster is not here (an installed wheel; run the demo from a checkout)")
    elif not (_bin_dir() / ".complete").is_file():
        problems.append(f"no Kubernetes binaries in {_bin_dir()} (scripts/setup-system builds them)")
    if not (shutil.which("etcd") or Path("/usr/bin/etcd").is_file()):
        problems.append("etcd is not installed (Debian etcd-server)")
    if not shutil.which("kubectl"):
        problems.append("kubectl is not installed (Debian kubectl)")
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        problems.append("the 'k8s' extra is missing: pip install 'liubai[k8s]'")
    return problems


@contextmanager
def running_cluster(timeout_s: float = 180.0) -> Iterator[ClusterInfo]:
    """``scripts/kube/cluster --crds`` until the block ends (closing its stdin stops it and its children)."""
    proc = subprocess.Popen(
        [sys.executable, str(CLUSTER_SCRIPT), "--crds", "--timeout", str(timeout_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise DeployFailed(f"scripts/kube/cluster exited {proc.wait()}: {err.strip()[-500:]}")
        info = json.loads(line)
        yield ClusterInfo(info["server"], info["kubeconfig"])
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll_until(what: str, check: Callable[[], T | None], timeout_s: float) -> T:
    """``check``'s first truthy answer; DeployFailed naming ``what`` when none comes in ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DeployFailed(f"{what}: not after {timeout_s:g} s")
        time.sleep(0.2)


def liubai_cmd(store_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "liubai.api.cli.main", "--store", store_url, *args]


@contextmanager
def running_webhook(store_url: str, work: Path, kubeconfig: str) -> Iterator[tuple[str, Path]]:
    """``liubai webhook`` on a free loopback port; yields its URL and certificate. SIGTERM at the end, so
    the admission records it queued reach the store."""
    cert, key = self_signed(work, "demo-webhook")
    port = free_port()
    log = work / "webhook.log"
    args = ["webhook", "--cert", str(cert), "--key", str(key), "--port", str(port)]
    args += ["--kubeconfig", kubeconfig, "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(liubai_cmd(store_url, *args), stdout=out, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"

    def healthy(client: httpx.Client) -> bool:
        if proc.poll() is not None:
            raise DeployFailed(f"liubai webhook exited {proc.returncode}: {log.read_text()[-800:]}")
        try:
            return client.get(f"{url}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        with httpx.Client(verify=str(cert), timeout=5) as client:
            poll_until(f"liubai webhook answering {url}/healthz", lambda: healthy(client), 60)
        yield url, cert
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise DeployFailed(f"kubectl {' '.join(args[:3])}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _flux_objects(repo_url: str) -> list[dict[str, Any]]:
    """The Flux source and Kustomization (their status, naming the revision, is written apart)."""
    ns, name = KUSTOMIZATION
    return [
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "shop-gitops", "namespace": ns},
            "spec": {"url": repo_url, "interval": "1m", "ref": {"branch": "main"}},
        },
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "interval": "5m",
                "path": "./apps",
                "prune": True,
                "targetNamespace": NAMESPACE,
                "sourceRef": {"kind": "GitRepository", "name": "shop-gitops"},
            },
        },
    ]


def _flux_status(revision: str) -> dict[str, Any]:
    flux_rev = f"main@sha1:{revision}"
    return {
        "status": {
            "lastAttemptedRevision": flux_rev,
            "lastAppliedRevision": flux_rev,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "ReconciliationSucceeded",
                    "message": f"Applied revision: {flux_rev}",
                    "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            ],
        }
    }


def render(manifests: list[Path], traceparents: dict[str, str]) -> list[dict[str, Any]]:
    """The documents of ``manifests`` as Flux's kustomize would apply them: into the target namespace, with
    the Kustomization's labels; plus the ``traceparent`` the delivery pipeline passes to a Deployment."""
    docs: list[dict[str, Any]] = []
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            meta = doc.setdefault("metadata", {})
            meta["namespace"] = NAMESPACE
            meta.setdefault("labels", {}).update(_FLUX_LABELS)
            trace = traceparents.get(str(meta.get("name"))) if doc.get("kind") == "Deployment" else None
            if trace:
                meta.setdefault("annotations", {})["traceparent"] = trace
            docs.append(doc)
    return docs


def deploy_demo(
    store_url: str,
    cluster: ClusterInfo,
    work: Path,
    repo_url: str,
    revision: str,
    manifests: list[Path],
    traceparents: dict[str, str],
) -> DemoDeployment:
    """Register the webhook, play Flux applying ``revision``, wait for the controllers' Pods, and read back
    the stamped ids. Admission records go to ``store_url`` (the webhook writes them)."""
    kc = cluster.kubeconfig
    with running_webhook(store_url, work, kc) as (url, cert):
        registration = webhook_configuration(cert.read_bytes(), url=f"{url}/mutate", failure_policy="Fail")
        kubectl(kc, "apply", "-f", "-", stdin=json.dumps(registration))
        for ns in ("flux-system", NAMESPACE):
            kubectl(kc, "create", "namespace", ns)
        kubectl(
            kc,
            "create",
            "clusterrolebinding",
            "flux-applier",
            "--clusterrole=cluster-admin",
            f"--user={FLUX_USER}",
        )
        kubectl(
            kc,
            "apply",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": _flux_objects(repo_url)}),
        )
        kubectl(
            kc,
            "patch",
            "kustomization",
            KUSTOMIZATION[1],
            "-n",
            KUSTOMIZATION[0],
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(_flux_status(revision)),
        )
        # Pods are refused until the namespace's default service account exists
        poll_until(
            f"the default service account of {NAMESPACE}",
            lambda: _kubectl_ok(kc, "get", "serviceaccount", "default", "-n", NAMESPACE),
            60,
        )
        docs = render(manifests, traceparents)
        kubectl(
            kc,
            "apply",
            f"--as={FLUX_USER}",
            "--server-side",
            "--field-manager=kustomize-controller",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
        )
        wanted = sum(int(d.get("spec", {}).get("replicas", 1)) for d in docs if d.get("kind") == "Deployment")
        pods = poll_until(f"{wanted} Pods created by the controllers", lambda: _count_pods(kc, wanted), 90)
    deployments = json.loads(kubectl(kc, "get", "deployments", "-n", NAMESPACE, "-o", "json"))["items"]
    ids = {
        d["metadata"]["name"]: d["metadata"].get("annotations", {}).get("x-gitops-audit-id", "")
        for d in deployments
    }
    return DemoDeployment(revision, ids, pods)


def _kubectl_ok(kubeconfig: str, *args: str) -> bool:
    try:
        kubectl(kubeconfig, *args)
    except DeployFailed:
        return False
    return True


def _count_pods(kubeconfig: str, wanted: int) -> int | None:
    """How many Pods the demo namespace holds, once there are ``wanted``."""
    pods = json.loads(kubectl(kubeconfig, "get", "pods", "-n", NAMESPACE, "-o", "json"))["items"]
    return len(pods) if len(pods) >= wanted else None


def record_cluster(kubeconfig: str, path: Path) -> None:
    """Write what the API server holds for the demo (a ``kubectl get -o json`` List) for later replays."""
    listed = json.loads(
        kubectl(kubeconfig, "get", RECORDED_KINDS, "-A", "--show-managed-fields", "-o", "json")
    )
    keep = [
        o
        for o in listed["items"]
        if o["metadata"].get("namespace") in (NAMESPACE, KUSTOMIZATION[0])
        or o["metadata"]["name"] in (NAMESPACE, KUSTOMIZATION[0])
    ]
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": keep}, indent=1) + "\n")


def recorded_pods_created(path: Path) -> datetime:
    """When the recorded deploy's last Pod was created: when the service ran in the recording."""
    times = [
        obj["metadata"]["creationTimestamp"]
        for obj in json.loads(path.read_text())["items"]
        if obj.get("kind") == "Pod" and obj.get("metadata", {}).get("creationTimestamp")
    ]
    return datetime.fromisoformat(max(times).replace("Z", "+00:00"))


def recorded_audit_id(path: Path, deployment: str) -> str:
    """The audit id the recorded Deployment ``deployment`` carries ('' when it carries none)."""
    for obj in json.loads(path.read_text())["items"]:
        meta = obj.get("metadata", {})
        if obj.get("kind") == "Deployment" and meta.get("name") == deployment:
            return str(meta.get("annotations", {}).get("x-gitops-audit-id", ""))
    return ""
