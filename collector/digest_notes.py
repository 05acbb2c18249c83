"""Why a written file gets no digest, where its key says so: a key that is not a path starts with NUL and
names the reason (``marker_note``), and the notes for events seen only after a file was hashed."""

from __future__ import annotations

__all__ = [
    "DOUBTED",
    "LATE_OPEN",
    "LATE_RENAME",
    "NOTES",
    "REPLACED",
    "UNRESOLVED",
    "UNSURE",
    "marker_note",
]

UNRESOLVED = "\0unresolved"  # the key of a written file whose path could not be found at run time
REPLACED = "\0replaced"  # the key of a written file still open when a rename gave its name to another
DOUBTED = "\0doubted"  # the key of a written file named while the kernel dropped events
UNSURE = "\0unsure"  # the key of a written file whose descriptor was freed before its link was read back
NOTES = {
    UNSURE: "its descriptor was closed or replaced before its path was read back, so the path read may "
    "be another file's",
    UNRESOLVED: "its path could not be resolved while the run went on",
    REPLACED: "a rename gave its name to another file before it could be hashed",
    DOUBTED: "the kernel dropped events while it was named, so its path is not sure",
}
_LATE = "seen only after it was hashed, {} (so the digest may be of that)"
LATE_OPEN = _LATE.format("a write open of it came")
LATE_RENAME = _LATE.format("a rename gave its name to another file")


def marker_note(key: str) -> str | None:
    """Why the file of ``key`` is not hashed, for a key that is not a path (it starts with NUL)."""
    return NOTES[key.split(":", 1)[0]] if key.startswith("\0") else None
