"""The export package keeps the names callers imported from the single module it was split from."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import liubai.lineage.export as export

# Every name callers imported from ``liubai.lineage.export`` before it became a package.
PUBLIC = [
    "BUNDLE_FORMAT",
    "FILE_SUFFIX",
    "FORMATS",
    "MAX_DEPTH",
    "MAX_LIMIT",
    "MEDIA_TYPES",
    "BundleCheck",
    "ExportError",
    "ExportMeta",
    "FactSource",
    "Selection",
    "Selector",
    "canonical_json",
    "check_bundle",
    "liubai_version",
    "parse_time_bound",
    "render",
    "render_csv_edges",
    "render_csv_nodes",
    "resolve_start",
    "select",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_still_importable(name: str) -> None:
    assert name in export.__all__
    assert getattr(export, name) is not None


@pytest.mark.parametrize("module", ["facts", "selection", "formats", "bundle"])
def test_each_part_is_small(module: str) -> None:
    mod = importlib.import_module(f"liubai.lineage.export.{module}")
    assert mod.__file__ is not None
    assert len(Path(mod.__file__).read_text().splitlines()) <= 400


def test_render_rejects_unknown_format_with_export_error() -> None:
    with pytest.raises(export.ExportError, match="unknown format 'xml'"):
        export.render(export.SubgraphSource([], [], None), "xml", export.ExportMeta(query={}, store="x"))
