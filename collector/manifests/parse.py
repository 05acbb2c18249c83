"""Kubernetes objects out of (multi-document) YAML manifest text.

Speed: a GitOps history re-commits the same documents over and over (a Service next to the Deployment
whose image tag moved), so a file is cut at its ``---`` lines and what each piece declares is cached by
its text. A piece is parsed with a resolver that memoises implicit tags, and only the parts the
collector reads are built from the node tree. Anything unusual (a parse error, directives, ``...``
markers) sends the whole file through the plain path, which defines the results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from itertools import pairwise
from typing import Any

import yaml

from liubai.collector.manifests.objects import Declared, ObjectKey, Outcome, Skipped, document_outcome
from liubai.collector.manifests.yaml_load import (
    RAW_KEEP,
    UNREADABLE,
    BoundedLoader,
    FastLoader,
    Loader,
    RebindingLoader,
    documents,
)
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import ManifestObjectRecord, SkippedRecord

__all__ = [
    "MANIFEST_SUFFIXES",
    "MAX_MANIFEST_BYTES",
    "ManifestCache",
    "ManifestItem",
    "Unsplittable",
    "deleted_records",
    "is_manifest_path",
    "parse_manifest",
    "piece_outcomes",
    "split",
]

MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

ManifestItem = ManifestObjectRecord | RejectedRecord | SkippedRecord
LFS_POINTER = "version https://git-lfs.github.com/spec/"

_TAG_CACHE = 65536


class Unsplittable(Exception):
    """A piece of a file did not parse on its own: the whole file takes the plain path."""


def is_manifest_path(path: str) -> bool:
    return path.lower().endswith(MANIFEST_SUFFIXES)


def _location(commit: str, path: str, doc: int | None) -> str:
    base = f"{commit[:12]}:{path}"
    return base if doc is None else f"{base}#{doc}"


def _error_snippet(text: str, exc: yaml.YAMLError) -> str:
    """The lines around a YAML error, so the rejected record shows what was wrong without the file."""
    mark = getattr(exc, "problem_mark", None)
    lines = text.splitlines()
    if mark is None or not lines:
        return text[:RAW_KEEP]
    lo, hi = max(0, mark.line - 2), min(len(lines), mark.line + 2)
    return "\n".join(lines[lo:hi])[:RAW_KEEP]


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"


class ManifestCache:
    """What each document text declares, shared by the parses of one collector run: identical text
    (the unchanged documents of a multi-document file, an old blob seen again) is parsed once."""

    def __init__(self, max_chars: int = 32 << 20) -> None:
        self.max_chars = max_chars
        self.pieces: dict[str, tuple[Outcome, ...]] = {}
        self.chars = 0
        self.resolve = lru_cache(maxsize=_TAG_CACHE)(Loader("").resolve)

    def outcomes(self, piece: str) -> tuple[Outcome, ...]:
        cached = self.pieces.get(piece)
        if cached is None:
            cached = piece_outcomes(piece, self.resolve)
            if self.chars + len(piece) > self.max_chars:
                self.pieces.clear()
                self.chars = 0
            self.pieces[piece] = cached
            self.chars += len(piece)
        return cached


def split(text: str) -> list[str]:
    """The file cut before each ``---`` document marker at the start of a line. A piece never holds
    less than a document (the parser also starts one there), and may hold more, which is fine.
    Directives (``%``) and document end markers (``...``) change how documents are told apart: such
    a file stays one piece."""
    if text.startswith(("%", "...")) or "\n%" in text or "\n..." in text:
        return [text]
    starts = [0]
    at = text.find("\n---")
    while at != -1:
        at += 1
        if text[at + 3 : at + 4] in " \t\r\n":  # "" at the end of the text: a marker too
            starts.append(at)
        at = text.find("\n---", at)
    if len(starts) == 1:
        return [text]
    starts.append(len(text))
    return [text[a:b] for a, b in pairwise(starts)]


def piece_outcomes(piece: str, resolve: Callable[[type, Any, Any], str]) -> tuple[Outcome, ...]:
    try:
        built = list(documents(FastLoader(piece, resolve), fast=True))
    except UNREADABLE:
        raise Unsplittable from None
    docs = [document_outcome(doc) for doc in built]
    if any(isinstance(key, str) for doc in docs for key, _ in doc):
        # a reject's snippet must show shared (aliased) values the way the stock constructor builds them
        docs, error = _whole_outcomes(piece)
        if error is not None:
            raise Unsplittable
    return tuple(docs)


def _whole_outcomes(text: str, *, rebind: bool = False) -> tuple[list[Outcome], yaml.YAMLError | None]:
    """Every document of the file in one parse with the stock constructor; stops at the first error.
    ``rebind``: an anchor defined twice names the later node (``RebindingLoader``)."""
    docs: list[Outcome] = []
    stream = documents(RebindingLoader(text) if rebind else BoundedLoader(text), fast=False)
    while True:
        try:
            doc = next(stream)
        except StopIteration:
            return docs, None
        except yaml.YAMLError as exc:
            return docs, exc
        except UNREADABLE as exc:  # e.g. "!!int x": the constructors raise plain Python errors
            return docs, yaml.YAMLError(f"cannot construct a value: {type(exc).__name__}: {exc}")
        docs.append(document_outcome(doc))


def parse_manifest(
    data: bytes | str,
    *,
    repo: str,
    commit: str,
    path: str,
    deleted: bool = False,
    cache: ManifestCache | None = None,
) -> tuple[list[ManifestItem], list[ObjectKey]]:
    """Records for every object a manifest declares, rejected records for what cannot be read, and the
    keys of the good objects (so a later version can tell which ones it dropped).

    With ``deleted=True`` the text is the file's last version before it was removed, and each object
    becomes a ``deleted`` record. ``cache`` carries parsed documents from one call to the next.
    """
    source = f"git:{repo}"
    if len(data) > MAX_MANIFEST_BYTES:
        reason = f"manifest is {len(data)} bytes, more than the {MAX_MANIFEST_BYTES} read"
        return [RejectedRecord(source, _location(commit, path, None), reason, "")], []
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"manifest is not UTF-8 text (byte {exc.start})"
            return [RejectedRecord(source, _location(commit, path, None), reason, "")], []
    else:
        text = data
    if "{{" in text and "/templates/" in f"/{path}":
        # a Helm chart template: rendered YAML only exists after `helm template`
        return [SkippedRecord(source, _location(commit, path, None), "a Helm chart template")], []
    if text.startswith(LFS_POINTER):
        reason = "a Git LFS pointer: the manifest itself is stored outside Git (fetch it with git lfs)"
        return [RejectedRecord(source, _location(commit, path, None), reason, text[:RAW_KEEP])], []
    error: yaml.YAMLError | None = None
    try:
        outcomes = (cache or ManifestCache()).outcomes
        docs = [doc for piece in split(text) for doc in outcomes(piece)]
    except Unsplittable:
        docs, error = _whole_outcomes(text)
        if isinstance(error, yaml.composer.ComposerError) and "duplicate anchor" in str(error.context):
            docs, error = _whole_outcomes(text, rebind=True)  # valid YAML 1.2, and kubectl takes it
    items: list[ManifestItem] = []
    keys: list[ObjectKey] = []
    seen: set[ObjectKey] = set()
    for index, outcome in enumerate(docs):
        for key, detail in outcome:
            if isinstance(key, str):
                items.append(RejectedRecord(source, _location(commit, path, index), key, str(detail)))
                continue
            if isinstance(key, Skipped):
                items.append(SkippedRecord(source, _location(commit, path, index), key.reason))
                continue
            if key in seen or not isinstance(detail, Declared):
                continue
                continue
            seen.add(key)
            keys.append(key)
            items.append(
                ManifestObjectRecord(
                    repo=repo,
                    commit=commit,
                    path=path,
                    api_version=key.api_version,
                    kind=key.kind,
                    namespace=key.namespace,
                    name=key.name,
                    audit_ids=() if deleted else detail.audit_ids,
                    document_index=index,
                    deleted=deleted,
                    generate_name=detail.generate_name,
                    placeholders=detail.placeholders,
                )
            )
    if error is not None:
        reason = f"invalid YAML{_where(error)}: {getattr(error, 'problem', None) or error}"
        items.append(
            RejectedRecord(source, _location(commit, path, len(docs)), reason, _error_snippet(text, error))
        )
    return items, keys


def deleted_records(
    keys: list[ObjectKey], *, repo: str, commit: str, path: str
) -> Iterator[ManifestObjectRecord]:
    """``deleted`` records for objects a previous version of a manifest declared and this one dropped."""
    for key in keys:
        yield ManifestObjectRecord(
            repo=repo,
            commit=commit,
            path=path,
            api_version=key.api_version,
            kind=key.kind,
            namespace=key.namespace,
            name=key.name,
            deleted=True,
        )
