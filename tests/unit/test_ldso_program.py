"""Which program a dynamic loader's command line runs: certain, or nothing."""

from __future__ import annotations

from liubai.collector.ldso import is_loader, program_of


def test_loaders_by_name() -> None:
    for name in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/ld-musl-x86_64.so.1"):
        assert is_loader(name), name
    for name in ("/usr/bin/ld", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/ldd", None):
        assert not is_loader(name), name


def test_program_after_known_options_only() -> None:
    ld = "/lib64/ld-linux-x86-64.so.2"
    assert program_of((ld, "/bin/true", "--list")) == "/bin/true"  # options after it are the program's
    assert program_of((ld, "--library-path", "/opt/lib", "--inhibit-cache", "./a.out", "x")) == "./a.out"
    assert program_of((ld, "--argv0", "/bin/true", "/usr/bin/false")) == "/usr/bin/false"
    assert program_of((ld, "--list", "/bin/true")) is None  # loads without running
    assert program_of((ld, "--verify", "/bin/true")) is None
    assert program_of((ld, "--some-new-option", "/bin/true")) is None  # arity unknown: not certain
    assert program_of((ld, "true")) is None  # a bare name is searched for
    assert program_of((ld,)) is None
