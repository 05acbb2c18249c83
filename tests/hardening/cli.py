"""``python -m tests.hardening.cli ...``: the ``liubai`` command with the agent and token groups present.

Until ``api.cli.main`` lists them, the two groups are registered here, so tests run the real commands.
"""

from __future__ import annotations

from api.cli import agent, token
from api.cli.main import app


def _registered(name: str) -> bool:
    return any(c.name == name for c in app.registered_commands) or any(
        g.name == name for g in app.registered_groups
    )


if not _registered("agent"):
    agent.register(app)
if not _registered("token"):
    token.register(app)

if __name__ == "__main__":
    app()
