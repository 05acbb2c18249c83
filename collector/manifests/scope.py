"""Which kinds are cluster-scoped: such an object has no namespace, whatever its manifest writes.

The API server ignores ``metadata.namespace`` on a cluster-scoped object, and the cluster collector
(which asks discovery) records it with none, so Git must too for the two to meet on one node. The list
is the built-in cluster-scoped kinds plus those of widely deployed controllers; any other kind is taken
as namespaced, as kubectl does for a kind it cannot look up.
"""

from __future__ import annotations

__all__ = ["CLUSTER_SCOPED_KINDS", "is_cluster_scoped"]

CLUSTER_SCOPED_KINDS = frozenset(
    {
        # core and built-in API groups
        "Namespace",
        "Node",
        "PersistentVolume",
        "ComponentStatus",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "APIService",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "StorageClass",
        "CSIDriver",
        "CSINode",
        "VolumeAttachment",
        "VolumeAttributesClass",
        "PriorityClass",
        "RuntimeClass",
        "IngressClass",
        "CertificateSigningRequest",
        "ClusterTrustBundle",
        "FlowSchema",
        "PriorityLevelConfiguration",
        "DeviceClass",
        "PodSecurityPolicy",
        # controllers GitOps repositories commonly configure
        "ClusterIssuer",  # cert-manager
        "ClusterSecretStore",  # external-secrets
        "ClusterExternalSecret",
        "ClusterPolicy",  # kyverno
        "ClusterPolicyReport",
        "GatewayClass",  # Gateway API
    }
)


def is_cluster_scoped(kind: str) -> bool:
    return kind in CLUSTER_SCOPED_KINDS
