"""``liubai export``, ``liubai verify`` and ``liubai keygen``: audit evidence that outlives the database."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

from liubai.api.cli.common import (
    console,
    emit_json,
    err_console,
    fail,
    fail_error,
    printable,
    say,
    state,
    store_name,
    store_session,
)
from liubai.lineage.export import (
    FORMATS,
    MAX_DEPTH,
    MAX_LIMIT,
    ExportError,
    ExportMeta,
    Selection,
    Selector,
    parse_time_bound,
    render,
    render_csv_edges,
    render_csv_nodes,
    select,
)
from liubai.lineage.model import Direction
from liubai.lineage.signing import (
    BUNDLE_PAYLOAD_TYPE,
    INTOTO_PAYLOAD_TYPE,
    KeyFileError,
    KeyType,
    VerifyReport,
    load_public_key,
    load_signer,
    sign,
    verify_document,
    write_keypair,
)
from liubai.lineage.slsa import REPORT_NAME, SlsaError, build_provenance, run_id_of, statement_bytes
from liubai.lineage.store.base import LineageStore
from liubai.lineage.subject_files import check_subject_files

__all__ = ["register"]

ALL_FORMATS = (*FORMATS, "slsa")


def _selection(
    audit_id: str | None,
    commit: str | None,
    trace: str | None,
    run: str | None,
    node: str | None,
    all_: bool,
    depth: int,
    direction: Direction,
    since: str | None,
    until: str | None,
    limit: int,
) -> Selection:
    given: list[tuple[Selector, str | None]] = [
        (sel, val)
        for sel, val in (
            (Selector.AUDIT_ID, audit_id),
            (Selector.COMMIT, commit),
            (Selector.TRACE, trace),
            (Selector.RUN, run),
            (Selector.NODE, node),
        )
        if val is not None
    ]
    if all_:
        given.append((Selector.ALL, None))
    if len(given) != 1:
        raise fail("name exactly one of --audit-id, --commit, --trace, --run, --node or --all")
    sel, value = given[0]
    try:
        return Selection(
            sel,
            value,
            depth=depth,
            direction=direction,
            since=parse_time_bound(since, "--since") if since else None,
            until=parse_time_bound(until, "--until") if until else None,
            limit=limit,
        )
    except ExportError as exc:
        raise fail_error(exc) from None


@contextmanager
def _progress(total: int | None, enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("[bold]exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("facts"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        yield bar


def _check_output(output: Path, as_dir: bool) -> None:
    """Refuse an output path that can never be written before the store is read, in one line.

    Missing parent directories are fine: they are created, as for every export.
    """
    try:
        if as_dir and output.exists() and not output.is_dir():
            raise fail(
                f"-o {output}: exists and is not a directory (csv writes nodes.csv and edges.csv into one)"
            )
        if not as_dir and output.is_dir():
            raise fail(f"-o {output}: is a directory; name the file to write")
        blocked = next((p for p in output.parents if p.exists() and not p.is_dir()), None)
    except OSError as exc:  # a parent that may not be searched
        raise _unwritable(output, exc) from None
    if blocked is not None:
        raise fail(f"-o {output}: {blocked} is a file, not a directory")


def _unwritable(path: Path, exc: OSError) -> typer.Exit:
    """A write that failed anyway (permissions, a full disk, a race) as one line naming the path."""
    return fail(f"cannot write {path}: {exc.strerror or exc}")


@contextmanager
def _atomic(path: Path | None) -> Iterator[BinaryIO]:
    """Write to a temp file beside ``path`` and move it in place at the end: no half export looks finished."""
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise _unwritable(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an export is an ordinary file
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _unwritable(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(chunks: Iterable[bytes], path: Path | None) -> None:
    with _atomic(path) as fh:
        for chunk in chunks:
            fh.write(chunk)


def export_command(
    ctx: typer.Context,
    audit_id: Annotated[
        str | None, typer.Option("--audit-id", help="Start at this audit id (git-sha256:<hex>|trace:<id>).")
    ] = None,
    commit: Annotated[
        str | None, typer.Option("--commit", help="Start at this commit (full sha or a unique prefix).")
    ] = None,
    trace: Annotated[str | None, typer.Option("--trace", help="Start at this trace id.")] = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Start at this pipeline run (run:<host>:<pid>:<start_ns>).")
    ] = None,
    node: Annotated[str | None, typer.Option("--node", help="Start at any node id (<kind>:<key>).")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Export the whole store (streamed, bounded memory).")
    ] = False,
    depth: Annotated[
        int, typer.Option("--depth", min=0, max=MAX_DEPTH, help="Hops to walk from the start node.")
    ] = 3,
    direction: Annotated[
        Direction, typer.Option("--direction", help="Walk downstream, upstream or both.")
    ] = Direction.BOTH,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Keep facts seen at or after this ISO time (e.g. 2026-01-31)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Keep facts seen at or before this ISO time.")
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            min=1,
            max=MAX_LIMIT,
            help="Most nodes a walk may return (the bundle says if it was cut).",
        ),
    ] = 100_000,
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(ALL_FORMATS)}.")] = "json",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File to write (default stdout); for csv a directory or a .zip file."
        ),
    ] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign",
            help="Wrap json/slsa output in a DSSE envelope signed with this PEM key (holds the bundle in memory).",
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")
    ] = True,
) -> None:
    """Export a slice of the lineage graph as an audit bundle, JSON lines, CSV, GraphML, DOT or SLSA provenance.

    Example: liubai export --commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 --depth 4 --format json --sign release.key -o audit.json
    """
    if fmt not in ALL_FORMATS:
        raise fail(f"unknown --format {fmt!r}; use one of: {', '.join(ALL_FORMATS)}")
    if sign_key is not None and fmt not in ("json", "slsa"):
        raise fail(f"--sign wraps json bundles and slsa statements, not {fmt}")
    if fmt == "csv" and output is None:
        raise fail("csv writes two files: give -o DIR (nodes.csv, edges.csv) or -o FILE.zip")
    selection = _selection(audit_id, commit, trace, run, node, all_, depth, direction, since, until, limit)
    try:
        signer = load_signer(sign_key) if sign_key is not None else None
    except KeyFileError as exc:
        raise fail_error(exc) from None
    if output is not None and str(output) == "-":
        output = None
    if output is not None:
        _check_output(output, as_dir=fmt == "csv" and output.suffix.lower() != ".zip")

    with store_session(ctx, create=False) as store:
        if fmt == "slsa":
            _export_slsa(store, selection, output, signer)
            return
        try:
            source = select(store, selection)
        except ExportError as exc:
            raise fail_error(exc, store=store_name(ctx)) from None
        meta = ExportMeta.of(selection, source, state(ctx).store_url)
        written = 0
        with _progress(source.total(), progress) as bar:
            task = bar.add_task("export", total=source.total()) if bar is not None else None

            def tick(n: int) -> None:
                nonlocal written
                written += n
                if bar is not None and task is not None:
                    bar.advance(task, n)

            if fmt == "csv" and output is not None and output.suffix.lower() != ".zip":
                try:
                    output.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise _unwritable(output, exc) from None
                _write(render_csv_nodes(source, tick), output / "nodes.csv")
                _write(render_csv_edges(source, tick), output / "edges.csv")
                _write(
                    [json.dumps({"query": meta.query, "store": meta.store}).encode() + b"\n"],
                    output / "query.json",
                )
            elif signer is not None:
                payload = b"".join(render(source, fmt, meta, tick))
                envelope = sign(payload, BUNDLE_PAYLOAD_TYPE, signer)
                _write([json.dumps(envelope).encode() + b"\n"], output)
            else:
                _write(render(source, fmt, meta, tick), output)
    if source.truncated:
        err_console.print(
            Text.assemble(
                ("warning:", "yellow"),
                f" the walk hit --limit {limit}; the export is cut (the bundle says so)",
            )
        )
    where = str(output) if output is not None else "stdout"
    signed = f", signed by key {signer.public_key.keyid[:16]}" if signer is not None else ""
    say(f"exported {written} facts as {fmt} to {where}{signed}", err=True)


def _export_slsa(
    store: LineageStore, selection: Selection, output: Path | None, signer: CryptoSigner | None
) -> None:
    """Provenance for one run; small enough to build whole, so it is signed in memory."""
    if selection.selector not in (Selector.RUN, Selector.NODE):
        raise fail("slsa provenance is made for one pipeline run: use --run RUN_ID")
    value = (selection.value or "").strip()
    run_id = value if selection.selector is Selector.NODE else run_id_of(value)
    try:
        statement = build_provenance(store, run_id)
    except SlsaError as exc:
        raise fail_error(exc) from None
    payload = statement_bytes(statement)
    if signer is not None:
        payload = json.dumps(sign(payload, INTOTO_PAYLOAD_TYPE, signer)).encode()
    _write([payload + b"\n"], output)
    where = str(output) if output is not None else "stdout"
    pred = statement["predicate"]
    say(
        f"wrote SLSA provenance for {run_id}: {len(statement['subject'])} subjects, "
        f"{len(pred['buildDefinition']['resolvedDependencies'])} dependencies, to {where}",
        err=True,
    )
    undigested = [
        b for b in pred["runDetails"]["byproducts"] if "digest" not in b and b.get("name") != REPORT_NAME
    ]
    if undigested:
        say(
            f"liubai: {len(undigested)} written file(s) had no digest taken while the run went on, so they are "
            "not subjects (listed in byproducts with the reason), e.g. "
            f"{printable(undigested[0]['name'])}: {printable(str(undigested[0]['annotations'].get('liubai.hash_note')))}",
            err=True,
        )
    source = next(
        (d for d in pred["buildDefinition"]["resolvedDependencies"] if d.get("name") == "source"), None
    )
    if source is not None and "uri" not in source:
        say(
            "liubai: no repository URI is known for the run's commit: the source carries its digest only",
            err=True,
        )


def verify_command(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A bundle, statement or DSSE envelope.")
    ],
    key: Annotated[
        list[Path] | None, typer.Option("--key", "-k", help="Public key to check the signature (repeatable).")
    ] = None,
    allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned", help="Exit 0 for an intact unsigned bundle (still reported as unsigned)."
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object: file, kind, signed, verified, checks (name, ok, detail), "
            "failures; the exit status is the same as without --json.",
        ),
    ] = False,
    check_files: Annotated[
        Path | None,
        typer.Option(
            "--check-files",
            exists=True,
            file_okay=False,
            help="Compare a statement's subjects with the files here (DIR stands for the run's working "
            "directory; a file outside it is looked for under DIR as a root).",
        ),
    ] = None,
) -> None:
    """Verify an exported bundle or statement: DSSE signature, sha256 digest and that every edge's ends are present.

    Exit status: 0 verified, 1 any check failed (a subject file that differs, with --check-files),
    2 intact but unsigned.

    Example: liubai verify provenance.json --key release.pub --check-files ./workspace
    """
    try:
        keys = [load_public_key(k) for k in key or []]
    except KeyFileError as exc:
        raise fail_error(exc) from None
    report = verify_document(file.read_bytes(), keys)
    if check_files is not None:
        _check_subject_files(report, check_files)
    if as_json:
        emit_json(
            {
                "file": str(file),
                "kind": report.kind,
                "signed": report.signed,
                "verified": report.ok,
                "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in report.checks],
                "failures": report.failures,
            }
        )
        if report.failures:
            raise fail(f"{file} did not verify: {report.failures[0]}")
        if not report.signed and not allow_unsigned:
            raise fail(f"{file} is unsigned: intact, but not verified", code=2)
        return
    say(f"{file}: {report.kind}")
    for name, ok, detail in report.checks:
        mark = ("ok  ", "green") if ok else ("FAIL", "red")
        line = Text.assemble("  ", mark, f" {printable(name)}: {printable(detail)}")
        console.print(line, highlight=False, soft_wrap=True)
    if report.failures:
        raise fail(f"{file} did not verify: {report.failures[0]}")
    if not report.signed:
        console.print(
            Text.assemble(
                "  ",
                ("UNSIGNED", "yellow"),
                " nothing proves who made this file; its digest only shows it is whole",
            )
        )
        if not allow_unsigned:
            raise fail(
                f"{file} is unsigned: intact, but not verified (sign with `liubai export --sign KEY`)",
                code=2,
            )
        return
    console.print(Text("verified", style="green"), highlight=False, soft_wrap=True)


def _check_subject_files(report: VerifyReport, directory: Path) -> None:
    """Add the ``files`` check: each subject's digest against the file under ``directory``."""
    if report.statement is None:
        report.add("files", False, "--check-files needs a well-formed provenance statement")
        return
    found = check_subject_files(report.statement, directory)
    for name, local in found.mismatches:
        report.add("file", False, f"MISMATCH {name}: {local} differs from the subject's sha256")
    report.add(
        "files",
        not found.mismatches,
        f"{len(found.matches)} match, {len(found.mismatches)} mismatch, {len(found.missing)} missing, "
        f"{len(found.unusable)} not checked (under {directory})"
        + "".join(f"; missing {name} (no {local})" for name, local in found.missing)
        + "".join(f"; not checked {name}: {why}" for name, why in found.unusable),
    )


def keygen_command(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Writes <output>.key and <output>.pub.")
    ] = Path("liubai-signing"),
    key_type: Annotated[KeyType, typer.Option("--type", "-t", help="Key algorithm.")] = KeyType.ED25519,
    force: Annotated[bool, typer.Option("--force", help="Replace existing key files.")] = False,
) -> None:
    """Make a signing key pair: a PEM private key (mode 0600) and a public key JSON for `liubai verify --key`.

    Example: liubai keygen --type ecdsa-p256 -o release
    """
    try:
        priv, pub = write_keypair(output, key_type, overwrite=force)
    except KeyFileError as exc:
        raise fail_error(exc) from None
    except OSError as exc:
        raise fail(str(exc)) from None
    keyid = json.loads(pub.read_text())["keyid"]
    say(f"wrote {priv} (private, keep it secret) and {pub} (public); key id {keyid}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
    app.command("verify")(verify_command)
    app.command("keygen")(keygen_command)
