"""DSSE signing and verification of audit bundles and provenance statements.

Envelopes, keys and signatures are securesystemslib's, so anyone can check a liubai envelope with
securesystemslib (or any DSSE implementation) and a public key, without liubai. Keys are Ed25519 or ECDSA P-256:
the private key is a PKCS#8 PEM file, the public key a securesystemslib key JSON (PEM is accepted too).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.export import check_bundle
from liubai.lineage.slsa import check_statement

__all__ = [
    "BUNDLE_PAYLOAD_TYPE",
    "INTOTO_PAYLOAD_TYPE",
    "KeyFileError",
    "KeyType",
    "VerifyReport",
    "generate_keypair",
    "load_public_key",
    "load_signer",
    "sign",
    "verify_document",
    "write_keypair",
]

BUNDLE_PAYLOAD_TYPE = "application/vnd.liubai.audit-bundle+json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class KeyType(StrEnum):
    ED25519 = "ed25519"
    ECDSA_P256 = "ecdsa-p256"


class KeyFileError(LiubaiError, ValueError):
    """A key file that cannot be used; the message names the file and the reason."""

    code = ErrorCode.BAD_INPUT


def generate_keypair(key_type: KeyType = KeyType.ED25519) -> tuple[bytes, dict[str, Any]]:
    """A new key pair: PKCS#8 PEM private key bytes and the public key as securesystemslib JSON."""
    signer = CryptoSigner.generate_ed25519() if key_type is KeyType.ED25519 else CryptoSigner.generate_ecdsa()
    public = {"keyid": signer.public_key.keyid, **signer.public_key.to_dict()}
    return signer.private_bytes, public


def write_keypair(
    prefix: Path, key_type: KeyType = KeyType.ED25519, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write ``<prefix>.key`` (mode 0600) and ``<prefix>.pub``; refuses to overwrite unless told to."""
    priv_path, pub_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    if not overwrite:
        for p in (priv_path, pub_path):
            if p.exists():
                raise KeyFileError(f"{p} already exists (pass --force to replace it)")
    private, public = generate_keypair(key_type)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(priv_path, flags, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    os.chmod(priv_path, 0o600)
    pub_path.write_text(json.dumps(public, indent=2, sort_keys=True) + "\n")
    return priv_path, pub_path


def load_signer(path: Path, password: bytes | None = None) -> CryptoSigner:
    """A signer from a PEM private key (Ed25519 or ECDSA P-256)."""
    try:
        key = load_pem_private_key(path.read_bytes(), password)
        return CryptoSigner(key)
    except OSError as exc:
        raise KeyFileError(f"cannot read private key {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise KeyFileError(
            f"{path} is not a usable PEM private key (Ed25519 or ECDSA P-256): {exc}"
        ) from None


def load_public_key(path: Path) -> SSlibKey:
    """A public key from securesystemslib key JSON (as ``keygen`` writes) or a PEM SubjectPublicKeyInfo."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read public key {path}: {exc.strerror or exc}") from None
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return SSlibKey.from_crypto(load_pem_public_key(data))
        doc = json.loads(data)
        keyid = doc.pop("keyid", None)
        key = SSlibKey.from_dict(keyid or "", dict(doc))
        if not keyid:
            key = SSlibKey.from_crypto(key._crypto_key(), None, key.scheme)
        return key
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise KeyFileError(f"{path} is not a public key (securesystemslib JSON or PEM): {exc}") from None


def sign(payload: bytes, payload_type: str, signer: CryptoSigner) -> dict[str, Any]:
    """A DSSE envelope (as a JSON-ready dict) over ``payload``."""
    envelope = Envelope(payload, payload_type, {})
    envelope.sign(signer)
    return envelope.to_dict()


@dataclass(slots=True)
class VerifyReport:
    """What ``verify`` established: each check with its outcome, and whether the file was signed at all."""

    kind: str = "unknown"
    signed: bool = False
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    statement: dict[str, Any] | None = None  # a well-formed in-toto statement, for checks on its subjects

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append((name, ok, detail))

    @property
    def failures(self) -> list[str]:
        return [f"{name}: {detail}" for name, ok, detail in self.checks if not ok]

    @property
    def ok(self) -> bool:
        """Every check passed. An unsigned file can be intact, but it is never reported as verified."""
        return self.signed and not self.failures


def _is_envelope(doc: Any) -> bool:
    return isinstance(doc, dict) and {"payload", "payloadType", "signatures"} <= set(doc)


