"""Reading GitOps controller objects from the API server, through a short-lived cache.

At a hundred admissions a second most requests name the same few Applications or Kustomizations: each
is read at most once per ``ttl`` (concurrent requests for one object share that one read), so admission
latency stays that of a dictionary look-up. The ttl is short because a controller moves its revision
right before it applies: a stale answer would stamp the previous commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from liubai.collector.admission.revision import ObjectReader, ObjectRef, ReadFailed

__all__ = ["CachedReader", "KubeReader", "kube_reader"]

_MAX_ENTRIES = 4096


@dataclass(slots=True)
class _Entry:
    expires: float
    value: Mapping[str, Any] | None
    error: str | None


class CachedReader:
    """``reader`` behind a cache: answers (and "not found") for ``ttl`` seconds, failures for
    ``error_ttl`` so an unreachable API server costs one timeout per object and period, not per request."""

    def __init__(
        self,
        reader: ObjectReader,
        ttl: float = 2.0,
        error_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._ttl = ttl
        self._error_ttl = error_ttl
        self._clock = clock
        self._entries: dict[ObjectRef, _Entry] = {}
        self._locks: dict[ObjectRef, threading.Lock] = {}
        self.reads = 0
        self.hits = 0

    def get(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        entry = self._fresh(ref)
        if entry is None:
            with self._locks.setdefault(ref, threading.Lock()):
                entry = self._fresh(ref)  # another thread may have read it while this one waited
                if entry is None:
                    entry = self._read(ref)
                else:
                    self.hits += 1
        else:
            self.hits += 1
        if entry.error is not None:
            raise ReadFailed(entry.error)
        return entry.value

    def _fresh(self, ref: ObjectRef) -> _Entry | None:
        entry = self._entries.get(ref)
        return entry if entry is not None and entry.expires > self._clock() else None

    def _read(self, ref: ObjectRef) -> _Entry:
        self.reads += 1
        try:
            entry = _Entry(self._clock() + self._ttl, self._reader.get(ref), None)
        except ReadFailed as exc:
            entry = _Entry(self._clock() + self._error_ttl, None, str(exc))
        if len(self._entries) >= _MAX_ENTRIES:
            self._evict()
        self._entries[ref] = entry
        return entry

    def _evict(self) -> None:
        now = self._clock()
        for ref, entry in list(self._entries.items()):
            if entry.expires <= now:
                self._entries.pop(ref, None)
                self._locks.pop(ref, None)
        if len(self._entries) >= _MAX_ENTRIES:  # all fresh: many distinct names inside one ttl
            self._entries.clear()


class KubeReader:
    """Custom objects through the official ``kubernetes`` client, each read bounded by ``timeout_s``."""

    def __init__(self, api_client: Any, timeout_s: float = 2.0) -> None:
        from kubernetes.client import CustomObjectsApi

        self._api = CustomObjectsApi(api_client)
        self._timeout = timeout_s

    def get(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            found = self._api.get_namespaced_custom_object(
                ref.group, ref.version, ref.namespace, ref.plural, ref.name, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 403:
                raise ReadFailed(
                    f"forbidden: the webhook may not get {ref.plural}.{ref.group} in {ref.namespace}"
                ) from None
            raise ReadFailed(f"API server answered {exc.status} {exc.reason}") from None
        except Exception as exc:  # urllib3's connection and timeout errors, whatever their class
            raise ReadFailed(f"API server unreachable: {type(exc).__name__}: {exc}") from None
        return found if isinstance(found, Mapping) else None


def kube_reader(kubeconfig: str | None, context: str | None = None, timeout_s: float = 2.0) -> KubeReader:
    """A reader from ``kubeconfig`` (or the default kubeconfig), or the in-cluster service account when
    there is none and the process runs in a Pod. ``ImportError`` without the ``k8s`` extra; ``ReadFailed``
    when no configuration is found."""
    import os

    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        if (
            kubeconfig is None
            and "KUBERNETES_SERVICE_HOST" in os.environ
            and not os.environ.get("KUBECONFIG")
        ):
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
    except (config.ConfigException, OSError, TypeError, ValueError) as exc:
        raise ReadFailed(f"no cluster configuration: {exc}") from None
    configuration.retries = 0  # a failed read is cached and reported; never retried inside an admission
    return KubeReader(client.ApiClient(configuration), timeout_s)
