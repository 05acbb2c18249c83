"""Programs run by the dynamic loader itself (``/lib64/ld-linux-x86-64.so.2 /bin/true``).

The kernel execs ld.so; ld.so then opens the program named on its command line and maps it executable.
The syscall tracepoints never show that mapping, so the program is known as EXECUTED only when both
hold: the running image is a dynamic loader, and its command line names the program unambiguously
(every ld.so option before it is one we know the arity of, and not ``--list``/``--verify``, which load
without running). The collector then takes the loader's first successful open, if it is of exactly that
name, as the program's image. Anything else (an unknown option, a first open of another file) records
nothing: unknown, never guessed.
"""

from __future__ import annotations

import re

VIA = "ld.so"
_LOADER = re.compile(r"^ld(-linux(-[\w-]+)?|-musl-[\w-]+)?\.so(\.\d+)*$")
_WITH_VALUE = frozenset(
    {
        "--library-path",
        "--inhibit-rpath",
        "--audit",
        "--preload",
        "--argv0",
        "--glibc-hwcaps-prefix",
        "--glibc-hwcaps-mask",
    }
)
_FLAGS = frozenset({"--inhibit-cache"})


def is_loader(binary: str | None) -> bool:
    """Whether an exec'd image is a dynamic loader, by its file name (ld-linux-x86-64.so.2, ld.so...)."""
    return binary is not None and bool(_LOADER.match(binary.rsplit("/", 1)[-1]))


def program_of(argv: tuple[str, ...]) -> str | None:
    """The program a loader's command line asks it to run, as written, or None when not certain."""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in _WITH_VALUE:
            i += 2
        elif arg in _FLAGS:
            i += 1
        elif arg.startswith("-"):
            return None  # --list, --verify, --help, or an option this reading does not know
        else:
            return arg if "/" in arg else None  # a bare name is searched for: not certain which file
    return None
