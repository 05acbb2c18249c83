"""Compare the subjects of a provenance statement with files on disk: does what I hold match what the run
produced? Names are the run's absolute paths; DIR stands for the run's working directory (a subject under
it is looked for at the same place under DIR) and for the root of anything else."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liubai.lineage.filehash import sha256_of_regular_file

__all__ = ["SubjectFiles", "check_subject_files"]


@dataclass(slots=True)
class SubjectFiles:
    """Per outcome, (subject name, file looked at) pairs; ``unusable``: subjects that name no file here."""

    matches: list[tuple[str, Path]] = field(default_factory=list)
    mismatches: list[tuple[str, Path]] = field(default_factory=list)
    missing: list[tuple[str, Path]] = field(default_factory=list)
    unusable: list[tuple[str, str]] = field(default_factory=list)  # (name, why)


def _local_path(name: str, cwd: str | None, directory: Path) -> Path | None:
    if not name.startswith("/") or ".." in name.split("/"):
        return None
    name = posixpath.normpath(name)
    if cwd and cwd.startswith("/"):
        base = posixpath.normpath(cwd)
        if name.startswith(base.rstrip("/") + "/"):
            return directory / name[len(base.rstrip("/")) + 1 :]
    return directory / name.lstrip("/")


def check_subject_files(statement: dict[str, Any], directory: Path) -> SubjectFiles:
    """Hash the file each subject names under ``directory`` and compare it with the subject's sha256."""
    out = SubjectFiles()
    pred = statement.get("predicate")
    params = pred.get("buildDefinition", {}).get("externalParameters", {}) if isinstance(pred, dict) else {}
    cwd = params.get("cwd") if isinstance(params, dict) and isinstance(params.get("cwd"), str) else None
    for subject in statement.get("subject") or []:
        name = subject.get("name") if isinstance(subject, dict) else None
        digest = subject.get("digest", {}).get("sha256") if isinstance(subject, dict) else None
        if not isinstance(name, str) or not isinstance(digest, str):
            out.unusable.append((str(name), "no name or no sha256 digest"))
            continue
        local = _local_path(name, cwd, directory)
        if local is None:
            out.unusable.append((name, "not an absolute path without '..'"))
            continue
        try:
            actual = sha256_of_regular_file(local)
        except FileNotFoundError:
            out.missing.append((name, local))
            continue
        except OSError as exc:
            out.unusable.append((name, f"{local}: {exc.strerror or exc}"))
            continue
        (out.matches if actual == digest.lower() else out.mismatches).append((name, local))
    return out
