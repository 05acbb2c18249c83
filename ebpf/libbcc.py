"""Typed entry points of Debian's libbcc that bcc's own Python module does not declare.

Two libraries, loaded on first use: ``kernel_lib()`` is ``libbcc_bpf`` (maps, programs, tracepoints,
ring buffers: all a start from cached bytecode needs, without LLVM, about 0.1 s less to load) and
``module_lib()`` is ``libbcc`` itself, to read a program clang just compiled. Both are declared on
handles of our own, so bcc's declarations stay as bcc made them.
"""

from __future__ import annotations

import ctypes as ct
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["RINGBUF_CALLBACK", "kernel_lib", "library_files", "module_lib"]

RINGBUF_CALLBACK = ct.CFUNCTYPE(ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_int)

_ID: list[Any] = [ct.c_void_p, ct.c_ulonglong]
_NAME: list[Any] = [ct.c_void_p, ct.c_char_p]
_MODULE: dict[str, tuple[Any, list[Any]]] = {
    "bpf_num_tables": (ct.c_ulonglong, [ct.c_void_p]),
    "bpf_table_name": (ct.c_char_p, _ID),
    "bpf_table_fd_id": (ct.c_int, _ID),
    "bpf_table_type_id": (ct.c_int, _ID),
    "bpf_table_key_size_id": (ct.c_size_t, _ID),
    "bpf_table_leaf_size_id": (ct.c_size_t, _ID),
    "bpf_table_max_entries_id": (ct.c_ulonglong, _ID),
    "bpf_table_flags_id": (ct.c_int, _ID),
    "bpf_table_key_desc": (ct.c_char_p, _NAME),
    "bpf_table_leaf_desc": (ct.c_char_p, _NAME),
    "bpf_num_functions": (ct.c_ulonglong, [ct.c_void_p]),
    "bpf_function_name": (ct.c_char_p, _ID),
    "bpf_function_start": (ct.c_void_p, _NAME),
    "bpf_function_size": (ct.c_size_t, _NAME),
    "bpf_module_license": (ct.c_char_p, [ct.c_void_p]),
    "bpf_module_kern_version": (ct.c_uint, [ct.c_void_p]),
}
_KERNEL: dict[str, tuple[Any, list[Any]]] = {
    "bcc_create_map": (ct.c_int, [ct.c_int, ct.c_char_p, ct.c_int, ct.c_int, ct.c_int, ct.c_int]),
    "bcc_prog_load": (
        ct.c_int,
        [
            ct.c_int,
            ct.c_char_p,
            ct.c_void_p,
            ct.c_int,
            ct.c_char_p,
            ct.c_uint,
            ct.c_int,
            ct.c_char_p,
            ct.c_uint,
        ],
    ),
    "bpf_attach_tracepoint": (ct.c_int, [ct.c_int, ct.c_char_p, ct.c_char_p]),
    "bpf_close_perf_event_fd": (ct.c_int, [ct.c_int]),
    "bpf_update_elem": (ct.c_int, [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_ulonglong]),
    "bpf_lookup_elem": (ct.c_int, [ct.c_int, ct.c_void_p, ct.c_void_p]),
    "bpf_new_ringbuf": (ct.c_void_p, [ct.c_int, RINGBUF_CALLBACK, ct.c_void_p]),
    "bpf_poll_ringbuf": (ct.c_int, [ct.c_void_p, ct.c_int]),
    "bpf_consume_ringbuf": (ct.c_int, [ct.c_void_p]),
    "bpf_free_ringbuf": (None, [ct.c_void_p]),
}


def _declared(name: str, signatures: dict[str, tuple[Any, list[Any]]]) -> ct.CDLL:
    lib = ct.CDLL(name, use_errno=True)
    for fn_name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, fn_name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


@cache
def kernel_lib() -> ct.CDLL:
    return _declared("libbcc_bpf.so.0", _KERNEL)


@cache
def module_lib() -> ct.CDLL:
    return _declared("libbcc.so.0", _MODULE)


def library_files() -> list[Path]:
    """bcc's files whose identity is part of the bytecode cache key: both libraries and the Python
    package's version module (found next to ``libbcc_bpf``, which ``kernel_lib`` mapped)."""
    kernel_lib()
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
        mapped = [line.rstrip("\n").split(maxsplit=5)[-1] for line in fh if "/libbcc_bpf.so" in line]
    files = [Path(mapped[0]).with_name("libbcc.so.0"), Path(mapped[0])] if mapped else []
    from importlib.util import find_spec

    spec = find_spec("bcc")
    if spec is not None and spec.submodule_search_locations:
        files.append(Path(next(iter(spec.submodule_search_locations)), "version.py"))
    return files
