"""Kubernetes objects out of (multi-document) YAML manifest text.

A manifest file is untrusted input: one broken document must not hide the good ones around it, and
every problem becomes a ``RejectedRecord`` that names commit, file, document and reason. Documents
that are plainly not Kubernetes objects (CI workflows, Helm values, kustomize configs) are skipped
quietly, because GitOps repositories are full of them.

Speed: a GitOps history re-commits the same documents over and over (a Service next to the Deployment
whose image tag moved), so a file is cut at its ``---`` lines and what each piece declares is cached by
its text. A piece is parsed with a resolver that memoises implicit tags, and only the parts the
collector reads are built from the node tree. Anything unusual (a parse error, directives, ``...``
markers) sends the whole file through the plain path, which defines the results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

import yaml

from liubai.lineage.model import AUDIT_ID_ANNOTATION, RejectedRecord
from liubai.lineage.records import ManifestObjectRecord

__all__ = [
    "MANIFEST_SUFFIXES",
    "ManifestCache",
    "ObjectKey",
    "audit_ids_of",
    "deleted_records",
    "is_manifest_path",
    "parse_manifest",
]

MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# Nodes that aliases may add to a document beyond the ones its text writes out. Shared labels, env or
# resources blocks add tens to thousands; an object the API server stores (1.5 MiB in etcd) cannot hold
# much more once expanded. A "billion laughs" document adds billions, and walking them hangs the run.
MAX_ALIAS_NODES = 100_000
_RAW_KEEP = 800
_SKIP_API_GROUPS = ("kustomize.config.k8s.io/", "config.kubernetes.io/")
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ManifestItem = ManifestObjectRecord | RejectedRecord


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """What identifies a declared object: enough to say "this object is gone" in a later version."""

    api_version: str
    kind: str
    namespace: str
    name: str


def is_manifest_path(path: str) -> bool:
    return path.lower().endswith(MANIFEST_SUFFIXES)


def _location(commit: str, path: str, doc: int | None) -> str:
    base = f"{commit[:12]}:{path}"
    return base if doc is None else f"{base}#{doc}"


def _snippet(value: Any) -> str:
    if isinstance(value, str):
        return value[:_RAW_KEEP]
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000)
    except yaml.YAMLError:
        text = repr(value)
    return text[:_RAW_KEEP].rstrip("\n")


def _error_snippet(text: str, exc: yaml.YAMLError) -> str:
    """The lines around a YAML error, so the rejected record shows what was wrong without the file."""
    mark = getattr(exc, "problem_mark", None)
    lines = text.splitlines()
    if mark is None or not lines:
        return text[:_RAW_KEEP]
    lo, hi = max(0, mark.line - 2), min(len(lines), mark.line + 2)
    return "\n".join(lines[lo:hi])[:_RAW_KEEP]


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"


def _annotation(meta: Any) -> str | None:
    if not isinstance(meta, Mapping):
        return None
    ann = meta.get("annotations")
    if not isinstance(ann, Mapping) or AUDIT_ID_ANNOTATION not in ann:
        return None
    value = ann[AUDIT_ID_ANNOTATION]
    return "" if value is None else str(value)


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def audit_ids_of(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """``x-gitops-audit-id`` values on the object, its pod template and a CronJob's job template."""
    found: list[str] = []
    for meta in (
        obj.get("metadata"),
        _dig(obj, "spec", "template", "metadata"),
        _dig(obj, "spec", "jobTemplate", "spec", "template", "metadata"),
    ):
        value = _annotation(meta)
        if value is not None and value not in found:
            found.append(value)
    return tuple(found)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_TEMPLATE_PATHS = (("spec", "template", "metadata"), ("spec", "jobTemplate", "spec", "template", "metadata"))
_MAX_DEPTH = 64
_TAG_CACHE = 65536
_TAG_KEY_MAX = 128
_SIZE_CAP = 1 << 62  # keeps nested alias counts machine-sized; anything near it is refused anyway


