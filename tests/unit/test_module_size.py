"""No module of the package grows past ~400 lines: a module that long has usually taken on a second job.

``OVERSIZED`` lists the modules already past the limit, each pinned at its line count when the guard came
in (issue 18), so it can shrink but not grow. They are due for a split at their seams; drop an entry (or
lower it) when its module shrinks, which the second test asks for.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("collector", "lineage", "api", "ebpf")
LIMIT = 400

# Due for a split: pinned at today's size so they can only shrink.
OVERSIZED = {
    "api/cli/export.py": 479,
    "ebpf/node.py": 452,
    "lineage/slsa.py": 446,
    "api/cli/trace.py": 434,
    "collector/sls/consume.py": 416,
    "lineage/records.py": 407,
}


def _sizes() -> dict[str, int]:
    return {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_no_module_grows_past_the_limit_or_its_pin() -> None:
    sizes = _sizes()
    assert len(sizes) > 100  # the walk found the package, not an empty folder
    too_long = {path: lines for path, lines in sizes.items() if lines > OVERSIZED.get(path, LIMIT)}
    assert too_long == {}, f"split these modules at a seam (limit {LIMIT} lines, or their pin): {too_long}"


def test_the_pins_follow_their_modules_down() -> None:
    """A pin above its module's size would let it grow back unnoticed; one for a module gone or back
    under the limit is stale."""
    sizes = _sizes()
    stale = {
        path: (pin, sizes.get(path))
        for path, pin in OVERSIZED.items()
        if sizes.get(path, 0) <= LIMIT or sizes[path] < pin
    }
    assert stale == {}, f"lower or drop these pins in OVERSIZED (pin, lines now): {stale}"
