"""A real Kubernetes control plane for tests: ``scripts/kube/cluster`` started once per session.

The script runs etcd, a kube-apiserver and a kube-controller-manager built from Go modules
(``scripts/kube/build``) on free loopback ports, with the Flux and Argo CD CRDs installed. Where the
binaries, etcd, kubectl or the ``kubernetes`` client are missing, the tests skip through
``tests._real.missing("kube", ...)`` (a failure under ``LIUBAI_REQUIRE_KUBE=1``). Binaries are never built
here: ``scripts/setup-system`` runs the build once per machine.

No kubelet runs: a test that needs a running Pod writes its status through the status subresource, as a
kubelet would (``kubelet_status``).
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests._real import missing

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kube" / "cluster"
CRD_DIR = SCRIPT.parent / "crds"
START_TIMEOUT_S = float(os.environ.get("LIUBAI_TEST_KUBE_START_TIMEOUT", "120"))
MISSING_EXIT = 3


@dataclass(frozen=True, slots=True)
class KubeCluster:
    """Where the session's cluster answers, and the admin credentials the script made for it."""

    server: str
    kubeconfig: str
    token: str
    ca_file: str
    etcd: str
    dir: str
    control: ClusterControl | None = field(default=None, compare=False, repr=False)

    def api_client(self, token: str | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` for the admin (or for ``token``'s user)."""
        from kubernetes import client

        conf = client.Configuration()
        conf.host = self.server
        conf.ssl_ca_cert = self.ca_file
        conf.api_key = {"authorization": token or self.token}
        conf.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(conf)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, kubeconfig: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Debian's ``kubectl`` against this cluster; a failure (with ``check``) fails the test with its stderr."""
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig or self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def install_crds(self, directory: Path = CRD_DIR) -> None:
        """Apply the CRDs in ``directory`` and wait until they are served. The session's cluster
        starts with ``scripts/kube/crds/`` installed; this is for further ones (applying is idempotent)."""
        self.kubectl("apply", "-f", str(directory))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")

    def kubeconfig_for(self, token: str, directory: Path) -> str:
        """A kubeconfig like the admin's but logging in with ``token`` (a limited user's)."""
        doc = json.loads(Path(self.kubeconfig).read_text())
        doc["users"] = [{"name": "admin", "user": {"token": token}}]
        path = directory / f"kubeconfig-{secrets.token_hex(4)}"
        path.write_text(json.dumps(doc))
        return str(path)

    def create_namespace(self, name: str, timeout: float = 60.0) -> str:
        """Create ``name`` and wait for its ``default`` service account, without which Pods are refused."""
        from kubernetes import client

        api = client.CoreV1Api(self.api_client())
        api.create_namespace({"metadata": {"name": name}})
        deadline = time.monotonic() + timeout
        while True:
            try:
                api.read_namespaced_service_account("default", name)
                return name
            except client.ApiException as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def delete_namespace(self, name: str) -> None:
        from kubernetes import client

        try:
            client.CoreV1Api(self.api_client()).delete_namespace(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    def service_account_token(self, namespace: str, name: str, rules: Sequence[dict[str, Any]]) -> str:
        """A token for a new service account that may do only ``rules`` (a ClusterRole's rules, bound
        cluster-wide), requested through the TokenRequest API as a pod's projected token would be."""
        from kubernetes import client

        api = self.api_client()
        core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        role = f"{namespace}-{name}"
        rbac.create_cluster_role({"metadata": {"name": role}, "rules": list(rules)})
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": role},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            }
        )
        req = core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": 3600}}
        )
        return str(req.status.token)


def kubelet_status(
    api: Any, namespace: str, name: str, node: str, *, images: dict[str, str] | None = None
) -> dict[str, Any]:
    """Write a Pod's status as a kubelet that started it would: node, phase Running, Ready, and per container
    the image digest it pulled (``images``: container name -> ``sha256:…``) and a containerd id.
    The node name goes in through the binding subresource, as the scheduler would put it."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    pod = core.read_namespaced_pod(name, namespace)
    if not pod.spec.node_name:
        core.create_namespaced_binding(
            namespace,
            {"metadata": {"name": name}, "target": {"apiVersion": "v1", "kind": "Node", "name": node}},
            _preload_content=False,
        )
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    statuses = []
    for c in pod.spec.containers:
        digest = (images or {}).get(c.name, "sha256:" + secrets.token_hex(32))
        repo = c.image.split("@")[0].rsplit(":", 1)[0] if ":" in c.image.split("/")[-1] else c.image
        statuses.append(
            {
                "name": c.name,
                "image": c.image,
                "imageID": f"{repo}@{digest}",
                "containerID": "containerd://" + secrets.token_hex(32),
                "ready": True,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": now}},
            }
        )
    body = {
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.1",
            "podIP": "10.244.0.10",
            "startTime": now,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": statuses,
        }
    }
    result: dict[str, Any] = api.sanitize_for_serialization(
        core.patch_namespaced_pod_status(name, namespace, body)
    )
    return result


class ClusterControl:
    """The script's stdout lines, and its signals: stop the API server alone, start it again."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.stopped = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def next_line(self, timeout: float) -> str | None:
        try:
            return self.lines.get(timeout=timeout) or None
        except queue.Empty:
            return None

    def _signal(self, signum: int, expect: str, timeout: float) -> None:
        os.kill(self.proc.pid, signum)
        line = self.next_line(timeout)
        if line is None or json.loads(line).get("apiserver") != expect:
            pytest.fail(f"the test cluster's API server did not report {expect!r} (got {line!r})")

    def stop_apiserver(self, timeout: float = 30) -> None:
        self._signal(signal.SIGUSR1, "stopped", timeout)
        self.stopped = True

    def start_apiserver(self, timeout: float = START_TIMEOUT_S) -> None:
        self._signal(signal.SIGUSR2, "ready", timeout)
        self.stopped = False

    def ensure_apiserver(self) -> None:
        """Start the API server again if a test left it stopped."""
        if self.stopped:
            self.start_apiserver()


@contextmanager
def running() -> Iterator[KubeCluster]:
    """Start a throw-away control plane (with the Flux and Argo CD CRDs) and yield where it answers;
    its ``control`` stops and restarts the API server."""
    try:
        import kubernetes  # noqa: F401 - the client every kube test drives the cluster with
    except ImportError as exc:
        missing("kube", f"the kubernetes client is not installed ({exc}): pip install 'liubai[k8s]'")
    if shutil.which("python3") is None:
        missing("kube", "no python3 on PATH to run scripts/kube/cluster")
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            ["python3", str(SCRIPT), "--crds", "--timeout", str(START_TIMEOUT_S)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            control = ClusterControl(proc)
            line = control.next_line(START_TIMEOUT_S + 30)
            if line is None:
                code = proc.poll()
                log.seek(0)
                tail = " | ".join(log.read().strip().splitlines()[-3:])
                _stop(proc)
                if code == MISSING_EXIT:
                    missing("kube", tail or "binaries missing (run scripts/kube/build)")
                pytest.fail(f"Kubernetes test cluster did not start (exit {code}): {tail}")
            yield KubeCluster(**json.loads(line), control=control)
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Closing stdin is the script's stop signal; kill only if it does not exit in time."""
    if proc.poll() is not None:
        return
    try:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