# What reading a document can raise: the parser's errors, and the constructors' own for a value that
# does not fit its explicit tag ("!!int x", "!!bool maybe", "!!timestamp x"), or nesting too deep.
_UNREADABLE = (yaml.YAMLError, ValueError, KeyError, AttributeError, TypeError, OverflowError, RecursionError)


class _NeedsWholeDocument(Exception):
    """A merge key (``<<``) on the way: only the full constructor resolves it correctly."""


class _Unsplittable(Exception):
    """A piece of a file did not parse on its own: the whole file takes the plain path."""


def _construct_fast(node: yaml.Node, builder: Any, depth: int = 0) -> Any:
    """``construct_document`` for the plain shapes (string scalars, string-keyed maps, sequences) without
    its per-node generator machinery; every other node goes to the constructor itself."""
    tag = node.tag
    cls = type(node)
    if cls is yaml.ScalarNode and tag == _STR_TAG:
        return node.value
    if depth < _MAX_DEPTH:
        if cls is yaml.MappingNode and tag == _MAP_TAG:
            out: dict[str, Any] = {}
            for k, v in node.value:
                if type(k) is not yaml.ScalarNode or k.tag != _STR_TAG:
                    return builder.construct_document(node)
                out[k.value] = _construct_fast(v, builder, depth + 1)
            return out
        if cls is yaml.SequenceNode and tag == _SEQ_TAG:
            return [_construct_fast(v, builder, depth + 1) for v in node.value]
    return builder.construct_document(node)


