"""The Kubernetes API as the cluster collector uses it: JSON lists and watch streams over the official
client's connection (kubeconfig or in-cluster credentials, TLS, token refresh).

Objects stay plain dicts parsed with orjson: the client's typed models cost more per Pod than the
whole rest of the pipeline (``bench/k8s_ingest.py`` compares them), and the collector reads a handful of
fields. Failures become one ``KubeError`` each, by what the user must do: ``KubeUnreachable`` (retry),
``KubeForbidden`` (RBAC: names the verb and resource), ``KubeGone`` (410: relist).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from liubai.lineage.errors import ErrorCode, LiubaiError

__all__ = [
    "KubeApi",
    "KubeConfigError",
    "KubeError",
    "KubeForbidden",
    "KubeGone",
    "KubeUnreachable",
    "connect",
]

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
_REFUSED = re.compile(
    r'User "([^"]+)" cannot .*? in API group "[^"]*"(?: (at the cluster scope|in the namespace "[^"]*"))?'
)
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class KubeError(LiubaiError):
    """The Kubernetes API refused or failed a request; the message is one line for the user."""

    code = ErrorCode.SOURCE_FAILED


class KubeConfigError(KubeError):
    """No usable kubeconfig or in-cluster credentials."""

    code = ErrorCode.BAD_INPUT


class KubeUnreachable(KubeError):
    """The API server cannot be reached or answered 5xx/429: worth another try."""

    retryable = True


class KubeForbidden(KubeError):
    """RBAC refused ``verb`` on ``resource``: the collector goes on with what it may read."""

    def __init__(self, verb: str, resource: str, message: str) -> None:
        super().__init__(f"forbidden: cannot {verb} {resource} ({message})", verb=verb, resource=resource)
        self.verb = verb
        self.resource = resource


class KubeGone(KubeError):
    """410 Gone: the resourceVersion asked for is older than the server keeps; list again."""


def _reason(exc: BaseException) -> str:
    """A connection failure in a few words (urllib3 nests the cause in a long repr)."""
    text = str(getattr(exc, "reason", None) or exc)
    found = _ERRNO.search(text)
    if found:
        return found.group(1).strip()
    return " ".join(text.split())[:200] or type(exc).__name__


def _refused_whom(message: str) -> str:
    """RBAC's refusal (``pods is forbidden: User "u" cannot list resource "pods" in API group "" at the
    cluster scope``) cut to who was refused and where; the verb and resource are said already."""
    found = _REFUSED.search(message)
    if not found:
        return message
    return f"as {found.group(1)}" + (f", {found.group(2)}" if found.group(2) else "")


def _status_message(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return " ".join(body.decode("utf-8", "replace").split())[:200]
    message = doc.get("message") if isinstance(doc, dict) else None
    return str(message) if message else "no message"


class KubeApi:
    """GET requests against one API server through a ``kubernetes.client.ApiClient``."""

    def __init__(self, api_client: Any) -> None:
        self.client = api_client
        self.server: str = str(api_client.configuration.host)

    def close(self) -> None:
        self.client.close()

    def _request(self, path: str, query: dict[str, str], timeout: tuple[float, float]) -> Any:
        import urllib3

        req = self.client.param_serialize(
            "GET",
            path,
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            return self.client.call_api(*req, _request_timeout=timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise KubeUnreachable(f"Kubernetes API {self.server} unreachable: {_reason(exc)}") from None
        except Exception as exc:  # the client's own ApiException(status=0) for TLS failures
            if getattr(exc, "status", None) == 0:
                raise KubeUnreachable(f"Kubernetes API {self.server}: {_reason(exc)}") from None
            raise

    def _check(self, resp: Any, verb: str, resource: str) -> None:
        status = int(resp.status)
        if 200 <= status < 300:
            return
        message = _status_message(resp.read())
        if status == 403:
            raise KubeForbidden(verb, resource, _refused_whom(message))
        if status == 410:
            raise KubeGone(f"{verb} {resource}: {message}")
        if status == 401:
            raise KubeError(f"Kubernetes API {self.server} refused the credentials (401): {message}")
        if status == 429 or status >= 500:
            raise KubeUnreachable(
                f"Kubernetes API {self.server} answered {status} to {verb} {resource}: {message}"
            )
        raise KubeError(f"Kubernetes API {self.server}: {verb} {resource} failed ({status}): {message}")

    def get(self, path: str, query: dict[str, str], *, verb: str, resource: str) -> dict[str, Any] | None:
        """The JSON document at ``path``; None when it does not exist (404)."""
        resp = self._request(path, query, (CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        if int(resp.status) == 404:
            resp.read()
            return None
        self._check(resp, verb, resource)
        try:
            doc = orjson.loads(resp.read())
        except orjson.JSONDecodeError as exc:
            raise KubeError(
                f"Kubernetes API {self.server}: {verb} {resource} answered bad JSON: {exc}"
            ) from None
        if not isinstance(doc, dict):
            raise KubeError(f"Kubernetes API {self.server}: {verb} {resource} answered a non-object")
        return doc

    def watch(self, path: str, query: dict[str, str], *, resource: str, timeout_s: int) -> Iterator[Any]:
        """Open a watch (errors of the request itself raise here) and return its events
        (``{"type", "object"}``) up to the end of the stream, which the server ends after ``timeout_s``."""
        params = {**query, "watch": "true", "timeoutSeconds": str(timeout_s)}
        resp = self._request(path, params, (CONNECT_TIMEOUT_S, timeout_s + READ_TIMEOUT_S))
        self._check(resp, "watch", resource)
        return self._events(resp.response, resource)

    def _events(self, raw: Any, resource: str) -> Iterator[Any]:
        import urllib3

        buffer = b""
        try:
            for chunk in raw.stream(None, decode_content=True):  # each chunk as it arrives
                buffer += chunk
                lines = buffer.split(b"\n")
                buffer = lines.pop()
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)
        except urllib3.exceptions.HTTPError as exc:
            raise KubeUnreachable(
                f"Kubernetes API {self.server}: watch {resource} broke off: {_reason(exc)}"
            ) from None
        except orjson.JSONDecodeError as exc:
            raise KubeError(f"Kubernetes API {self.server}: watch {resource} sent bad JSON: {exc}") from None
        finally:
            raw.close()  # a stream left early holds unread events: never hand it back to the pool
            raw.release_conn()


def connect(
    kubeconfig: str | None = None, context: str | None = None, *, in_cluster: bool = False
) -> KubeApi:
    """An API connection from a kubeconfig (``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``; its
    ``context`` or the current one) or, with ``in_cluster`` or when no kubeconfig exists inside a Pod,
    from the service account Kubernetes mounts there."""
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ModuleNotFoundError as exc:
        raise KubeConfigError(
            f"ingest k8s needs the 'k8s' extra ({exc.name} is not installed): pip install 'liubai[k8s]'"
        ) from None
    conf = client.Configuration()
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=conf)
        else:
            try:
                config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=conf)
            except (ConfigException, FileNotFoundError):
                if kubeconfig is not None or context is not None:
                    raise
                config.load_incluster_config(client_configuration=conf)
    except (ConfigException, FileNotFoundError, OSError, ValueError) as exc:
        where = f" {kubeconfig}" if kubeconfig else ""
        detail = " ".join(str(exc).split())
        raise KubeConfigError(f"no usable kubeconfig{where} or in-cluster credentials: {detail}") from None
    return KubeApi(client.ApiClient(conf))
