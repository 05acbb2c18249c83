"""The ``MutatingWebhookConfiguration`` that registers the webhook with an API server.

It names exactly the kinds that run pods (bare Pods on create only: a Pod's containers cannot change
later), asks for ``admission.k8s.io/v1`` reviews, declares that dry runs have no side effects (they are
not recorded), and by default fails open: a webhook that is down or slow never blocks a deploy, it only
leaves that object unstamped.
"""

from __future__ import annotations

import base64
from typing import Any

__all__ = ["WEBHOOK_NAME", "webhook_configuration"]

WEBHOOK_NAME = "audit.liubai.dev"

_RULES = [
    (["apps"], ["deployments", "statefulsets", "daemonsets"], ["CREATE", "UPDATE"]),
    (["batch"], ["jobs", "cronjobs"], ["CREATE", "UPDATE"]),
    ([""], ["pods"], ["CREATE"]),
]


def webhook_configuration(
    ca_bundle_pem: bytes,
    *,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    path: str = "/mutate",
    name: str = "liubai-audit",
    failure_policy: str = "Ignore",
    timeout_seconds: int = 5,
    exclude_namespaces: tuple[str, ...] = ("kube-system",),
) -> dict[str, Any]:
    """The configuration calling the webhook at ``url`` (an ``https://`` URL ending in the path) or at
    ``service`` (namespace, name, port) plus ``path``, trusting ``ca_bundle_pem`` for its certificate."""
    if (url is None) == (service is None):
        raise ValueError("give exactly one of url and service")
    client: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle_pem).decode("ascii")}
    if url is not None:
        client["url"] = url
    elif service is not None:
        namespace, svc, port = service
        client["service"] = {"namespace": namespace, "name": svc, "port": port, "path": path}
    webhook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": ["v1"],
        "clientConfig": client,
        "rules": [
            {
                "apiGroups": groups,
                "apiVersions": ["v1"],
                "operations": operations,
                "resources": resources,
                "scope": "Namespaced",
            }
            for groups, resources, operations in _RULES
        ],
        "sideEffects": "NoneOnDryRun",
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "reinvocationPolicy": "Never",
        "timeoutSeconds": timeout_seconds,
    }
    if exclude_namespaces:
        webhook["namespaceSelector"] = {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": list(exclude_namespaces),
                }
            ]
        }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [webhook],
    }