def _index(node: yaml.Node | None, memo: dict[int, dict[str, yaml.Node]]) -> dict[str, yaml.Node]:
    """A mapping node's children by scalar key, scanned once (the last duplicate wins, as in full
    construction); a merge key sends the whole document to the stock constructor."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    found = memo.get(id(node))
    if found is None:
        found = memo[id(node)] = {}
        for k, v in node.value:
            if k.tag == _MERGE_TAG:
                raise _NeedsWholeDocument
            if isinstance(k, yaml.ScalarNode):
                found[k.value] = v
    return found


def _light(node: yaml.Node, builder: Any, *, fast: bool) -> Any:
    """The parts of a document the collector reads (apiVersion, kind, metadata, items, template
    metadata), built from the composed node tree; the pod spec and the rest are never constructed,
    which halves the parse cost of a typical Deployment. Each mapping on the way is scanned once;
    ``fast`` builds plain subtrees directly (``_construct_fast``) instead of with the stock constructor."""
    if not isinstance(node, yaml.MappingNode):
        return builder.construct_document(node)
    build: Callable[[yaml.Node], Any] = (
        (lambda n: _construct_fast(n, builder)) if fast else builder.construct_document
    )
    memo: dict[int, dict[str, yaml.Node]] = {}
    try:
        top = _index(node, memo)
        out: dict[str, Any] = {}
        for key in ("apiVersion", "kind", "metadata", "items"):
            child = top.get(key)
            if child is not None:
                out[key] = build(child)
        for path in _TEMPLATE_PATHS:
            target: yaml.Node | None = node
            for key in path:
                target = _index(target, memo).get(key)
            if target is not None:
                slot = out
                for key in path[:-1]:
                    slot = slot.setdefault(key, {})
                slot[path[-1]] = build(target)
        return out
    except _NeedsWholeDocument:
        return builder.construct_document(node)


@dataclass(frozen=True, slots=True)
class _Refused:
    """A document the loader would not build, with why and its text."""

    reason: str
    raw: str


class _ExcessiveAliasing(Exception):
    def __init__(self, reason: str, raw: str) -> None:
        super().__init__(reason)
        self.raw = raw


def _alias_growth(root: yaml.Node) -> int | None:
    """How many nodes aliases add to a document once written out (each node counts 1 plus its
    children, an alias the whole node it names), or None for an alias inside the node it names, which
    never ends. Sizes are memoised per node, so the cost follows the composed tree, not the expansion."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, list[yaml.Node] | None]] = [(root, None)]  # children once expanded
    while stack:
        node, children = stack.pop()
        key = id(node)
        if children is not None:
            open_nodes.discard(key)
            sizes[key] = min(1 + sum(sizes[id(c)] for c in children), _SIZE_CAP)
        elif key not in sizes:
            if type(node) is yaml.ScalarNode:
                sizes[key] = 1
                continue
            if key in open_nodes:
                return None
            open_nodes.add(key)
            children = _children(node)
            stack.append((node, children))
            stack.extend((c, None) for c in children)
    return sizes[id(root)] - len(sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class _BoundedLoader(_Loader):  # type: ignore[valid-type,misc]
    """The safe loader, refusing each document whose aliases expand it past ``MAX_ALIAS_NODES``.

    PyYAML composes an alias as a reference to the node it names, so a tiny "billion laughs" text
    composes quickly; the blow-up comes when the result is walked. Measuring the composed tree stops it
    there, and the parser stays at the next document, so the rest of the file is still read."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._text = stream
        self._aliased = "&" in stream and "*" in stream  # no alias without both: nothing to expand

    def get_node(self) -> yaml.Node | None:
        node: yaml.Node | None = super().get_node()
        if node is None or not self._aliased:
            return node
        growth = _alias_growth(node)
        if growth is None:
            reason = "YAML alias refers to a node that contains it, an endless expansion"
        elif growth > MAX_ALIAS_NODES:
            reason = f"YAML aliases expand the document by more than {MAX_ALIAS_NODES:,} nodes (excessive aliasing)"
        else:
            return node
        lines = self._text.splitlines()[node.start_mark.line : node.end_mark.line + 1]
        raise _ExcessiveAliasing(reason, "\n".join(lines)[:_RAW_KEEP])


def _documents(loader: _BoundedLoader, *, fast: bool) -> Iterator[Any]:
    """Each document of the loader's text, built by ``_light`` with the loader itself as constructor,
    or ``_Refused`` for one the loader would not build."""
    try:
        while loader.check_node():
            try:
                node = loader.get_node()
            except _ExcessiveAliasing as exc:
                yield _Refused(str(exc), exc.raw)
                continue
            yield None if node is None else _light(node, loader, fast=fast)
    finally:
        loader.dispose()


def _is_kubernetes_like(doc: Mapping[str, Any]) -> bool:
    return "kind" in doc or "apiVersion" in doc


def _objects(doc: Mapping[str, Any]) -> list[Any]:
    """A ``kind: List`` (or ``*List``) carries its objects under ``items``."""
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        return list(doc["items"])
    return [doc]


def _check(obj: Any) -> tuple[ObjectKey, Mapping[str, Any]] | str | None:
    """The object's key, a rejection reason, or None for a document that is no Kubernetes object."""
    if not isinstance(obj, Mapping):
        return f"document is a {type(obj).__name__}, not a Kubernetes object mapping"
    if not _is_kubernetes_like(obj):
        return None
    api_version = obj.get("apiVersion", "")
    if isinstance(api_version, str) and api_version.startswith(_SKIP_API_GROUPS):
        return None
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind.strip():
        return "object has no kind"
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name.strip():
        return f"{kind} has no metadata.name"
    namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
    if namespace is None or namespace == "":
        namespace = "default"
    if not isinstance(namespace, str):
        return f"{kind}/{name} has a non-string metadata.namespace"
    return ObjectKey(str(api_version or ""), kind.strip(), namespace, name.strip()), obj


# What one document declares: (key, audit ids) per object, or (reason, snippet) per bad object.
_Outcome = tuple[tuple[ObjectKey | str, tuple[str, ...] | str], ...]


def _outcome(doc: Any) -> _Outcome:
    if doc is None:
        return ()
    if isinstance(doc, _Refused):
        return ((doc.reason, doc.raw),)
    out: list[tuple[ObjectKey | str, tuple[str, ...] | str]] = []
    for obj in _objects(doc) if isinstance(doc, Mapping) else [doc]:
        checked = _check(obj)
        if checked is None:
            continue
        if isinstance(checked, str):
            out.append((checked, _snippet(obj)))
        else:
            out.append((checked[0], audit_ids_of(checked[1])))
    return tuple(out)


class _FastLoader(_BoundedLoader):
    """The safe loader with implicit tag resolution memoised: a manifest history resolves the same few
    thousand short scalars again and again (long ones, rarely repeated, are not kept). SafeLoader has
    no path resolvers, so descending and ascending the resolver path do nothing and are skipped."""

    def __init__(self, stream: str, resolve_short: Callable[[type, Any, Any], str]) -> None:
        super().__init__(stream)
        self._resolve_short = resolve_short

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if value is not None and len(value) > _TAG_KEY_MAX:
            return str(super().resolve(kind, value, implicit))
        return self._resolve_short(kind, value, implicit)

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


class ManifestCache:
    """What each document text declares, shared by the parses of one collector run: identical text
    (the unchanged documents of a multi-document file, an old blob seen again) is parsed once."""

    def __init__(self, max_chars: int = 32 << 20) -> None:
        self.max_chars = max_chars
        self.pieces: dict[str, tuple[_Outcome, ...]] = {}
        self.chars = 0
        self.resolve = lru_cache(maxsize=_TAG_CACHE)(_Loader("").resolve)

    def outcomes(self, piece: str) -> tuple[_Outcome, ...]:
        cached = self.pieces.get(piece)
        if cached is None:
            cached = _piece_outcomes(piece, self.resolve)
            if self.chars + len(piece) > self.max_chars:
                self.pieces.clear()
                self.chars = 0
            self.pieces[piece] = cached
            self.chars += len(piece)
        return cached


def _split(text: str) -> list[str]:
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


def _piece_outcomes(piece: str, resolve: Callable[[type, Any, Any], str]) -> tuple[_Outcome, ...]:
    try:
        built = list(_documents(_FastLoader(piece, resolve), fast=True))
    except _UNREADABLE:
        raise _Unsplittable from None
    docs = [_outcome(doc) for doc in built]
    if any(isinstance(key, str) for doc in docs for key, _ in doc):
        # a reject's snippet must show shared (aliased) values the way the stock constructor builds them
        docs, error = _whole_outcomes(piece)
        if error is not None:
            raise _Unsplittable
    return tuple(docs)


def _whole_outcomes(text: str) -> tuple[list[_Outcome], yaml.YAMLError | None]:
    """Every document of the file in one parse with the stock constructor; stops at the first error."""
    docs: list[_Outcome] = []
    stream = _documents(_BoundedLoader(text), fast=False)
    while True:
        try:
            doc = next(stream)
        except StopIteration:
            return docs, None
        except yaml.YAMLError as exc:
            return docs, exc
        except _UNREADABLE as exc:  # e.g. "!!int x": the constructors raise plain Python errors
            return docs, yaml.YAMLError(f"cannot construct a value: {type(exc).__name__}: {exc}")
        docs.append(_outcome(doc))


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
        return [], []  # a Helm chart template: rendered YAML only exists after `helm template`
    error: yaml.YAMLError | None = None
    try:
        outcomes = (cache or ManifestCache()).outcomes
        docs = [doc for piece in _split(text) for doc in outcomes(piece)]
    except _Unsplittable:
        docs, error = _whole_outcomes(text)
    items: list[ManifestItem] = []
    keys: list[ObjectKey] = []
    seen: set[ObjectKey] = set()
    for index, outcome in enumerate(docs):
        for key, detail in outcome:
            if isinstance(key, str):
                items.append(RejectedRecord(source, _location(commit, path, index), key, str(detail)))
                continue
            if key in seen:
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
                    audit_ids=() if deleted else detail,  # type: ignore[arg-type]
                    document_index=index,
                    deleted=deleted,
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
