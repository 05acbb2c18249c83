"""Checking a provenance's subjects against files on disk: a subject that names a FIFO or a device is
reported as unusable at once (opening a FIFO blocks, reading /dev/zero never ends)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from liubai.lineage.filehash import NotRegularFile, sha256_of_regular_file
from liubai.lineage.subject_files import check_subject_files


def _statement(names: list[str], cwd: Path) -> dict[str, object]:
    return {
        "subject": [{"name": n, "digest": {"sha256": "0" * 64}} for n in names],
        "predicate": {"buildDefinition": {"externalParameters": {"cwd": str(cwd)}}},
    }


def test_fifo_and_device_subjects_are_unusable_not_hashed(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")  # no writer: an open for reading without O_NONBLOCK would block forever
    (tmp_path / "out").write_bytes(b"built\n")
    statement = _statement([str(tmp_path / "pipe"), "/dev/zero", str(tmp_path / "out")], tmp_path)
    statement["subject"][2]["digest"]["sha256"] = hashlib.sha256(b"built\n").hexdigest()  # type: ignore[index]
    (tmp_path / "dev").mkdir()
    # a name outside the run's cwd is looked for under DIR
    (tmp_path / "dev" / "zero").symlink_to("/dev/zero")
    got = check_subject_files(statement, tmp_path)
    assert [name for name, _ in got.matches] == [str(tmp_path / "out")]
    unusable = dict(got.unusable)
    assert set(unusable) == {str(tmp_path / "pipe"), "/dev/zero"}
    assert all("not a regular file" in why for why in unusable.values())


def test_sha256_of_regular_file_refuses_what_is_not_one(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 70_000)
    assert sha256_of_regular_file(tmp_path / "f") == hashlib.sha256(b"x" * 70_000).hexdigest()
    with pytest.raises(NotRegularFile):
        sha256_of_regular_file(tmp_path)
    with pytest.raises(FileNotFoundError):
        sha256_of_regular_file(tmp_path / "absent")
