"""Field mapping: which keys carry what, and the normalisation that makes every source agree."""

from __future__ import annotations

import pytest

from liubai.collector.logfields import FieldMap, map_log, normalise_time

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def mapped(fields: dict, **kw):  # type: ignore[no-untyped-def,type-arg]
    return map_log(fields, source="t", location="t:1", fieldmap=kw.pop("fieldmap", FieldMap()), **kw)


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        (1767323045, "2026-01-02T03:04:05.000000Z"),
        ("1767323045", "2026-01-02T03:04:05.000000Z"),
        (1767323045.25, "2026-01-02T03:04:05.250000Z"),
        (1767323045123, "2026-01-02T03:04:05.123000Z"),
        (1767323045123456, "2026-01-02T03:04:05.123456Z"),
        ("1767323045123456789", "2026-01-02T03:04:05.123456Z"),
        ("2026-01-02T11:04:05.5+08:00", "2026-01-02T03:04:05.500000Z"),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05.000000Z"),
        ("2026-01-02 03:04:05", "2026-01-02T03:04:05.000000Z"),
    ],
)
def test_times_from_every_common_shape(value: object, iso: str) -> None:
    assert normalise_time(value) == iso


@pytest.mark.parametrize("value", ["yesterday", "", True, None, [1]])
def test_non_times_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        normalise_time(value)


@pytest.mark.parametrize("key", ["trace_id", "traceId", "TraceID"])
def test_trace_keys(key: str) -> None:
    m = mapped({key: TRACE.upper(), "message": "m"})
    assert m.record.trace_id == TRACE and not m.rejected
    assert key not in m.record.attributes


def test_traceparent_gives_its_trace_id_and_a_bad_one_is_rejected_but_the_line_lands() -> None:
    good = mapped({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
    assert good.record.trace_id == TRACE
    bad = mapped({"traceparent": "00-nope", "message": "still here"})
    assert bad.record.trace_id is None and bad.record.message == "still here"
    assert [(r.location, r.reason, r.raw) for r in bad.rejected] == [
        ("t:1", "malformed traceparent in 'traceparent'", "00-nope")
    ]


def test_all_zero_trace_id_is_not_a_trace() -> None:
    m = mapped({"trace_id": "0" * 32})
    assert m.record.trace_id is None and len(m.rejected) == 1


def test_audit_keys_in_order_and_unparsed_here() -> None:
    m = mapped({"audit_id": "git:" + "b" * 40, "x-gitops-audit-id": "git-sha256:" + "a" * 64})
    assert m.record.audit_id == "git-sha256:" + "a" * 64
    assert m.record.attributes == {"audit_id": "git:" + "b" * 40}
    assert mapped({"audit_id": "garbage"}).record.audit_id == "garbage"  # the join rejects it, with the line


def test_level_service_message_defaults_and_attributes() -> None:
    m = mapped(
        {
            "severity": "warn",
            "app": "api",
            "msg": "hi",
            "n": 3,
            "ok": True,
            "ctx": {"b": 1, "a": [1]},
            "__topic__": "x",
        },
        defaults={"service": "from-resource"},
    )
    r = m.record
    assert (r.level, r.service, r.message) == ("WARN", "api", "hi")
    assert r.attributes == {"n": "3", "ok": "true", "ctx": '{"a":[1],"b":1}'}
    assert mapped({"message": "x"}, defaults={"service": "svc"}).record.service == "svc"


def test_bad_time_falls_back_to_the_source_time_and_is_reported() -> None:
    m = mapped({"time": "soon", "message": "x"}, fallback_time="2026-01-01T00:00:00.000000Z")
    assert m.record.time == "2026-01-01T00:00:00.000000Z"
    assert [r.reason for r in m.rejected] == ["unparseable time in 'time'"]


def test_content_ids_ignore_key_order_and_source_metadata_but_not_content() -> None:
    a = mapped({"message": "x", "time": 1767323045, "k": "v"}).record.record_id
    b = mapped(
        {"k": "v", "__source__": "10.0.0.1", "time": "2026-01-02T03:04:05Z", "message": "x"}
    ).record.record_id
    c = mapped({"message": "y", "time": 1767323045, "k": "v"}).record.record_id
    assert a == b != c
    assert mapped({"message": "x"}, record_id="0:abc:1").record.record_id == "0:abc:1"


def test_field_map_overrides_and_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fm = FieldMap.from_mapping({"trace": "tid", "service": ["svc", "app"]})
    assert fm.trace == ("tid",) and fm.service == ("svc", "app") and fm.message == FieldMap().message
    with pytest.raises(ValueError, match="unknown field-map entries"):
        FieldMap.from_mapping({"traec": "x"})
    bad = tmp_path / "f.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        FieldMap.from_file(bad)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("trace: [a, b\n", "not valid YAML at line 2, column 1"),
        ("trace: !!python/object:os.system x\n", "not valid YAML at line 1, column 8"),
        ("? [a]\n: b\n", "found unhashable key"),
        ("trace: 5\n", "entry 'trace' must be a key or a list of keys, not int"),
        ("trace: null\n", "entry 'trace' must be a key or a list of keys, not null"),
        ("trace: {a: 1}\n", "entry 'trace' must be a key or a list of keys, not dict"),
        ("trace: [tid, 5]\n", "entry 'trace' must be a key or a list of keys"),
        ("5: tid\n", "unknown field-map entries ['5']"),
    ],
)
def test_a_bad_field_map_file_is_one_line_naming_the_file_and_entry(tmp_path, text: str, says: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "fm.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as failed:
        FieldMap.from_file(path)
    message = str(failed.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message, message


def test_a_bad_field_map_is_one_cli_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    (tmp_path / "fm.yaml").write_text("trace: [a, b\n")
    (tmp_path / "a.jsonl").write_text('{"message": "x"}\n')
    run = subprocess.run(
        [sys.executable, "-m", "liubai.api.cli.main", "--store", f"sqlite:///{tmp_path / 'x.db'}", "ingest", "logs",
         str(tmp_path / "a.jsonl"), "--field-map", str(tmp_path / "fm.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 1
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "field map" in lines[0] and "not valid YAML at line 2" in lines[0], run.stderr
