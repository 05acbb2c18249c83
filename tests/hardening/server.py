"""The API as a deployment runs it: the app factory plus auth, ingest, limits' routes and /metrics.

``python -m uvicorn --factory tests.hardening.server:build_app`` serves it; once ``api.app`` wires these
parts itself, the factory only adds what is still missing.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app_from_env
from api.auth import AuthSettings, install_auth
from api.ingest_http import install_ingest
from api.metrics import install_observability


def _has_route(app: FastAPI, path: str) -> bool:
    return any(getattr(r, "path", None) == path for r in app.router.routes)


def harden(app: FastAPI, auth: AuthSettings | None = None, *, json_logs: bool = False) -> FastAPI:
    """In-process tests keep the test runner's logging; the served app logs JSON lines."""
    if not hasattr(app.state, "auth_on"):
        install_auth(app, auth or AuthSettings())
    if not _has_route(app, "/v1/ingest"):
        install_ingest(app)
    if not _has_route(app, "/metrics"):
        install_observability(app, json_logs=json_logs)
    return app


def build_app() -> FastAPI:
    return harden(create_app_from_env(), json_logs=True)
