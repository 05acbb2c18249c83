"""Typed entry points of Debian's libbcc that bcc's own Python module does not declare.

bcc's ``bcc.libbcc.lib`` declares what its ``BPF`` class calls; reading a compiled module back
(``bytecode_cache``) and loading it without clang (``cached_program``) need a few more. They are
declared here on a handle of our own, so bcc's declarations stay as bcc made them.
"""

from __future__ import annotations

import ctypes as ct
from pathlib import Path
from typing import Any

__all__ = ["RINGBUF_CALLBACK", "lib", "library_path"]

NAME = "libbcc.so.0"
lib = ct.CDLL(NAME, use_errno=True)

RINGBUF_CALLBACK = ct.CFUNCTYPE(ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_int)

_MODULE_ID: list[Any] = [ct.c_void_p, ct.c_ulonglong]
_MODULE_NAME: list[Any] = [ct.c_void_p, ct.c_char_p]
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    # reading a compiled module
    "bpf_num_tables": (ct.c_ulonglong, [ct.c_void_p]),
    "bpf_table_name": (ct.c_char_p, _MODULE_ID),
    "bpf_table_fd_id": (ct.c_int, _MODULE_ID),
    "bpf_table_type_id": (ct.c_int, _MODULE_ID),
    "bpf_table_key_size_id": (ct.c_size_t, _MODULE_ID),
    "bpf_table_leaf_size_id": (ct.c_size_t, _MODULE_ID),
    "bpf_table_max_entries_id": (ct.c_ulonglong, _MODULE_ID),
    "bpf_table_flags_id": (ct.c_int, _MODULE_ID),
    "bpf_table_key_desc": (ct.c_char_p, _MODULE_NAME),
    "bpf_table_leaf_desc": (ct.c_char_p, _MODULE_NAME),
    "bpf_num_functions": (ct.c_ulonglong, [ct.c_void_p]),
    "bpf_function_name": (ct.c_char_p, _MODULE_ID),
    "bpf_function_start": (ct.c_void_p, _MODULE_NAME),
    "bpf_function_size": (ct.c_size_t, _MODULE_NAME),
    "bpf_module_license": (ct.c_char_p, [ct.c_void_p]),
    "bpf_module_kern_version": (ct.c_uint, [ct.c_void_p]),
    # loading without a module: maps, programs, tracepoints, map elements, ring buffers
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
for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes


def library_path() -> Path:
    """The libbcc file this process has mapped (its identity is part of the bytecode cache key)."""
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            path = line.rstrip("\n").split(maxsplit=5)[-1]
            if "/libbcc.so" in path:
                return Path(path)
    return Path(NAME)
