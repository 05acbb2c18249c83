"""Log files: JSON lines (gzip, stdin), OTLP/JSON exports, and the same graph as the same lines via SLS."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from liubai.collector.logfile import ingest_files, read_jsonl, read_otlp
from liubai.collector.sls import SlsCollector, SlsCredentials, make_client
from liubai.lineage.model import EdgeKind, RejectedRecord, trace_node_id
from liubai.lineage.records import LogRecord
from tests.logs.conftest import KEY_ID, KEY_SECRET, LOGSTORE, PROJECT
from tests.logs.dataset import (
    EPOCH,
    OTLP_SPAN_ID,
    make_dataset,
    put_into_sls,
    to_otlp,
    write_jsonl,
    write_otlp,
)
from tests.logs.lineage_check import assert_exact_lineage, graph_of, log_ids_by_message, out_edges

CLI = [sys.executable, "-c", "from liubai.api.cli.main import main; main()"]
GARBAGE = ["{not json", "[1, 2]", '"just a string"', "\x00\x01binary"]


def test_gzip_jsonl_with_garbage_lines_lands_the_good_lines(commits, tmp_path, new_store) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(2_000, commits)
    path = write_jsonl(ds.lines, tmp_path / "app.jsonl.gz", garbage=GARBAGE)
    store = new_store("jsonl")
    stats = ingest_files(store, [str(path)], "jsonl", batch_size=300)

    assert stats.records == len(ds.lines)
    assert stats.rejected == ds.expected_rejects + len(GARBAGE)
    assert_exact_lineage(store, ds.lines)
    rejects = store.rejected(first=10_000).records
    assert len(rejects) == stats.rejected
    garbage_at = {
        r.location: r for r in rejects if r.location in {f"{path}:{len(ds.lines) + i}" for i in (1, 2, 3, 4)}
    }
    assert sorted(garbage_at) == sorted(f"{path}:{len(ds.lines) + i}" for i in (1, 2, 3, 4))
    assert "not valid JSON" in garbage_at[f"{path}:{len(ds.lines) + 1}"].reason
    assert garbage_at[f"{path}:{len(ds.lines) + 1}"].raw == "{not json"
    assert "got list" in garbage_at[f"{path}:{len(ds.lines) + 2}"].reason
    # A bad audit id is a reject located at its line, and its line still landed.
    bad = next(ln for ln in ds.lines if ln.kind == "bad_audit")
    assert any(r.location == f"{path}:{bad.n + 1}" and "malformed audit id" in r.reason for r in rejects)

    # Re-reading the same file (content-hash ids) changes nothing.
    before = graph_of(store)
    ingest_files(store, [str(path)], "jsonl")
    assert graph_of(store)[0] == before[0] and graph_of(store)[1] == before[1]


def test_otlp_jsonl_and_sls_give_the_same_graph(commits, tmp_path, new_store, sls_server) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(1_000, commits)
    jsonl = write_jsonl(ds.lines, tmp_path / "app.jsonl")
    otlp = write_otlp(ds.lines, tmp_path / "app.otlp.json")
    put_into_sls(sls_server, LOGSTORE, ds.lines)

    from_jsonl, from_otlp = new_store("jsonl"), new_store("otlp")
    ingest_files(from_jsonl, [str(jsonl)], "jsonl", source="app")
    ingest_files(from_otlp, [str(otlp)], "otlp", source="app")
    client = make_client(
        sls_server.endpoint, SlsCredentials(access_key_id=KEY_ID, access_key_secret=KEY_SECRET)
    )
    via_query, via_shards = new_store("query"), new_store("shards")
    base = int(EPOCH.timestamp())
    SlsCollector(client, PROJECT, LOGSTORE, via_query, source="app").backfill("*", base, base + 3600)
    SlsCollector(client, PROJECT, LOGSTORE, via_shards, source="app", id_mode="content").consume()

    otlp_as_lines = new_store("otlp-as-jsonl")  # one OTLP document per line is also valid JSON lines
    ingest_files(otlp_as_lines, [str(otlp)], "jsonl", source="app")

    expected = graph_of(from_jsonl)
    assert len(expected[0]) > len(ds.lines) and len(expected[1]) > 0
    assert graph_of(otlp_as_lines) == graph_of(from_otlp)
    # OTLP also names the emitting resource and the span a line was written in; the rest is the same graph
    otlp_only = _otlp_context(graph_of(from_otlp))
    assert otlp_only[0] == {"Resource", "Span"} and otlp_only[1] == {"EMITTED", "IN_SPAN"}
    assert _without_otlp_context(graph_of(from_otlp)) == expected
    assert graph_of(via_query) == expected
    assert graph_of(via_shards) == expected
    for store in (from_jsonl, from_otlp, via_query, via_shards):
        assert store.counts()["rejected"] == ds.expected_rejects
    assert_exact_lineage(from_otlp, ds.lines, otlp_span=OTLP_SPAN_ID)


_Graph = tuple[set[tuple[str, str, str, bool]], set[tuple[str, str, str, str]]]
_OTLP_NODES, _OTLP_EDGES = {"Resource", "Span"}, {"EMITTED", "IN_SPAN"}


def _otlp_context(graph: _Graph) -> tuple[set[str], set[str]]:
    """The node and edge kinds only an OTLP source gives here: what emitted a line, the span it was in."""
    nodes, edges = graph
    return {n[1] for n in nodes} & _OTLP_NODES, {e[1] for e in edges} & _OTLP_EDGES


def _without_otlp_context(graph: _Graph) -> _Graph:
    nodes, edges = graph

    def plain(props: str) -> str:
        return json.dumps({k: v for k, v in json.loads(props).items() if k != "span_id"}, sort_keys=True)

    return (
        {(i, kind, plain(props), ph) for i, kind, props, ph in nodes if kind not in _OTLP_NODES},
        {e for e in edges if e[1] not in _OTLP_EDGES},
    )


def test_otlp_single_document_base64_trace_and_severity_number(tmp_path) -> None:  # type: ignore[no-untyped-def]
    trace = "5b8efff798038103d269b633813fc60c"
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": "1767323045123456789",
                                "severityNumber": 17,
                                "body": {"stringValue": "charge failed"},
                                "traceId": "W47/95gDgQPSabYzgT/GDA==",
                                "attributes": [{"key": "amount", "value": {"doubleValue": 9.5}}],
                            },
                            {
                                "observedTimeUnixNano": "1767323046000000000",
                                "body": {"kvlistValue": {"values": []}},
                            },
                            "not a record",
                        ]
                    }
                ],
            }
        ]
    }
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc, indent=2))
    items = list(read_otlp(str(path), source="otel"))
    first, second, bad = items
    assert isinstance(first, LogRecord) and isinstance(second, LogRecord) and isinstance(bad, RejectedRecord)
    assert (first.trace_id, first.level, first.service, first.message) == (
        trace,
        "ERROR",
        "billing",
        "charge failed",
    )
    assert first.time == "2026-01-02T03:04:05.123456Z"
    assert first.attributes == {"amount": "9.5"}
    assert (
        second.time == "2026-01-02T03:04:06.000000Z"
        and second.service == "billing"
        and second.trace_id is None
    )
    assert bad.location == f"{path}:1#resourceLogs[0].scopeLogs[0].logRecords[2]"


def test_otlp_before_1_0_names_scope_logs_instrumentation_library_logs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    record = {"body": {"stringValue": "old exporter"}, "traceId": "4bf92f3577b34da6a3ce929d0e0e4736"}
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"resourceLogs": [
        {"scopeLogs": [], "instrumentationLibraryLogs": [{"logRecords": [record]}]},
        {"scopeLogs": None, "instrumentationLibraryLogs": [{"logRecords": [record, record]}]},
    ]}))  # fmt: skip
    items = list(read_otlp(str(path)))
    assert [type(i) for i in items] == [LogRecord] * 3 and {i.message for i in items} == {"old exporter"}


def test_not_an_otlp_file_is_one_reject(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "plain.jsonl"
    path.write_text('{"message": "hello"}\n')
    items = list(read_otlp(str(path)))
    assert len(items) == 1 and isinstance(items[0], RejectedRecord)
    assert "resourceLogs" in items[0].reason and items[0].location == f"{path}:1"


def test_a_pretty_printed_otlp_export_reads_as_one_without_format_otlp(commits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``jq .`` output or an export saved pretty-printed is one document over many lines, not JSON lines:
    the default reader gives the very items ``--format otlp`` gives, not a reject per line."""
    ds = make_dataset(300, commits)
    (doc,) = to_otlp(ds.lines, per_document=300)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    as_lines = list(read_jsonl(str(path), source="app"))
    assert as_lines == list(read_otlp(str(path), source="app"))
    assert sum(isinstance(i, LogRecord) for i in as_lines) == len(ds.lines)
    assert f"{path}:1#resourceLogs[0].scopeLogs[0].logRecords[0]" in {i.location for i in as_lines}


