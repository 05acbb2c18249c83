"""Multi-document YAML in and out for ``liubai annotate``, keeping what a manifest means.

Key order is kept and strings that would read back as another type are quoted. Dates stay the strings
they are to Kubernetes (JSON has no date type), and multi-line strings (scripts, config files in a
ConfigMap) are written as literal blocks, so the output reads like the input.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["YamlInputError", "dump_documents", "load_documents"]

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe loading, with no timestamp type: ``2026-01-02`` is the string Kubernetes sees."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and value.strip() and not value.endswith((" ", "\t")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


class YamlInputError(ValueError):
    """Input that is not YAML; the message names the line and column."""


def load_documents(text: str, source: str = "stdin") -> list[Any]:
    """The documents of ``text`` (empty ones dropped); ``YamlInputError`` says where it stops being YAML."""
    try:
        return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        problem = exc.problem or exc.context or "not YAML"
        raise YamlInputError(f"{source}: {where}: {problem}") from None
    except yaml.YAMLError as exc:  # a reader error: a byte that is not allowed in YAML
        raise YamlInputError(f"{source}: {str(exc).splitlines()[0]}") from None


def dump_documents(docs: list[Any]) -> str:
    """``docs`` as one multi-document YAML stream."""
    return yaml.dump_all(
        docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=10_000
    )
