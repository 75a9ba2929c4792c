"""Evidence bundles (JR/T 0196 §7.6): a node's audit entries exported so that a party, an
auditor or a regulator can check them offline, without the node or its database.

A bundle is a directory, or a ``.zip`` of the same two files:

``entries.jsonl``
    One entry per line in canonical JSON (:meth:`AuditEntry.to_json`), in seq order.
``manifest.json``
    ``format``, ``node``, ``created`` (µs since the epoch), ``filter`` (``job``, ``since``),
    ``complete`` (every entry from ``first_seq`` to the log's head is present: no job filter),
    ``first_seq``, ``last_seq``, ``count``, ``actions`` (count per action), ``head`` (the
    whole log's ``seq`` and ``hash`` when exported), ``entries_sha256`` (of the file's bytes),
    and, when exported with the node's identity key: ``signed_head`` (a
    :class:`~privfin.audit.chain.SignedHead` of ``head``), ``certificate`` (PEM) and
    ``signature`` (base64 DER ECDSA P-256 over the canonical manifest with ``signature``
    null).

:func:`verify_bundle` checks every entry's hash, the links between consecutive entries, the
counts, the digest, the signatures and (for a complete bundle) that the last entry is the
signed head. Who holds a signed bundle can later check the node's log against it
(``AuditLog.verify(heads=[bundle_head(path)])``): a log rewritten or truncated before that head
no longer matches, even with every hash recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from privfin.audit.chain import (
    Action,
    AuditEntry,
    ChainWalker,
    Failure,
    SignedHead,
    canonical,
    genesis_hash,
    sign_bytes,
    sign_head,
    verify_bytes,
)
from privfin.errors import ConfigError

if TYPE_CHECKING:
    from privfin.audit.log import AuditLog

__all__ = [
    "BundleReport",
    "bundle_evidence",
    "bundle_head",
    "export_bundle",
    "verify_bundle",
]

BUNDLE_FORMAT = "privfin-audit-bundle/1"
ENTRIES = "entries.jsonl"
MANIFEST = "manifest.json"
MAX_MANIFEST = 1024 * 1024
MAX_LINE = 64 * 1024  # an entry is far smaller: evidence is at most 16 KiB
_PROGRESS_EVERY = 2000

MANIFEST_KEYS = {
    "format",
    "node",
    "created",
    "filter",
    "complete",
    "first_seq",
    "last_seq",
    "count",
    "actions",
    "head",
    "entries_sha256",
    "signed_head",
    "certificate",
    "signature",
}


def _cert_fingerprint(pem: bytes) -> str:
    """``sha256:<hex>`` of the certificate's DER (as ``privfin init`` prints and peers pin)."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise _Bad(f"not a PEM certificate ({exc})") from None
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()


def _cert_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError as exc:
        raise ValueError(f"not a PEM certificate ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the certificate's key is not an ECDSA key")
    return key


def _prepare_target(path: Path) -> None:
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; refusing to write a bundle through it")
    if path.suffix == ".zip":
        if path.exists():
            raise ConfigError(f"{path} exists already; choose a new bundle path")
        path.parent.mkdir(parents=True, exist_ok=True)
    elif path.exists():
        if not path.is_dir() or any(path.iterdir()):
            raise ConfigError(f"{path} exists and is not an empty directory")
    else:
        path.mkdir(parents=True, mode=0o700)


def _private_open(path: Path) -> IO[bytes]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(path, flags, 0o600), "wb")