def _envelope_shape(env_doc: dict[str, Any]) -> str | None:
    """What is wrong with an envelope's field types, if anything. securesystemslib assumes them and fails
    with AttributeError or TypeError on a ``null`` payload or a numeric key id, so they are checked first."""
    if not isinstance(env_doc["payload"], str):
        return f"payload is {_json_type(env_doc['payload'])}, want a base64 string"
    if not isinstance(env_doc["payloadType"], str):
        return f"payloadType is {_json_type(env_doc['payloadType'])}, want a string"
    signatures = env_doc["signatures"]
    if not isinstance(signatures, list):
        return f"signatures is {_json_type(signatures)}, want a list"
    for i, sig in enumerate(signatures):
        if not (
            isinstance(sig, dict) and isinstance(sig.get("keyid"), str) and isinstance(sig.get("sig"), str)
        ):
            return f"signature #{i} is not an object with string keyid and sig"
    return None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _verify_signature(report: VerifyReport, env_doc: dict[str, Any], keys: list[SSlibKey]) -> Envelope | None:
    problem = _envelope_shape(env_doc)
    if problem is not None:
        report.add("envelope", False, f"malformed DSSE envelope: {problem}")
        return None
    try:
        envelope = Envelope.from_dict(copy.deepcopy(env_doc))
    except (KeyError, ValueError, TypeError, AttributeError, binascii.Error) as exc:
        report.add("envelope", False, f"malformed DSSE envelope: {exc}")
        return None
    signed_by = sorted(envelope.signatures)
    if not signed_by:
        report.add("signature", False, "the envelope carries no signature")
    elif not keys:
        report.add(
            "signature",
            False,
            f"not checked: signed by key {', '.join(signed_by)}; give --key PUB to check it",
        )
    elif not {k.keyid for k in keys} & set(signed_by):
        given = ", ".join(k.keyid for k in keys)
        report.add("signature", False, f"signed by key {', '.join(signed_by)}, not by the given key {given}")
    else:
        try:
            accepted = envelope.verify(list(keys), 1)
            key = next(iter(accepted.values()))
            report.add(
                "signature", True, f"valid DSSE signature by {key.keytype}/{key.scheme} key {key.keyid}"
            )
        except VerificationError:
            report.add(
                "signature",
                False,
                f"INVALID: the signature by key {', '.join(signed_by)} does not match the payload "
                "(the envelope was altered after signing)",
            )
    return envelope


MAX_NESTING = 100


def _deeper_than(doc: Any, limit: int) -> bool:
    """Whether JSON ``doc`` nests lists and objects more than ``limit`` deep (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in value)
    return False


def verify_document(data: bytes, keys: list[SSlibKey] | None = None) -> VerifyReport:
    """Check a signed envelope or a bare bundle/statement: signature, digest and internal consistency."""
    report = VerifyReport()
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        report.add("format", False, f"not JSON: {exc}")
        return report
    if _deeper_than(doc, MAX_NESTING):  # checking walks the document recursively (copies, canonical JSON)
        report.add("format", False, f"nested deeper than {MAX_NESTING} levels; no bundle or envelope is")
        return report
    payload_type: str | None = None
    if _is_envelope(doc):
        report.signed = True
        envelope = _verify_signature(report, doc, list(keys or []))
        if envelope is None:
            return report
        payload_type = envelope.payload_type
        try:
            doc = json.loads(envelope.payload)
        except (ValueError, RecursionError) as exc:
            report.add("payload", False, f"payload is not JSON: {exc}")
            return report
        if _deeper_than(doc, MAX_NESTING):
            report.add(
                "payload", False, f"nested deeper than {MAX_NESTING} levels; no bundle or statement is"
            )
            return report
    elif keys:
        report.add("signature", False, "the file is not a DSSE envelope, so no signature can be checked")

    if payload_type == INTOTO_PAYLOAD_TYPE or (isinstance(doc, dict) and "_type" in doc):
        report.kind = "in-toto statement"
        problems = check_statement(doc)
        report.add(
            "statement", not problems, "; ".join(problems) or "in-toto Statement v1 with SLSA Provenance v1"
        )
        if not problems:
            report.statement = doc
            n = len(doc["subject"])
            report.add("subject", True, f"{n} subject{'s' if n != 1 else ''} with sha256 digests")
    else:
        report.kind = "audit bundle"
        check = check_bundle(doc)
        if check.digest is not None:
            digest_problems = [p for p in check.problems if p.startswith("digest mismatch")]
            report.add(
                "digest",
                not digest_problems,
                digest_problems[0]
                if digest_problems
                else f"sha256 {check.digest}"
                + (" (over the canonical form bundles had before RFC 8785)" if check.legacy_form else ""),
            )
        other = [p for p in check.problems if not p.startswith("digest mismatch")]
        report.add(
            "consistency",
            not other,
            "; ".join(other)
            if other
            else f"{check.nodes} nodes, {check.edges} edges, every edge's ends present",
        )
    if payload_type not in (None, BUNDLE_PAYLOAD_TYPE, INTOTO_PAYLOAD_TYPE):
        report.add("payload type", False, f"unknown payloadType {payload_type!r}")
    return report


def envelope_payload(env_doc: dict[str, Any]) -> bytes:
    """The raw payload of an envelope dict (for tools that want to look inside without verifying)."""
    return base64.b64decode(env_doc["payload"])
