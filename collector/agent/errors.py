"""What goes wrong while shipping, by what the agent does next: stop (``AgentError``), try again later
(``Unavailable``), or never send the batch as it is (``Refused``, and ``TooLarge`` for a 413)."""

from __future__ import annotations

from liubai.lineage.errors import ErrorCode, LiubaiError

__all__ = ["AgentError", "Refused", "TooLarge", "Unavailable"]


class AgentError(LiubaiError, RuntimeError):
    """A condition the agent cannot work around (bad token, unknown source); the message says what to fix."""

    code = ErrorCode.BAD_INPUT


class Unavailable(Exception):
    """The API did not take the batch this time (down, overloaded, timed out); try again later."""


class Refused(Exception):
    """The API will never take this batch as it is (too large, invalid)."""

    def __init__(self, status: int, message: str, limit: int | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.limit = limit  # the body limit a 413 answer stated


class TooLarge(Exception):
    """A batch over the API's body limit (``limit``; ``stated`` when the API said it, else an upper bound)."""

    def __init__(self, limit: int, stated: bool) -> None:
        super().__init__(limit)
        self.limit = limit
        self.stated = stated
