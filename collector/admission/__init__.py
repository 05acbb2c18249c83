"""Stamping the audit id at deploy time: the mutating admission webhook and ``liubai annotate``.

A commit cannot carry its own sha, so the ``x-gitops-audit-id`` of a running workload is stamped when it
is applied: by the webhook on the live object (which knows what the GitOps controller applies), or by
``liubai annotate`` in a render pipeline. Both share ``stamp`` (pure: object in, JSONPatch out).
"""
