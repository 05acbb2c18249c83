"""Credentials of a traced process: the uid rules of set*uid(2) and the escalation/drop verdict.

An escalation is a rise of the effective identity (an effective uid the process could not take before)
or of its effective capabilities; a drop only a fall of them. ``setresuid(65534, 0, 0)`` by root keeps
euid 0: neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from liubai.ebpf.events import CR_CAPSET, CR_SETFSUID, CR_SETRESUID, CR_SETREUID, CR_SETUID, CredEvent

__all__ = ["CAP_SETUID", "Creds", "apply_cred_event", "compare", "effective_file_caps", "exec_creds"]

CAP_SETUID = 1 << 7
_KEEP = 0xFFFFFFFF  # -1 as u32: "leave unchanged"
_CAP_EFFECTIVE = 0x1  # VFS_CAP_FLAGS_EFFECTIVE in security.capability's magic_etc


@dataclass(frozen=True, slots=True)
class Creds:
    """Real/effective/saved/fs uid and effective capabilities; None where not known."""

    ruid: int | None = None
    euid: int | None = None
    suid: int | None = None
    fsuid: int | None = None
    cap_eff: int | None = None


def apply_cred_event(old: Creds, e: CredEvent) -> Creds:
    """The credentials after ``e``: /proc's reading where user space had one, else the syscall's rules
    (capabilities then unknown, except for capset which sets them)."""
    if e.ruid is not None and e.euid is not None:
        return Creds(e.ruid, e.euid, e.suid, e.fsuid, e.cap_eff)
    r, eu, s = old.ruid, old.euid, old.suid
    if e.op == CR_SETRESUID:
        r = r if e.a == _KEEP else e.a
        eu = eu if e.b == _KEEP else e.b
        s = s if e.c == _KEEP else e.c
    elif e.op == CR_SETREUID:
        new_r = r if e.a == _KEEP else e.a
        new_e = eu if e.b == _KEEP else e.b
        if e.a != _KEEP or (e.b != _KEEP and new_e != old.ruid):
            s = new_e
        r, eu = new_r, new_e
    elif e.op == CR_SETUID:
        privileged = old.cap_eff is not None and bool(old.cap_eff & CAP_SETUID)
        if privileged:
            r = eu = s = e.a
        elif old.cap_eff is None:
            r = s = None  # cannot tell which rule applied
            eu = e.a
        else:
            eu = e.a
    elif e.op == CR_SETFSUID:
        return Creds(r, eu, s, e.a, old.cap_eff)
    elif e.op == CR_CAPSET:
        return Creds(r, eu, s, old.fsuid, e.cap_arg)
    return Creds(r, eu, s, eu, _cap_after_setuid(old, eu))


def _cap_after_setuid(old: Creds, euid: int | None) -> int | None:
    """capabilities(7): an effective uid going from 0 to nonzero clears the effective set; one that
    stays on the same side of 0 leaves it; a rise to 0 gives the permitted set (not known here)."""
    if euid is None or old.euid is None:
        return None
    if old.euid == 0 and euid != 0:
        return 0
    if (old.euid == 0) == (euid == 0):
        return old.cap_eff
    return None


def compare(before: Creds, after: Creds) -> tuple[bool, bool]:
    """(escalation, drop) going from ``before`` to ``after``."""
    rise = fall = False
    if after.euid is not None and before.euid is not None and after.euid != before.euid:
        reachable = {u for u in (before.ruid, before.euid, before.suid) if u is not None}
        if before.euid == 0:
            fall = True  # root giving up its identity, whatever it takes instead
        elif after.euid == 0 or after.euid not in reachable:
            rise = True
    if after.cap_eff is not None and before.cap_eff is not None:
        if after.cap_eff & ~before.cap_eff:
            rise = True
        elif before.cap_eff & ~after.cap_eff:
            fall = True
    return rise, fall and not rise


def exec_creds(old: Creds, setuid_owner: int | None, file_caps: int) -> Creds:
    """The credentials after an exec of an image with set-user-ID owner ``setuid_owner`` (None: not
    set-user-ID) and effective file capabilities ``file_caps`` (execve(2), capabilities(7)).

    Effective and saved uid become the owner's (or stay); the real uid stays. Capabilities: a root
    result keeps root's set when it was root before (else the bounding set, unknown here); otherwise
    the file's effective set, or none when the old set was empty (ambient capabilities are not
    modelled, so a non-empty old set gives unknown)."""
    euid = setuid_owner if setuid_owner is not None else old.euid
    cap: int | None
    if euid == 0:
        cap = old.cap_eff if old.euid == 0 else None
    elif file_caps:
        cap = file_caps if old.cap_eff == 0 else None
    else:
        cap = 0 if old.cap_eff == 0 else None
    return Creds(old.ruid, euid, euid, euid, cap)


def effective_file_caps(xattr: bytes | None) -> int:
    """The capabilities a ``security.capability`` value makes effective at exec (its permitted set when
    the effective flag is on), 0 for none or an unreadable value."""
    if xattr is None or len(xattr) < 12:
        return 0
    magic = int.from_bytes(xattr[0:4], "little")
    if not magic & _CAP_EFFECTIVE:
        return 0
    permitted = int.from_bytes(xattr[4:8], "little")
    if len(xattr) >= 20 and magic >> 24 >= 2:
        permitted |= int.from_bytes(xattr[12:16], "little") << 32
    return permitted
