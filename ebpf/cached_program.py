"""Load a program from cached bytecode: the maps, programs and tracepoint attachments ``BPF(text=...)``
would make, without clang.

``CachedProgram`` offers the part of bcc's ``BPF`` object the tracer uses (``program["tracked"]``,
``load_func``, the ring buffer, ``tracepoint_fds``, ``cleanup``), so ``Tracer`` reads the same either way.
The kernel's verifier checks every program as it would after a compile.
"""

from __future__ import annotations

import ctypes as ct
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from liubai.ebpf.bytecode_cache import CompiledProgram, FunctionCode, MapSpec
from liubai.ebpf.libbcc import RINGBUF_CALLBACK, kernel_lib

__all__ = ["TRACEPOINT", "CachedProgram", "LoadError", "ctype_of"]

TRACEPOINT = 5  # BPF_PROG_TYPE_TRACEPOINT
_HASH, _PROG_ARRAY, _PERCPU_ARRAY, _RINGBUF = 1, 3, 6, 27
_PREFIX = b"tracepoint__"
_LOG_SIZE = 1 << 16


class LoadError(RuntimeError):
    """The cached program could not be loaded (the caller compiles instead)."""


class _Function:
    def __init__(self, name: bytes, fd: int) -> None:
        self.name, self.fd = name, fd


class CachedProgram:
    """Maps created, every ``tracepoint__<category>__<event>`` function loaded and attached."""

    def __init__(self, compiled: CompiledProgram) -> None:
        lib = kernel_lib()
        self._compiled = compiled
        self._code = {f.name.encode(): f for f in compiled.functions}
        self.map_fds: list[int] = []
        self.funcs: dict[bytes, _Function] = {}
        self.tracepoint_fds: dict[bytes, int] = {}
        self.tables: dict[str, Any] = {}
        self._ringbuf: int | None = None
        self._callbacks: list[Any] = []
        try:
            for spec in compiled.maps:
                self.map_fds.append(_create_map(spec))
            for name in self._code:
                if name.startswith(_PREFIX):
                    fn = self.load_func(name, TRACEPOINT)
                    category, _, event = name[len(_PREFIX) :].partition(b"__")
                    fd = lib.bpf_attach_tracepoint(fn.fd, category, event)
                    if fd < 0:
                        raise LoadError(f"cannot attach {name.decode()}: {os.strerror(ct.get_errno())}")
                    self.tracepoint_fds[category + b":" + event] = fd
        except BaseException:
            self.cleanup()
            raise

    def load_func(self, name: str | bytes, prog_type: int) -> _Function:
        key = name.encode() if isinstance(name, str) else name
        if key in self.funcs:
            return self.funcs[key]
        lib = kernel_lib()
        code = self._code.get(key)
        if code is None:
            raise LoadError(f"no function {key.decode()} in the cached program")
        insns = ct.create_string_buffer(self._relocated(code), len(code.insns))
        log = ct.create_string_buffer(_LOG_SIZE)
        fd = lib.bcc_prog_load(
            prog_type,
            key[:15],
            insns,
            len(code.insns),
            self._compiled.license.encode(),
            self._compiled.kern_version,
            0,
            log,
            _LOG_SIZE,
        )
        if fd < 0:
            raise LoadError(f"the kernel refused {key.decode()}: {os.strerror(ct.get_errno())}")
        self.funcs[key] = fn = _Function(key, fd)
        return fn

    def _relocated(self, code: FunctionCode) -> bytes:
        insns = bytearray(code.insns)
        for offset, index in code.relocs:
            insns[offset + 4 : offset + 8] = self.map_fds[index].to_bytes(4, "little", signed=True)
        return bytes(insns)

    def __getitem__(self, name: str) -> Any:
        if name not in self.tables:
            for index, spec in enumerate(self._compiled.maps):
                if spec.name == name:
                    self.tables[name] = _table(self, spec, self.map_fds[index])
                    break
            else:
                raise KeyError(name)
        return self.tables[name]

    def open_ring_buffer(self, map_fd: int, callback: Callable[[Any, Any, int], Any]) -> None:
        def deliver(ctx: Any, data: Any, size: int) -> int:
            callback(ctx, data, size)
            return 0

        lib = kernel_lib()
        wrapped = RINGBUF_CALLBACK(deliver)
        self._callbacks.append(wrapped)  # ctypes must keep the callback alive as long as the buffer
        manager = lib.bpf_new_ringbuf(map_fd, wrapped, None)
        if not manager:
            raise LoadError("cannot open the ring buffer")
        self._ringbuf = manager

    def ring_buffer_poll(self, timeout_ms: int = -1) -> None:
        if self._ringbuf:
            kernel_lib().bpf_poll_ringbuf(self._ringbuf, timeout_ms)

    def ring_buffer_consume(self) -> None:
        if self._ringbuf:
            kernel_lib().bpf_consume_ringbuf(self._ringbuf)

    def cleanup(self) -> None:
        lib = kernel_lib()
        for fd in self.tracepoint_fds.values():
            lib.bpf_close_perf_event_fd(fd)
        self.tracepoint_fds.clear()
        for fn in self.funcs.values():
            os.close(fn.fd)
        self.funcs.clear()
        if self._ringbuf:
            lib.bpf_free_ringbuf(self._ringbuf)
            self._ringbuf = None
        for fd in self.map_fds:
            os.close(fd)
        self.map_fds.clear()


