"""One policy for text from the kernel, /proc, the command line, file names and recordings: UTF-8, with
every byte that is not UTF-8 kept visibly as ``\\xNN``.

Paths, argv, comm and host names are bytes to the kernel. Decoding them with ``surrogateescape`` would be
lossless but leaves lone surrogates in the str, which no store can encode (SQLite refuses them and the
whole run is lost). ``backslashreplace`` keeps such a byte readable and storable instead.

Text that arrives already decoded from JSON (a log line, an SLS query answer) can hold a lone surrogate
too, from a ``\\ud800`` escape: that one is no byte, so ``json_text`` keeps it as the escape's text.
"""

from __future__ import annotations

import re

__all__ = ["ECHO_LIMIT", "bytes_text", "clip", "json_text", "visible"]

_SURROGATE = re.compile("[\ud800-\udfff]")
ECHO_LIMIT = 200


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters for quoting in a message, saying how long it was: an error that
    echoes a caller's input must not hand a megabyte back (or into a log line) for a megabyte sent."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def bytes_text(raw: bytes) -> str:
    """``raw`` as text, each byte that is not UTF-8 shown as ``\\xNN``: the kernel's names, git's paths,
    SLS values."""
    return raw.decode("utf-8", "backslashreplace")


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with no lone surrogate left: one that stands for a byte (``surrogateescape``: the OS's
    argv, environment and file names, a recording read losslessly) becomes that byte's ``\\xNN``, the same
    text ``bytes_text`` gives for the byte; any other becomes ``\\uNNNN``."""
    return text if text.isascii() else _SURROGATE.sub(_escape, text)


def json_text(text: str) -> str:
    """``text`` decoded from JSON, with each lone surrogate (half a UTF-16 pair) written as ``\\udNNN``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
