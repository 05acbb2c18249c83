"""Keep the tracer's compiled bytecode, so a start on the same machine skips clang.

bcc compiles ``BPF(text=...)`` with clang on every load (most of a ``liubai trace`` start; figures:
docs/performance.md) and has no cache of its own. After a compile, ``extract`` reads back what bcc produced (each function's
instructions, each map's definition) and ``save`` keeps it under a key that covers everything the result
depends on: the rendered program text, the running kernel (its tracepoint formats are compiled in), the
kernel headers and bcc itself. Map descriptors inside the instructions are stored as map numbers and
filled in at load time (``cached_program``).

The cache feeds programs to the kernel as root, so it is only read from a directory and files owned by
this user and writable by no one else; anything else, or any doubt about a file, means compiling again.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CompiledProgram", "FunctionCode", "MapSpec", "cache_dir", "cache_key", "extract", "load", "save"]

FORMAT = 1
KEEP = 8  # cache files kept (one per program text and kernel): older ones are removed on save
_INSN = struct.Struct("<BBhi")  # code, dst/src registers, offset, immediate
_LD_IMM64 = 0x18
_PSEUDO_MAP_FD = 1


@dataclass(frozen=True, slots=True)
class MapSpec:
    name: str
    type: int
    key_size: int
    leaf_size: int
    max_entries: int
    flags: int
    key_desc: str  # bcc's JSON description of the key type (its ctypes layout)
    leaf_desc: str


@dataclass(frozen=True, slots=True)
class FunctionCode:
    name: str
    insns: bytes  # map descriptors zeroed; ``relocs`` says where each goes
    relocs: tuple[tuple[int, int], ...]  # (byte offset of the ld_imm64, index into maps)


@dataclass(frozen=True, slots=True)
class CompiledProgram:
    license: str
    kern_version: int
    maps: tuple[MapSpec, ...]
    functions: tuple[FunctionCode, ...]


def cache_dir() -> Path | None:
    """Where compiled programs are kept: ``LIUBAI_BPF_CACHE`` (``off`` disables), else the user's cache."""
    configured = os.environ.get("LIUBAI_BPF_CACHE")
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "no") else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "liubai", "bpf")


def cache_key(text: str) -> str:
    """Everything the compiled result depends on, hashed: program text, kernel, headers, bcc."""
    from liubai.ebpf.libbcc import library_files

    uname = os.uname()
    headers = Path("/lib/modules", uname.release, "build")
    parts = [
        f"format {FORMAT}",
        f"kernel {uname.release} {uname.version} {uname.machine}",
        f"headers {_stat_id(headers.resolve())}",
        *(f"bcc {_stat_id(path.resolve())}" for path in library_files()),
        text,
    ]
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def _stat_id(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path} missing"
    return f"{path} {st.st_size} {st.st_mtime_ns}"


def extract(bpf: Any) -> CompiledProgram | None:
    """The functions and maps of a bcc ``BPF`` just compiled, or None where something is not understood
    (a kind of relocation this loader does not replay): then nothing is cached."""
    from liubai.ebpf.libbcc import module_lib

    lib = module_lib()
    module = bpf.module
    maps: list[MapSpec] = []
    by_fd: dict[int, int] = {}
    for i in range(lib.bpf_num_tables(module)):
        name = lib.bpf_table_name(module, i)
        by_fd[lib.bpf_table_fd_id(module, i)] = i
        maps.append(
            MapSpec(
                name=name.decode(),
                type=lib.bpf_table_type_id(module, i),
                key_size=lib.bpf_table_key_size_id(module, i),
                leaf_size=lib.bpf_table_leaf_size_id(module, i),
                max_entries=lib.bpf_table_max_entries_id(module, i),
                flags=lib.bpf_table_flags_id(module, i),
                key_desc=(lib.bpf_table_key_desc(module, name) or b"").decode(),
                leaf_desc=(lib.bpf_table_leaf_desc(module, name) or b"").decode(),
            )
        )
    functions: list[FunctionCode] = []
    for i in range(lib.bpf_num_functions(module)):
        name = lib.bpf_function_name(module, i)
        size = lib.bpf_function_size(module, name)
        code = bytearray(ctypes.string_at(lib.bpf_function_start(module, name), size))
        relocs: list[tuple[int, int]] = []
        for off in range(0, size, _INSN.size):
            op, regs, disp, imm = _INSN.unpack_from(code, off)
            if op != _LD_IMM64 or regs >> 4 == 0:
                continue
            if regs >> 4 != _PSEUDO_MAP_FD or imm not in by_fd:
                return None
            relocs.append((off, by_fd[imm]))
            _INSN.pack_into(code, off, op, regs, disp, 0)
        functions.append(FunctionCode(name.decode(), bytes(code), tuple(relocs)))
    return CompiledProgram(
        license=lib.bpf_module_license(module).decode(),
        kern_version=int(lib.bpf_module_kern_version(module)),
        maps=tuple(maps),
        functions=tuple(functions),
    )


def save(directory: Path, key: str, program: CompiledProgram) -> None:
    """Write ``program`` under ``key`` (atomically; private to this user). Failing to cache is not an
    error: the next start compiles again."""
    doc = {
        "format": FORMAT,
        "key": key,
        "license": program.license,
        "kern_version": program.kern_version,
        "maps": [_map_doc(m) for m in program.maps],
        "functions": [
            {"name": f.name, "insns": base64.b64encode(f.insns).decode(), "relocs": list(map(list, f.relocs))}
            for f in program.functions
        ],
    }
    body = json.dumps(doc, sort_keys=True)
    payload = json.dumps({"sha256": hashlib.sha256(body.encode()).hexdigest(), "program": body})
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(directory):
            return
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
        os.replace(tmp, directory / f"{key}.json")
        _prune(directory)
    except OSError:
        return


def load(directory: Path, key: str) -> CompiledProgram | None:
    """The program kept under ``key``, or None (missing, not private, damaged, another format)."""
    path = directory / f"{key}.json"
    try:
        if not _private(directory):
            return None
        with open(path, encoding="utf-8") as fh:
            if not _private_fd(fh.fileno()):
                return None
            outer = json.load(fh)
        body = outer["program"]
        if hashlib.sha256(body.encode()).hexdigest() != outer["sha256"]:
            return None
        doc = json.loads(body)
        if doc["format"] != FORMAT or doc["key"] != key:
            return None
        maps = tuple(MapSpec(**m) for m in doc["maps"])
        functions = tuple(
            FunctionCode(
                f["name"],
                base64.b64decode(f["insns"], validate=True),
                tuple((int(off), int(idx)) for off, idx in f["relocs"]),
            )
            for f in doc["functions"]
        )
        for fn in functions:
            if len(fn.insns) % _INSN.size or any(
                not 0 <= idx < len(maps) or not 0 <= off < len(fn.insns) for off, idx in fn.relocs
            ):
                return None
        return CompiledProgram(str(doc["license"]), int(doc["kern_version"]), maps, functions)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _map_doc(spec: MapSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "type": spec.type,
        "key_size": spec.key_size,
        "leaf_size": spec.leaf_size,
        "max_entries": spec.max_entries,
        "flags": spec.flags,
        "key_desc": spec.key_desc,
        "leaf_desc": spec.leaf_desc,
    }


def _private(path: Path) -> bool:
    """Owned by us and writable by no one else (else another user could choose what root loads)."""
    st = path.stat()
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _private_fd(fd: int) -> bool:
    st = os.fstat(fd)
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in entries[KEEP:]:
        old.unlink(missing_ok=True)