def export_bundle(
    log: AuditLog,
    path: str | Path,
    *,
    job: str | None = None,
    since: int | datetime | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    certificate: bytes | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the entries of ``log`` (all, one ``job``'s, or from a seq or aware datetime
    ``since``) as an evidence bundle at ``path`` (a new or empty directory, or a new file
    ending in ``.zip``) and return the path.

    With ``key`` (the node's identity key) and ``certificate`` (its PEM certificate, which goes
    into the manifest so the bundle can be checked standalone) the manifest and the log's head are
    signed. The entries are checked while they are written: a log that does not verify is not
    exported (run ``privfin audit verify`` to see why). The export only reads the log.

    Raises
    ------
    ConfigError
        The target exists, the log does not verify, or the certificate is not ``key``'s.
    """
    target = Path(path)
    if key is not None and certificate is None:
        raise ConfigError(
            "a signed bundle carries the node's certificate (peers pin it): pass certificate"
        )
    if key is not None and certificate is not None:
        try:
            matches = _cert_key(certificate).public_numbers() == key.public_key().public_numbers()
        except ValueError as exc:
            raise ConfigError(f"bundle certificate: {exc}") from None
        if not matches:
            raise ConfigError("the certificate given for the bundle is not the signing key's")
    head_seq, head_hash = log.head()
    complete = job is None
    total = log.count(job=job, since=since, until=head_seq)
    created = not target.exists()
    _prepare_target(target)
    tmp_zip = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        if target.suffix == ".zip":
            with zipfile.ZipFile(tmp_zip, "x", compression=zipfile.ZIP_DEFLATED) as zf:
                with zf.open(ENTRIES, "w") as fh:
                    stats = _write_entries(log, fh, job, since, head_seq, complete, total, progress)
                manifest = _manifest(
                    log, job, since, complete, stats, head_seq, head_hash, key, certificate
                )
                zf.writestr(MANIFEST, _manifest_bytes(manifest))
            os.chmod(tmp_zip, 0o600)
            os.replace(tmp_zip, target)
        else:
            with _private_open(target / ENTRIES) as fh:
                stats = _write_entries(log, fh, job, since, head_seq, complete, total, progress)
                fh.flush()
                os.fsync(fh.fileno())
            manifest = _manifest(
                log, job, since, complete, stats, head_seq, head_hash, key, certificate
            )
            with _private_open(target / MANIFEST) as fh:
                fh.write(_manifest_bytes(manifest))
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        tmp_zip.unlink(missing_ok=True)
        if target.suffix != ".zip":  # remove what this export wrote, nothing else
            for name in (ENTRIES, MANIFEST):
                (target / name).unlink(missing_ok=True)
            if created:
                with contextlib.suppress(OSError):
                    target.rmdir()
        raise
    return target


@dataclass
class _Stats:
    count: int
    first: int | None
    last: int | None
    last_hash: str | None
    actions: Counter[str]
    digest: str


def _write_entries(
    log: AuditLog,
    fh: IO[bytes],
    job: str | None,
    since: int | datetime | None,
    head_seq: int,
    complete: bool,
    total: int,
    progress: Callable[[int, int], None] | None,
) -> _Stats:
    sha = hashlib.sha256()
    actions: Counter[str] = Counter()
    walker: ChainWalker | None = None
    first: int | None = None
    for entry in log.entries(job=job, since=since, until=head_seq):
        if walker is None:
            first = entry.seq
            walker = ChainWalker(
                log.node,
                start=entry.seq,
                start_prev=genesis_hash(log.node) if entry.seq == 1 else None,
                contiguous=complete,
            )
        failure = walker.feed(entry)
        if failure is not None:
            raise ConfigError(
                f"the audit log does not verify (seq {failure.seq}: {failure.reason}); "
                "run privfin audit verify"
            )
        line = entry.to_json().encode() + b"\n"
        sha.update(line)
        fh.write(line)
        actions[entry.action] += 1
        if progress is not None and walker.count % _PROGRESS_EVERY == 0:
            progress(walker.count, total)
    count = walker.count if walker else 0
    if progress is not None:
        progress(count, total)
    return _Stats(
        count=count,
        first=first,
        last=walker.last_seq if walker and count else None,
        last_hash=walker.last_hash if walker else None,
        actions=actions,
        digest=sha.hexdigest(),
    )


def _manifest(
    log: AuditLog,
    job: str | None,
    since: int | datetime | None,
    complete: bool,
    stats: _Stats,
    head_seq: int,
    head_hash: str,
    key: ec.EllipticCurvePrivateKey | None,
    certificate: bytes | None,
) -> dict[str, Any]:
    if complete and stats.count and (stats.last, stats.last_hash) != (head_seq, head_hash):
        raise ConfigError(
            "the audit log's head row does not match its last entry; run privfin audit verify"
        )
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "node": log.node,
        "created": round(time.time() * 1_000_000),
        "filter": {
            "job": job,
            "since": since.isoformat() if isinstance(since, datetime) else since,
        },
        "complete": complete,
        "first_seq": stats.first,
        "last_seq": stats.last,
        "count": stats.count,
        "actions": dict(sorted(stats.actions.items())),
        "head": {"seq": head_seq, "hash": head_hash},
        "entries_sha256": stats.digest,
        "signed_head": None,
        "certificate": None,
        "signature": None,
    }
    if key is not None:
        manifest["signed_head"] = sign_head(key, log.node, head_seq, head_hash).to_dict()
        manifest["certificate"] = certificate.decode() if certificate else None
        manifest["signature"] = sign_bytes(key, canonical(manifest))
    return manifest


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"


# -- reading


@dataclass(frozen=True)
class BundleReport:
    """What :func:`verify_bundle` found. ``signer`` is the fingerprint of the certificate the
    manifest is signed with (compare it with the one pinned for ``node``) or ``None`` for an
    unsigned bundle; ``first_bad_seq`` and ``reason`` say what is wrong when not ``ok``
    (``first_bad_seq`` is ``None`` for a problem not tied to one entry)."""

    ok: bool
    node: str | None
    entries: int
    first_seq: int | None
    last_seq: int | None
    complete: bool
    signer: str | None
    first_bad_seq: int | None = None
    reason: str | None = None

    def __str__(self) -> str:
        if not self.ok:
            where = f" at seq {self.first_bad_seq}" if self.first_bad_seq is not None else ""
            return f"FAILED{where}: {self.reason}"
        span = f"seq {self.first_seq}..{self.last_seq}" if self.entries else "no entries"
        kind = "complete" if self.complete else "filtered"
        signed = f"signed by {self.signer}" if self.signer else "UNSIGNED"
        return f"ok: node {self.node}, {self.entries} entries ({span}, {kind}), {signed}"


class _Bad(Exception):
    def __init__(self, reason: str, seq: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.seq = seq


@contextlib.contextmanager
def _open_bundle(path: Path) -> Iterator[tuple[bytes, Callable[[], IO[bytes]]]]:
    """The manifest's bytes and an opener of the entries file."""
    if path.is_dir():
        try:
            mpath = path / MANIFEST
            if mpath.stat().st_size > MAX_MANIFEST:
                raise _Bad("manifest.json is too large")
            manifest = mpath.read_bytes()
        except OSError as exc:
            raise _Bad(f"cannot read {MANIFEST}: {exc.strerror or exc}") from None

        def open_dir() -> IO[bytes]:
            try:
                return (path / ENTRIES).open("rb")
            except OSError as exc:
                raise _Bad(f"cannot read {ENTRIES}: {exc.strerror or exc}") from None

        yield manifest, open_dir
        return
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise _Bad(f"not a bundle directory or zip file ({exc})") from None
    with zf:
        names = set(zf.namelist())
        if not {MANIFEST, ENTRIES} <= names:
            raise _Bad(f"the zip file lacks {MANIFEST} or {ENTRIES}")
        if zf.getinfo(MANIFEST).file_size > MAX_MANIFEST:
            raise _Bad("manifest.json is too large")
        try:
            manifest = zf.read(MANIFEST)
        except (zipfile.BadZipFile, OSError) as exc:
            raise _Bad(f"cannot read {MANIFEST} ({exc})") from None

        def open_zip() -> IO[bytes]:
            try:
                return zf.open(ENTRIES)
            except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
                raise _Bad(f"cannot read {ENTRIES} ({exc})") from None

        yield manifest, open_zip


def _parse_manifest(raw: bytes) -> dict[str, Any]:
    try:
        m = json.loads(raw)
    except ValueError as exc:
        raise _Bad(f"manifest.json is not JSON ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != BUNDLE_FORMAT:
        raise _Bad(f"manifest.json is not a {BUNDLE_FORMAT} manifest")
    if set(m) != MANIFEST_KEYS:
        raise _Bad("manifest.json does not have the expected fields")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    ok = (
        isinstance(m["node"], str)
        and is_int(m["count"])
        and m["count"] >= 0
        and isinstance(m["complete"], bool)
        and all(v is None or is_int(v) for v in (m["first_seq"], m["last_seq"]))
        and isinstance(m["head"], dict)
        and is_int(m["head"].get("seq"))
        and isinstance(m["head"].get("hash"), str)
        and isinstance(m["entries_sha256"], str)
        and isinstance(m["actions"], dict)
        and isinstance(m["filter"], dict)
        and all(m[k] is None or isinstance(m[k], str) for k in ("certificate", "signature"))
    )
    if not ok:
        raise _Bad("manifest.json has fields of the wrong type")
    return m


def _check_signature(m: dict[str, Any], certificate: bytes | None) -> str | None:
    """The signer's certificate fingerprint (``None`` if unsigned and none was required)."""
    if m["signature"] is None:
        if certificate is not None:
            raise _Bad("the bundle is not signed")
        return None
    if m["certificate"] is None and certificate is None:
        raise _Bad("the bundle is signed but carries no certificate; pass the node's certificate")
    pem = m["certificate"].encode() if m["certificate"] is not None else certificate
    assert pem is not None
    if (
        certificate is not None
        and m["certificate"] is not None
        and _cert_fingerprint(certificate) != _cert_fingerprint(pem)
    ):
        raise _Bad("the bundle is signed with another certificate than the one given")
    try:
        key = _cert_key(pem)
    except ValueError as exc:
        raise _Bad(f"manifest certificate: {exc}") from None
    try:
        signed_bytes = canonical({**m, "signature": None})
    except ValueError:  # NaN or infinity: never written by an export
        raise _Bad("the manifest holds a value no export writes (manifest edited)") from None
    if not verify_bytes(key, m["signature"], signed_bytes):
        raise _Bad("the manifest's signature does not verify (manifest edited)")
    try:
        head = SignedHead.from_dict(m["signed_head"])
    except ValueError as exc:
        raise _Bad(f"manifest signed_head: {exc}") from None
    if (head.node, head.seq, head.hash) != (m["node"], m["head"]["seq"], m["head"]["hash"]):
        raise _Bad("the manifest's signed head is not its head")
    if not head.verify(key):
        raise _Bad("the signed head's signature does not verify")
    return _cert_fingerprint(pem)


def verify_bundle(
    path: str | Path,
    *,
    certificate: bytes | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BundleReport:
    """Check an evidence bundle offline (no database needed).

    With ``certificate`` (the node's PEM certificate, as pinned by its peers) the bundle must be
    signed with its key; without, a signed bundle is checked against the certificate it carries,
    whose fingerprint is reported (``signer``) for the reader to compare with the pinned one.
    Checkpoint entries are checked against the signer's key when there is one.

    An unsigned bundle proves only that it is internally consistent: whoever wrote it could have
    written any consistent bundle.

    Raises
    ------
    ConfigError
        No file or directory at ``path``.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no audit bundle at {p}")
    node: str | None = None
    signer: str | None = None
    m: dict[str, Any] = {}
    walker: ChainWalker | None = None
    try:
        with _open_bundle(p) as (raw_manifest, open_entries):
            m = _parse_manifest(raw_manifest)
            node = m["node"]
            signer = _check_signature(m, certificate)
            pem = certificate or (m["certificate"].encode() if m["certificate"] else None)
            keys = [_cert_key(pem)] if signer is not None and pem is not None else []
            heads = [SignedHead.from_dict(m["signed_head"])] if keys and m["complete"] else []
            first = m["first_seq"] if m["first_seq"] is not None else 1
            try:
                walker = ChainWalker(
                    m["node"],
                    start=first,
                    start_prev=genesis_hash(m["node"]) if first == 1 else None,
                    contiguous=m["complete"],
                    keys=keys,
                    heads=heads,
                )
            except ValueError as exc:
                raise _Bad(f"manifest: {exc}") from None
            sha = hashlib.sha256()
            actions: Counter[str] = Counter()
            with open_entries() as fh:
                _walk_lines(fh, walker, sha, actions, m["count"], progress)
            failure = walker.finish()
            if failure is not None:
                raise _Bad(failure.reason, failure.seq)
            _check_totals(m, walker, sha.hexdigest(), actions)
    except _Bad as bad:
        return BundleReport(
            ok=False,
            node=node,
            entries=walker.count if walker else 0,
            first_seq=m.get("first_seq"),
            last_seq=m.get("last_seq"),
            complete=bool(m.get("complete")),
            signer=signer,
            first_bad_seq=bad.seq,
            reason=bad.reason,
        )
    return BundleReport(
        ok=True,
        node=node,
        entries=walker.count,
        first_seq=m["first_seq"],
        last_seq=m["last_seq"],
        complete=m["complete"],
        signer=signer,
    )


def _walk_lines(
    fh: IO[bytes],
    walker: ChainWalker,
    sha: Any,
    actions: Counter[str],
    total: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    n = 0
    while True:
        try:
            line = fh.readline(MAX_LINE + 1)
        except (OSError, zipfile.BadZipFile) as exc:
            raise _Bad(f"cannot read {ENTRIES} ({exc})") from None
        if not line:
            break
        n += 1
        sha.update(line)
        nxt = walker.last_seq + 1
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            raise _Bad(f"line {n} of {ENTRIES} is too long or not terminated", nxt)
        try:
            entry = AuditEntry.from_json(line)
        except ValueError as exc:
            raise _Bad(f"line {n} of {ENTRIES}: {exc}", nxt) from None
        failure: Failure | None = walker.feed(entry)
        if failure is not None:
            raise _Bad(failure.reason, failure.seq)
        actions[entry.action] += 1
        if progress is not None and n % _PROGRESS_EVERY == 0:
            progress(n, total)
    if progress is not None:
        progress(n, total)


def _check_totals(
    m: dict[str, Any], walker: ChainWalker, digest: str, actions: Counter[str]
) -> None:
    count = walker.count
    if count != m["count"]:
        seq = walker.last_seq + 1 if count < m["count"] and m["complete"] else None
        raise _Bad(
            f"{count} entries, the manifest says {m['count']} (entries removed or added)", seq
        )
    last = walker.last_seq if count else None
    first = m["first_seq"] if count else None
    if (first, last) != (m["first_seq"], m["last_seq"]):
        raise _Bad("the entries' seq range is not the manifest's")
    if digest != m["entries_sha256"]:
        raise _Bad(f"{ENTRIES} does not match the manifest's digest")
    if dict(actions) != m["actions"]:
        raise _Bad("the count of entries per action is not the manifest's")
    head = m["head"]
    if count and (last or 0) > head["seq"]:
        raise _Bad(f"the bundle has entries after the node's head (seq {head['seq']})", last)
    if m["complete"] and count and (last, walker.last_hash) != (head["seq"], head["hash"]):
        raise _Bad(
            f"the bundle ends at seq {last} but the node's head was seq {head['seq']} "
            "(tail truncated or head edited)",
            (last or 0) + 1 if head["seq"] > (last or 0) else None,
        )
    unknown = [a for a in actions if a not in Action.__members__]
    if unknown:  # already refused per entry; kept as a guard for the totals
        raise _Bad(f"unknown actions {unknown}")


def bundle_evidence(
    path: str | Path, *, certificate: bytes | None = None
) -> tuple[SignedHead, dict[int, str]]:
    """The signed head of a signed bundle and the hashes of its entries by seq, after checking
    the whole bundle: hand them to ``AuditLog.verify(heads=[head], known=hashes)`` to check
    the node's log against evidence kept elsewhere (a rewrite is then located at the first
    entry whose hash differs from the bundle's).

    Raises
    ------
    ConfigError
        The bundle does not verify or is not signed.
    """
    report = verify_bundle(path, certificate=certificate)
    if not report.ok:
        raise ConfigError(f"audit bundle {path} does not verify: {report}")
    hashes: dict[int, str] = {}
    with _open_bundle(Path(path)) as (raw, open_entries):
        m = _parse_manifest(raw)
        if m["signed_head"] is None:
            raise ConfigError(f"audit bundle {path} is not signed; it carries no signed head")
        with open_entries() as fh:
            for line in fh:
                entry = AuditEntry.from_json(line)
                hashes[entry.seq] = entry.hash
    return SignedHead.from_dict(m["signed_head"]), hashes


def bundle_head(path: str | Path, *, certificate: bytes | None = None) -> SignedHead:
    """The signed head of a signed bundle, after checking the whole bundle (see
    :func:`bundle_evidence`).

    Raises
    ------
    ConfigError
        The bundle does not verify or is not signed.
    """
    return bundle_evidence(path, certificate=certificate)[0]
