"""Container attribution from cgroup paths as kubelets and runtimes really write them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from liubai.ebpf.cgroups import (
    ContainerRef,
    cgroup2_mount,
    is_pod_root,
    parse_cgroup_path,
    parse_proc_cgroup,
    pod_cgroup_ids,
    pod_roots,
)

CID = "7c1d5a3e9b0f42d6a8e1c3b5d7f90a2b4c6e8f01a3b5c7d9e1f2a4b6c8d0e2f4"
UID = "0f8e2c4a-6b1d-4e3f-9a7c-5d2b8e1f3a6c"
US = UID.replace("-", "_")


@pytest.mark.parametrize(
    ("path", "runtime", "qos"),
    [
        # systemd driver, containerd (EKS, GKE, kubeadm defaults)
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{US}.slice/cri-containerd-{CID}.scope",
            "containerd",
            "burstable",
        ),
        (
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{US}.slice/crio-{CID}.scope",
            "crio",
            "besteffort",
        ),
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{US}.slice/docker-{CID}.scope",
            "docker",
            "burstable",
        ),
        # guaranteed pods sit directly under kubepods.slice
        (f"/kubepods.slice/kubepods-pod{US}.slice/cri-containerd-{CID}.scope", "containerd", "guaranteed"),
        # kind / k3d: the kubelet runs in its own slice
        (
            f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
            f"kubelet-kubepods-besteffort-pod{US}.slice/cri-containerd-{CID}.scope",
            "containerd",
            "besteffort",
        ),
        # cgroupfs driver (minikube, older kubeadm), pod uid with dashes
        (f"/kubepods/burstable/pod{UID}/{CID}", "cgroupfs", "burstable"),
        (f"/kubepods/besteffort/pod{UID}/{CID}", "cgroupfs", "besteffort"),
        (f"/kubepods/pod{UID}/{CID}", "cgroupfs", "guaranteed"),
        (f"/kubepods/burstable/pod{UID}/crio-{CID}", "crio", "burstable"),
        # nested under a runtime's service, or a v1 memory controller below the caller's cgroup
        (
            f"/system.slice/containerd.service/kubepods-burstable-pod{US}.slice:cri-containerd:{CID}",
            None,
            None,
        ),
        (
            f"/process_api/51d96c55/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{US}.slice/"
            f"cri-containerd-{CID}.scope",
            "containerd",
            "besteffort",
        ),
        (f"/system.slice/containerd.service/kubepods/besteffort/pod{UID}/{CID}", "cgroupfs", "besteffort"),
        # a cgroup the container made below its own (systemd inside, or a cgroup namespace's child)
        (
            f"/kubepods.slice/kubepods-pod{US}.slice/cri-containerd-{CID}.scope/init.scope",
            "containerd",
            "guaranteed",
        ),
    ],
)
def test_container_paths_attribute_to_pod_and_container(
    path: str, runtime: str | None, qos: str | None
) -> None:
    ref = parse_cgroup_path(path)
    if runtime is None:  # the colon form is systemd's unit name, never a cgroup directory
        assert ref is None
        return
    assert ref == ContainerRef(CID, UID, runtime, qos, path)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/user.slice/user-1000.slice/session-3.scope",
        "/system.slice/containerd.service",
        "/docker/" + CID,  # a plain docker container, not a pod's
        "/kubepods.slice",
        "/kubepods.slice/kubepods-burstable.slice",
        "/kubepods/burstable",
        # the pod's own cgroup: no container below it
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{US}.slice",
        f"/kubepods/burstable/pod{UID}",
        # CRI-O's monitor process runs beside the container, not in it
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{US}.slice/crio-conmon-{CID}.scope",
        # names that only look alike
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{US}.slice/cri-containerd-xyz.scope",
        f"/podcast/burstable/pod{UID}/{CID}",
        f"/kubepods/burstable/pod{UID}/{CID[:20]}",
    ],
)
def test_host_pod_level_and_lookalike_paths_are_not_containers(path: str) -> None:
    assert parse_cgroup_path(path) is None


def test_proc_cgroup_prefers_the_v2_line() -> None:
    other = "e" * 64
    text = (
        f"12:memory:/kubepods/burstable/pod{UID}/{other}\n"
        f"0::/kubepods.slice/kubepods-pod{US}.slice/cri-containerd-{CID}.scope\n"
    )
    ref = parse_proc_cgroup(text)
    assert ref is not None and ref.container_id == CID and ref.runtime == "containerd"


def test_proc_cgroup_falls_back_to_v1_on_a_hybrid_host() -> None:
    text = (
        f"9:name=systemd:/kubepods/besteffort/pod{UID}/{CID}\n"
        f"4:memory:/kubepods/besteffort/pod{UID}/{CID}\n"
        "0::/\n"
    )
    ref = parse_proc_cgroup(text)
    assert ref is not None and (ref.pod_uid, ref.container_id, ref.qos) == (UID, CID, "besteffort")


def test_proc_cgroup_of_a_host_process_is_none() -> None:
    assert parse_proc_cgroup("9:name=systemd:/init.scope\n0::/init.scope\nnonsense\n") is None


def test_pod_root_names() -> None:
    assert all(is_pod_root(n) for n in ("kubepods", "kubepods.slice", "kubelet-kubepods.slice"))
    assert not any(is_pod_root(n) for n in ("kubepods-burstable.slice", "system.slice", "kubepodsx"))


def test_pod_roots_and_ids_walk_a_cgroup_like_tree(tmp_path: Path) -> None:
    leaf = (
        tmp_path / "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{}.slice/cri-containerd-{}.scope"
    )
    leaf = Path(str(leaf).format(US, CID))
    leaf.mkdir(parents=True)
    (tmp_path / "system.slice/cron.service").mkdir(parents=True)
    roots = pod_roots(str(tmp_path))
    assert roots == [str(tmp_path / "kubelet.slice/kubelet-kubepods.slice")]
    ids = dict(pod_cgroup_ids(roots[0]))
    assert os.stat(leaf).st_ino in ids
    ref = parse_cgroup_path(ids[os.stat(leaf).st_ino])
    assert ref is not None and ref.pod_uid == UID


def test_cgroup2_mount_reads_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "30 24 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755\n"
        "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
    )
    assert cgroup2_mount(str(info)) == "/sys/fs/cgroup/unified"
    info.write_text("30 24 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")
    assert cgroup2_mount(str(info)) is None
