"""The JSONPatch (RFC 6902) subset the stamp needs: ``add`` and ``replace``, and applying them.

The webhook hands its operations to the API server; ``liubai annotate`` applies the very same operations
itself, so a rendered manifest and an admitted object are stamped alike.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, MutableSequence
from typing import Any

__all__ = ["PatchError", "Pointer", "apply_patch", "pointer"]

Pointer = tuple[str | int, ...]
Op = dict[str, Any]


class PatchError(ValueError):
    """An operation that does not fit the document it is applied to."""


def escape(token: str | int) -> str:
    """One JSON-pointer reference token: ``~`` becomes ``~0`` and ``/`` becomes ``~1`` (in that order), so
    an annotation key such as ``liubai.dev/commit`` is one token, not two."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(path: Iterable[str | int]) -> str:
    """The JSON pointer of ``path`` (keys and list indexes; ``"-"`` is the end of a list)."""
    return "".join("/" + escape(token) for token in path)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _tokens(ptr: str) -> list[str]:
    if not ptr.startswith("/"):
        raise PatchError(f"not a JSON pointer: {ptr!r}")
    return [_unescape(t) for t in ptr[1:].split("/")]


def _step(doc: Any, token: str, ptr: str) -> Any:
    if isinstance(doc, MutableMapping):
        if token not in doc:
            raise PatchError(f"{ptr}: no member {token!r}")
        return doc[token]
    if isinstance(doc, MutableSequence):
        return doc[_index(doc, token, ptr, allow_end=False)]
    raise PatchError(f"{ptr}: {token!r} is below a scalar")


def _index(seq: MutableSequence[Any], token: str, ptr: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(seq)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"{ptr}: {token!r} is not a list index")
    i = int(token)
    if i > len(seq) or (i == len(seq) and not allow_end):
        raise PatchError(f"{ptr}: index {i} is past the end of a list of {len(seq)}")
    return i


def apply_patch(doc: Any, ops: Iterable[Op]) -> None:
    """Apply ``add`` and ``replace`` operations to ``doc`` in place, in order."""
    for op in ops:
        kind, ptr, value = op.get("op"), op.get("path"), op.get("value")
        if kind not in ("add", "replace") or not isinstance(ptr, str):
            raise PatchError(f"unsupported operation {op!r}")
        *parents, last = _tokens(ptr)
        target = doc
        for token in parents:
            target = _step(target, token, ptr)
        if isinstance(target, MutableMapping):
            if kind == "replace" and last not in target:
                raise PatchError(f"{ptr}: replace of a missing member")
            target[last] = value
        elif isinstance(target, MutableSequence):
            i = _index(target, last, ptr, allow_end=kind == "add")
            if kind == "add":
                target.insert(i, value)
            else:
                target[i] = value
        else:
            raise PatchError(f"{ptr}: the parent is a scalar")
