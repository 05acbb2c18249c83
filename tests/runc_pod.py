"""Real OCI containers for the node tests: Debian's ``runc`` with a busybox-static rootfs, placed in the
cgroups a kubelet would give a pod's container (systemd-driver slice names or the cgroupfs layout).

runc's cgroupfs manager (no systemd on these machines) takes the systemd driver's on-disk path as a
plain path, so ``/kubepods.slice/kubepods-besteffort.slice/...-pod<uid>.slice/cri-containerd-<id>.scope``
is exactly where a containerd + systemd kubelet would put it. The rootfs is built once per machine
under /tmp (read-only in every container; /tmp inside is a tmpfs).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PodContainer", "cgroups_path", "new_container_id", "new_pod_uid", "runc_missing"]

BUSYBOX = "/bin/busybox"
STATE = "/run/liubai-runc"
_APPLETS = ("sh", "sleep", "cat", "echo", "ls", "true", "touch", "env", "head", "wc", "rm", "mkdir", "mkfifo")


def runc_missing() -> str | None:
    """Why containers cannot run here (None: they can)."""
    if os.geteuid() != 0:
        return "not root (runc needs root)"
    if shutil.which("runc") is None:
        return "runc is not installed (apt-get install runc; scripts/setup-system installs it)"
    if not os.path.isfile(BUSYBOX) or not _static(BUSYBOX):
        return "busybox-static is not installed (apt-get install busybox-static)"
    return None


def _static(path: str) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    return b"/lib64/ld-linux" not in head and b"/lib/ld-linux" not in head


def new_pod_uid() -> str:
    return str(uuid.uuid4())


def new_container_id() -> str:
    return secrets.token_hex(32)


def cgroups_path(
    pod_uid: str, container_id: str, runtime: str = "containerd", qos: str = "besteffort"
) -> str:
    """The cgroup a kubelet gives the container: systemd-driver names for ``containerd``/``crio``/
    ``docker``, the cgroupfs driver's layout for ``cgroupfs``."""
    if runtime == "cgroupfs":
        return (
            f"/kubepods/pod{pod_uid}/{container_id}"
            if qos == "guaranteed"
            else (f"/kubepods/{qos}/pod{pod_uid}/{container_id}")
        )
    scope = {"containerd": "cri-containerd", "crio": "crio", "docker": "docker"}[runtime]
    uid = pod_uid.replace("-", "_")
    if qos == "guaranteed":
        return f"/kubepods.slice/kubepods-pod{uid}.slice/{scope}-{container_id}.scope"
    return f"/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{uid}.slice/{scope}-{container_id}.scope"


def rootfs() -> Path:
    """A busybox rootfs, built once per machine (keyed by busybox and its links), shared read-only."""
    with open(BUSYBOX, "rb") as fh:
        key = hashlib.sha256(fh.read() + " ".join(_APPLETS).encode()).hexdigest()[:16]
    root = Path(f"/tmp/liubai-runc-rootfs-{key}")
    if (root / ".complete").exists():
        return root
    tmp = Path(f"{root}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "data"):
        (tmp / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, tmp / "bin/busybox")
    for applet in _APPLETS:
        (tmp / "bin" / applet).symlink_to("busybox")
    (tmp / "etc/hostname").write_text("pod\n")
    (tmp / "data/config.txt").write_text("setting=1\n")
    (tmp / ".complete").write_text("")
    try:
        tmp.rename(root)
    except OSError:  # built meanwhile by another process
        shutil.rmtree(tmp, ignore_errors=True)
    return root


@functools.cache
def _base_spec_text() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["runc", "spec", "--bundle", tmp], check=True, capture_output=True)
        return Path(tmp, "config.json").read_text(encoding="utf-8")


def _base_spec() -> dict[str, Any]:
    """runc's default spec (namespaces, default mounts and masked paths) as the base of every container."""
    spec: dict[str, Any] = json.loads(_base_spec_text())
    return spec


def _config(root: Path, args: list[str], env: Mapping[str, str], cgroup: str) -> dict[str, Any]:
    spec = _base_spec()
    process = spec["process"]
    process["terminal"] = False
    process["args"] = args
    process["env"] = ["PATH=/bin", *(f"{k}={v}" for k, v in env.items())]
    spec["root"] = {"path": str(root), "readonly": True}
    spec["hostname"] = "pod"
    spec["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]})
    spec["linux"]["cgroupsPath"] = cgroup
    return spec


@dataclass
class PodContainer:
    """One container of a pod, run by ``runc run`` in the foreground (``start``, ``wait``, ``delete``)."""

    pod_uid: str
    container_id: str = field(default_factory=new_container_id)
    runtime: str = "containerd"
    qos: str = "besteffort"
    prefix: str = ""  # a slice the kubelet's cgroups nest in, e.g. kind's "/kubelet.slice"
    bundle: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def cgroup(self) -> str:
        path = cgroups_path(self.pod_uid, self.container_id, self.runtime, self.qos)
        if not self.prefix:
            return path
        # kind names every level after the slice it nests in: kubelet-kubepods.slice, kubelet-kubepods-...
        name = self.prefix.rstrip("/").rsplit("/", 1)[-1].removesuffix(".slice")
        parts = [p.replace("kubepods", f"{name}-kubepods", 1) for p in path.split("/") if p]
        return self.prefix.rstrip("/") + "/" + "/".join(parts)

    def start(
        self,
        script: str,
        env: Mapping[str, str] | None = None,
        *,
        detach: bool = False,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        """Run ``sh -c script`` in the container (stdout/stderr kept for ``wait``). ``detach``: runc
        returns once the container runs (its output is dropped; ``delete`` ends it)."""
        cmd = self.command(script, env, detach=detach)
        out = subprocess.DEVNULL if detach else subprocess.PIPE
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, preexec_fn=preexec
        )
        if detach:
            self.proc.wait(timeout=60)

    def command(
        self, script: str, env: Mapping[str, str] | None = None, *, detach: bool = False
    ) -> list[str]:
        """Write the bundle; the ``runc run`` command line that runs ``sh -c script`` in it."""
        self.bundle = Path(f"/tmp/liubai-runc-bundle-{self.container_id[:16]}")
        self.bundle.mkdir(exist_ok=True)
        config = _config(rootfs(), ["sh", "-c", script], env or {}, self.cgroup)
        (self.bundle / "config.json").write_text(json.dumps(config))
        run = ["runc", "--root", STATE, "run", *(["--detach"] if detach else [])]
        return [*run, "--bundle", str(self.bundle), self.container_id]

    def init_pid(self) -> int | None:
        """The host pid of the container's first process, while it runs."""
        try:
            with open(f"{STATE}/{self.container_id}/state.json", encoding="utf-8") as fh:
                return int(json.load(fh)["init_process_pid"])
        except (OSError, ValueError, KeyError):
            return None

    def wait(self, timeout: float = 30.0) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) once the container's first process ended."""
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def delete(self) -> None:
        """Kill and remove the container (its cgroups go with it)."""
        subprocess.run(["runc", "--root", STATE, "delete", "--force", self.container_id], capture_output=True)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.bundle is not None:
            shutil.rmtree(self.bundle, ignore_errors=True)
