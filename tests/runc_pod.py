"""The node tests' containers: ``liubai.api.pod_container`` (the demo runs its payments Pod with it too)."""

from liubai.api.pod_container import PodContainer, cgroups_path, new_container_id, new_pod_uid, runc_missing

__all__ = ["PodContainer", "cgroups_path", "new_container_id", "new_pod_uid", "runc_missing"]
