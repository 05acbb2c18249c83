"""A Pod's namespace by its uid, for the node agent's namespace filters: a cgroup names only the uid.

Read from the Kubernetes API (one list of Pods, on this node when its name is known), cached, and
listed again for a uid not seen yet at most every ``relist_s`` seconds, so a container of a Pod
created after the last list is classified on its first events without a list per event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from liubai.collector.k8s.api import KubeApi, KubeError

__all__ = ["KubeNamespaces"]

log = logging.getLogger("liubai.node")


class KubeNamespaces:
    """``__call__(pod_uid)`` -> namespace, or None when the API does not know the uid (or is away)."""

    def __init__(
        self,
        api: KubeApi,
        node_name: str | None = None,
        relist_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.node_name = node_name
        self.relist_s = relist_s
        self.clock = clock
        self.known: dict[str, str] = {}
        self._listed_at: float | None = None

    def _list(self) -> None:
        query = {"fieldSelector": f"spec.nodeName={self.node_name}"} if self.node_name else {}
        self._listed_at = self.clock()
        try:
            doc = self.api.get("/api/v1/pods", query, verb="list", resource="pods")
        except KubeError as exc:
            log.warning("cannot list Pods for the namespace filter: %s", exc)
            return
        for item in (doc or {}).get("items") or []:
            meta = item.get("metadata") or {} if isinstance(item, dict) else {}
            uid, namespace = meta.get("uid"), meta.get("namespace")
            if isinstance(uid, str) and isinstance(namespace, str):
                self.known[uid] = namespace

    def __call__(self, pod_uid: str) -> str | None:
        found = self.known.get(pod_uid)
        if found is None and (self._listed_at is None or self.clock() - self._listed_at >= self.relist_s):
            self._list()
            found = self.known.get(pod_uid)
        return found
