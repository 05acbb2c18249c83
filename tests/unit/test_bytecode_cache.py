"""The tracer's bytecode cache keeps what it was given and refuses what it cannot trust."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from liubai.ebpf import bytecode_cache
from liubai.ebpf.bytecode_cache import CompiledProgram, FunctionCode, MapSpec

PROGRAM = CompiledProgram(
    license="GPL",
    kern_version=393664,
    maps=(
        MapSpec(
            "tracked",
            1,
            4,
            16,
            32768,
            0,
            '"unsigned int"',
            '["proc_t", [["start_ns", "unsigned long long"]]]',
        ),
        MapSpec("events", 27, 0, 0, 4194304, 0, "", ""),
    ),
    functions=(
        FunctionCode("tracepoint__sched__sched_process_fork", bytes(range(32)), ((8, 0), (16, 1))),
        FunctionCode("read_arg_chunk", b"\x95" + bytes(7), ()),
    ),
)
KEY = "ab" * 32


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    directory = tmp_path / "bpf"
    bytecode_cache.save(directory, KEY, PROGRAM)
    return directory


def test_a_saved_program_loads_back_unchanged_and_private(cache: Path) -> None:
    assert bytecode_cache.load(cache, KEY) == PROGRAM
    assert cache.stat().st_mode & 0o777 == 0o700
    assert (cache / f"{KEY}.json").stat().st_mode & 0o077 == 0


def test_another_key_is_a_miss(cache: Path) -> None:
    assert bytecode_cache.load(cache, "cd" * 32) is None


@pytest.mark.parametrize("target", ["dir", "file"])
def test_a_cache_others_can_write_is_not_read(cache: Path, target: str) -> None:
    """root loads what the cache holds: a file another user could have written is never used."""
    path = cache if target == "dir" else cache / f"{KEY}.json"
    path.chmod(path.stat().st_mode | 0o002)
    assert bytecode_cache.load(cache, KEY) is None


def test_a_changed_byte_is_a_miss(cache: Path) -> None:
    path = cache / f"{KEY}.json"
    outer = json.loads(path.read_text())
    outer["program"] = outer["program"].replace('"GPL"', '"GPL2"')
    path.write_text(json.dumps(outer))
    assert bytecode_cache.load(cache, KEY) is None


def test_a_relocation_outside_the_code_or_the_maps_is_a_miss(cache: Path) -> None:
    path = cache / f"{KEY}.json"
    for bad in ([[8, 2]], [[4096, 0]]):
        outer = json.loads(path.read_text())
        doc = json.loads(outer["program"])
        doc["functions"][0]["relocs"] = bad
        body = json.dumps(doc, sort_keys=True)
        path.write_text(json.dumps({"sha256": hashlib.sha256(body.encode()).hexdigest(), "program": body}))
        assert bytecode_cache.load(cache, KEY) is None


def test_only_the_newest_programs_are_kept(tmp_path: Path) -> None:
    directory = tmp_path / "bpf"
    keys = [f"{i:064x}" for i in range(bytecode_cache.KEEP + 3)]
    for n, key in enumerate(keys):
        bytecode_cache.save(directory, key, PROGRAM)
        os.utime(directory / f"{key}.json", ns=(n * 10**9, n * 10**9))
    bytecode_cache.save(directory, keys[-1], PROGRAM)
    kept = sorted(p.stem for p in directory.glob("*.json"))
    assert kept == sorted(keys[-bytecode_cache.KEEP :])


def test_the_cache_can_be_moved_or_switched_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIUBAI_BPF_CACHE", str(tmp_path / "here"))
    assert bytecode_cache.cache_dir() == tmp_path / "here"
    monkeypatch.setenv("LIUBAI_BPF_CACHE", "off")
    assert bytecode_cache.cache_dir() is None
    monkeypatch.delenv("LIUBAI_BPF_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert bytecode_cache.cache_dir() == tmp_path / "liubai" / "bpf"


DESCS = [
    "unsigned int",
    [
        "proc_t",
        [["start_ns", "unsigned long long"], ["ppid", "unsigned int"], ["_pad", "unsigned int"]],
        "struct",
    ],
    [
        "ev",
        [["comm", "char", [16]], ["flags", "unsigned int", 3], ["", [["a", "int"], ["b", "short"]], "union"]],
    ],
    ["packed", [["x", "char"], ["y", "unsigned long long"]], "struct_packed"],
]


@pytest.mark.parametrize("desc", DESCS, ids=lambda d: d if isinstance(d, str) else d[0])
def test_map_types_read_back_with_the_layout_the_kernel_uses(desc: object) -> None:
    """A start from the cache builds map keys and values without bcc: same sizes and offsets as bcc's."""
    import ctypes

    from liubai.ebpf.cached_program import ctype_of

    ours = ctype_of(desc)
    bcc = pytest.importorskip("bcc")
    theirs = bcc.BPF._decode_table_type(desc)
    assert ctypes.sizeof(ours) == ctypes.sizeof(theirs)
    for name, *_ in getattr(theirs, "_fields_", []):
        assert getattr(ours, name).offset == getattr(theirs, name).offset