def test_a_pretty_printed_array_of_log_objects_is_read_object_by_object(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "dump.json"
    path.write_text(json.dumps([{"message": "one", "trace_id": "ab" * 16}, 5, {"message": "two"}], indent=1))
    items = list(read_jsonl(str(path)))
    assert [(type(i).__name__, i.location) for i in items] == [
        ("LogRecord", f"{path}:1#[0]"), ("RejectedRecord", f"{path}:1#[1]"), ("LogRecord", f"{path}:1#[2]"),
    ]  # fmt: skip
    assert [i.message for i in items if isinstance(i, LogRecord)] == ["one", "two"]
    assert "expected a JSON object, got int" in items[1].reason


def test_jq_output_of_a_log_stream_is_read_document_by_document(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``jq .`` over JSON lines prints one pretty document after another."""
    objects = [
        {"message": "one", "trace_id": "ab" * 16},
        {"message": "two"},
        {"message": "half \ud800 a pair"},
    ]
    path = tmp_path / "jq.json"
    path.write_text("".join(json.dumps(o, indent=2) + "\n" for o in objects))
    items = list(read_jsonl(str(path)))
    assert [i.message for i in items if isinstance(i, LogRecord)] == ["one", "two", "half \\ud800 a pair"]
    assert [i.location for i in items] == [f"{path}:1", f"{path}:5", f"{path}:8"]  # where each one starts
    assert items[0].trace_id == "ab" * 16


def test_a_file_that_only_opens_like_a_document_is_read_as_lines_and_loses_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A first line cut to ``{`` in a JSON-lines file: that line is one reject and every other line lands."""
    path = tmp_path / "cut.jsonl"
    path.write_text("{\n" + "".join(json.dumps({"message": f"m{i}"}) + "\n" for i in range(5)))
    items = list(read_jsonl(str(path)))
    assert isinstance(items[0], RejectedRecord) and items[0].location == f"{path}:1"
    assert items[0].reason.startswith("not valid JSON")
    assert [(i.message, i.location) for i in items[1:]] == [(f"m{i}", f"{path}:{i + 2}") for i in range(5)]


def test_cli_reads_gzip_from_stdin_and_reports(commits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(400, commits)
    data = gzip.compress(("oops\n" + "".join(json.dumps(ln.fields) + "\n" for ln in ds.lines)).encode())
    db = tmp_path / "cli.db"
    run = subprocess.run(
        [*CLI, "--store", f"sqlite:///{db}", "ingest", "logs", "-"],
        input=data, capture_output=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    out, err = run.stdout.decode(), run.stderr.decode()
    assert run.returncode == 0, err
    assert (
        f"ingested {len(ds.lines):,} log records from 1 file(s), {ds.expected_rejects + 1:,} rejected" in out
    )
    assert err.splitlines()[0].startswith("rejected stdin:1: not valid JSON")
    from liubai.lineage.store import open_store

    store = open_store(f"sqlite:///{db}")
    try:
        assert_exact_lineage(store, ds.lines)
        assert {
            n.props["source"] for page in store.iter_nodes() for n in page if n.id.startswith("log:")
        } == {"stdin"}
    finally:
        store.close()


def test_cli_missing_file_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = subprocess.run(
        [*CLI, "--store", f"sqlite:///{tmp_path / 'x.db'}", "ingest", "logs", str(tmp_path / "nope.jsonl")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"error: no such log file: {tmp_path / 'nope.jsonl'}"]


def test_cli_shows_control_characters_of_a_rejected_line_as_escapes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """File and store names are untrusted text too: an escape sequence in them must not reach the terminal,
    nor may a name that looks like console markup lose its brackets."""
    path = tmp_path / "a\x1b[2Jb.jsonl"
    path.write_text("{not json\n")
    store_dir = tmp_path / "[bold]s\x1b[2J"
    store_dir.mkdir()
    run = subprocess.run(
        [*CLI, "--store", f"sqlite:///{store_dir / 'x.db'}", "ingest", "logs", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0 and "\x1b" not in run.stderr + run.stdout
    assert f"rejected {tmp_path}/a\\x1b[2Jb.jsonl:1: not valid JSON" in run.stderr
    assert f"into sqlite:///{tmp_path}/[bold]s\\x1b[2J/x.db" in run.stdout.replace("\n", "")


def test_a_file_name_that_is_not_utf8_lands_as_escaped_text(tmp_path, new_store) -> None:  # type: ignore[no-untyped-def]
    name = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.jsonl")  # as argv hands it over
    with open(name, "w") as fh:
        fh.write('{"message": "hello"}\n{not json\n')
    store = new_store("names")
    stats = ingest_files(store, [name])
    assert (stats.records, stats.rejected) == (1, 1)
    (bad,) = store.rejected().records
    assert (bad.source, bad.location) == ("file:caf\\xe9.jsonl", f"{tmp_path}/caf\\xe9.jsonl:2")


def test_field_map_file_renames_keys(tmp_path, new_store) -> None:  # type: ignore[no-untyped-def]
    trace = "0af7651916cd43dd8448eb211c80319c"
    path = tmp_path / "custom.jsonl"
    path.write_text(
        json.dumps({"tid": trace, "text": "custom", "trace_id": "ignored-here", "sev": "warn"}) + "\n"
    )
    fm_file = tmp_path / "fields.yaml"
    fm_file.write_text("trace: [tid]\nmessage: text\nlevel: [sev]\n")
    from liubai.collector.logfields import FieldMap

    store = new_store("custom")
    ingest_files(store, [str(path)], fieldmap=FieldMap.from_file(fm_file))
    (rec,) = [n for page in store.iter_nodes() for n in page if n.id.startswith("log:")]
    assert (rec.props["message"], rec.props["level"], rec.props["trace_id"]) == ("custom", "WARN", trace)
    assert rec.props["attributes"] == {"trace_id": "ignored-here"}
    assert out_edges(store)[rec.id] == {(EdgeKind.IN_TRACE, trace_node_id(trace))}


def test_truncated_gzip_keeps_the_lines_before_the_damage(commits, tmp_path, new_store) -> None:  # type: ignore[no-untyped-def]
    ds = make_dataset(3_000, commits)
    whole = write_jsonl(ds.lines, tmp_path / "whole.jsonl.gz").read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    store = new_store("cut")
    stats = ingest_files(store, [str(cut)], batch_size=500)
    landed = store.counts()["LogEvent"]
    assert 0 < landed == stats.records < len(ds.lines)
    assert_exact_lineage(store, ds.lines[:landed])
    (damage,) = [r for r in store.rejected(first=10_000).records if r.reason.startswith("cannot read:")]
    assert damage.location == f"{cut}:{landed + 1}"  # where reading stopped


def test_corrupt_gzip_keeps_the_lines_before_the_damage_and_reads_the_next_file(
    commits, tmp_path, new_store
) -> None:  # type: ignore[no-untyped-def]
    """Damage inside a gzip stream (not a cut, nor a bad checksum) is zlib's error, not gzip's: still one
    reject, after every line before it."""
    ds = make_dataset(3_000, commits)
    whole = write_jsonl(ds.lines[:2_000], tmp_path / "whole.jsonl.gz").read_bytes()
    bad_member = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 16  # deflate block type 3: invalid
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(whole + bad_member)  # gzip reads member after member
    after = write_jsonl(ds.lines[2_000:], tmp_path / "after.jsonl")
    store = new_store("broken")
    stats = ingest_files(store, [str(broken), str(after)], batch_size=500)
    assert stats.files == 2 and stats.records == len(ds.lines)
    assert_exact_lineage(store, ds.lines)
    (damage,) = [r for r in store.rejected(first=10_000).records if r.reason.startswith("cannot read:")]
    assert "invalid block type" in damage.reason and damage.location == f"{broken}:2001"  # where it stopped


@pytest.mark.parametrize("parallel", [False, True], ids=["in-process", "reader-process"])
def test_lone_surrogate_escapes_land_as_their_text_with_the_lines_around_them(
    tmp_path, new_store, parallel
) -> None:  # type: ignore[no-untyped-def]
    """JSON may escape half a UTF-16 pair (``\\ud800``), which is no character: no store can hold it. The
    line lands with the escape kept as text; a whole pair is the character it encodes."""
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    path = tmp_path / "odd.jsonl"
    path.write_text(
        '{"message": "before"}\n'
        f'{{"message": "half \\ud800 a pair", "trace_id": "{trace}", "\\udfff": "key"}}\n'
        '{"message": "pair \\ud83d\\ude00", "trace_id": "\\ud800"}\n'
        '{"message": "after"}\n'
    )
    store = new_store("odd")
    stats = ingest_files(store, [str(path)], parallel=parallel)
    assert (stats.records, stats.rejected) == (4, 0)
    by_message = log_ids_by_message(store)
    assert {"before", "after", "half \\ud800 a pair", "pair \U0001f600"} == set(by_message)
    half = store.get(by_message["half \\ud800 a pair"][0])
    assert half is not None and half.props["attributes"] == {"\\udfff": "key"}
    assert out_edges(store)[half.id] == {(EdgeKind.IN_TRACE, trace_node_id(trace))}
    pair = by_message["pair \U0001f600"][0]
    assert out_edges(store)[pair] == {(EdgeKind.IN_TRACE, trace_node_id("\\ud800"))}
