"""Get the tracer's program into the kernel: from this machine's bytecode cache, else by compiling.

A cache hit skips clang (most of a start; figures: docs/performance.md); anything wrong with a cached program (the kernel
refuses it, a map cannot be made) means compiling as before, and a fresh compile refreshes the cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from liubai.ebpf import bytecode_cache
from liubai.ebpf.cached_program import CachedProgram, LoadError

__all__ = ["LoadedProgram", "load_program"]


@dataclass(slots=True)
class LoadedProgram:
    program: Any  # bcc's BPF, or a CachedProgram offering the same calls
    origin: str  # "cache" or "compiled"
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, for benchmarks


def load_program(text: str) -> LoadedProgram:
    """Load ``text`` with every tracepoint function attached. bcc's compile errors propagate as bcc
    raises them (a bare ``Exception``). bcc's Python module (and LLVM with it) is imported only to compile."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    directory = bytecode_cache.cache_dir()
    key = bytecode_cache.cache_key(text) if directory is not None else ""
    compiled = bytecode_cache.load(directory, key) if directory is not None else None
    timings["cache_read"] = time.perf_counter() - t0
    if compiled is not None:
        t1 = time.perf_counter()
        try:
            program = CachedProgram(compiled)
        except LoadError:
            pass
        else:
            timings["load_attach"] = time.perf_counter() - t1
            return LoadedProgram(program, "cache", timings)
    t1 = time.perf_counter()
    from bcc import BPF

    bpf = BPF(text=text)
    timings["compile_load_attach"] = time.perf_counter() - t1
    if directory is not None:
        t2 = time.perf_counter()
        extracted = bytecode_cache.extract(bpf)
        if extracted is not None:
            bytecode_cache.save(directory, key, extracted)
        timings["cache_write"] = time.perf_counter() - t2
    return LoadedProgram(bpf, "compiled", timings)