def _create_map(spec: MapSpec) -> int:
    if spec.type not in (_HASH, _PROG_ARRAY, _PERCPU_ARRAY, _RINGBUF):
        raise LoadError(f"map {spec.name} has a type ({spec.type}) this loader does not create")
    fd: int = kernel_lib().bcc_create_map(
        spec.type, spec.name.encode()[:15], spec.key_size, spec.leaf_size, spec.max_entries, spec.flags
    )
    if fd < 0:
        raise LoadError(f"cannot create map {spec.name}: {os.strerror(ct.get_errno())}")
    return fd


_SCALARS: dict[str, Any] = {
    "_Bool": ct.c_bool,
    "char": ct.c_char,
    "unsigned char": ct.c_ubyte,
    "short": ct.c_short,
    "unsigned short": ct.c_ushort,
    "int": ct.c_int,
    "unsigned int": ct.c_uint,
    "long": ct.c_long,
    "unsigned long": ct.c_ulong,
    "long long": ct.c_longlong,
    "unsigned long long": ct.c_ulonglong,
}


def ctype_of(desc: Any) -> Any:
    """The ctypes type of one of bcc's JSON type descriptions (``bpf_table_key_desc``): a scalar name,
    or ``[name, [[field, type], [field, type, [count]], [field, type, bits], ...], "struct"|"union"]``."""
    if isinstance(desc, str):
        if desc not in _SCALARS:
            raise LoadError(f"no ctypes type for {desc!r}")
        return _SCALARS[desc]
    fields: list[tuple[Any, ...]] = []
    anonymous: list[str] = []
    for field in desc[1]:
        if len(field) == 2:
            fields.append((field[0], ctype_of(field[1])))
        elif len(field) == 3 and isinstance(field[2], list):
            fields.append((field[0], ctype_of(field[1]) * field[2][0]))
        elif len(field) == 3 and isinstance(field[2], int):
            fields.append((field[0], ctype_of(field[1]), field[2]))
        elif len(field) == 3 and field[2] in ("struct", "union", "struct_packed"):
            name = field[0] or f"__anon{len(anonymous)}"
            if not field[0]:
                anonymous.append(name)
            fields.append((name, ctype_of(field)))
        else:
            raise LoadError(f"cannot read the type description {field!r}")
    kind = desc[2] if len(desc) > 2 else "struct"
    base = ct.Union if kind == "union" else ct.Structure
    body: dict[str, Any] = {"_anonymous_": anonymous, "_fields_": fields}
    if kind == "struct_packed":
        body["_pack_"] = 1
    return type(str(desc[0]), (base,), body)


def _ctype(desc: str) -> Any:
    return ctype_of(json.loads(desc))


def _possible_cpus() -> int:
    """How many values a per-CPU map holds per entry: one per possible CPU (``0-3``, ``0,2-5``, ...)."""
    with open("/sys/devices/system/cpu/possible", encoding="ascii") as fh:
        count = 0
        for part in fh.read().strip().split(","):
            low, _, high = part.partition("-")
            count += int(high or low) - int(low) + 1
    return count


def _table(program: CachedProgram, spec: MapSpec, fd: int) -> Any:
    if spec.type == _HASH:
        return _Hash(fd, _ctype(spec.key_desc), _ctype(spec.leaf_desc))
    if spec.type == _PERCPU_ARRAY:
        return _PerCpuArray(fd, spec)
    if spec.type == _PROG_ARRAY:
        return _ProgArray(fd)
    return _RingBuf(program, fd)


class _Hash:
    def __init__(self, fd: int, key: Any, leaf: Any) -> None:
        self.map_fd, self.Key, self.Leaf = fd, key, leaf

    def __setitem__(self, key: Any, leaf: Any) -> None:
        if kernel_lib().bpf_update_elem(self.map_fd, ct.byref(key), ct.byref(leaf), 0) < 0:
            raise OSError(ct.get_errno(), f"cannot update map: {os.strerror(ct.get_errno())}")


class _ProgArray:
    def __init__(self, fd: int) -> None:
        self.map_fd = fd

    def __setitem__(self, key: ct.c_int, prog_fd: ct.c_int) -> None:
        if kernel_lib().bpf_update_elem(self.map_fd, ct.byref(key), ct.byref(prog_fd), 0) < 0:
            raise OSError(ct.get_errno(), f"cannot set a tail call: {os.strerror(ct.get_errno())}")


class _PerCpuArray:
    """Each entry read back as one value per possible CPU (the kernel pads each to 8 bytes)."""

    def __init__(self, fd: int, spec: MapSpec) -> None:
        self.map_fd, self.spec = fd, spec
        self.cpus = _possible_cpus()
        self.leaf = _ctype(spec.leaf_desc)

    def values(self) -> Iterator[list[int]]:
        stride = (self.spec.leaf_size + 7) // 8 * 8
        buf = ct.create_string_buffer(stride * self.cpus)
        for index in range(self.spec.max_entries):
            key = ct.c_uint32(index)
            if kernel_lib().bpf_lookup_elem(self.map_fd, ct.byref(key), buf) < 0:
                raise OSError(ct.get_errno(), f"cannot read map {self.spec.name}")
            raw = buf.raw
            yield [int(self.leaf.from_buffer_copy(raw, cpu * stride).value) for cpu in range(self.cpus)]


class _RingBuf:
    def __init__(self, program: CachedProgram, fd: int) -> None:
        self.program, self.map_fd = program, fd

    def open_ring_buffer(self, callback: Callable[[Any, Any, int], Any]) -> None:
        self.program.open_ring_buffer(self.map_fd, callback)
