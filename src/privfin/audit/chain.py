"""The audit chain's format: actions, entries, their canonical encoding and hash, signed heads,
and the walk that checks a sequence of entries.

Everything here is pure (no database, no files), so a bundle can be checked offline with the
very code that checks the node's own log.

Canonical encoding
------------------
An entry's *record* is the JSON object with exactly the keys ``seq, ts, node, actor, action,
job, step, dataset, party, evidence, prev_hash``; ``ts`` is an integer (microseconds since the
Unix epoch, UTC), ``evidence`` a JSON object, absent fields ``null``. It is encoded with sorted
keys, no insignificant white space, ASCII only (``\\uXXXX`` escapes) and no NaN or infinity
(:func:`canonical`). ``hash = SHA-256("privfin-audit/1\\n" || canonical(record))`` in lower-case
hex. The first entry's ``prev_hash`` is :func:`genesis_hash` of the node's name, so a chain
cannot be passed off as another node's.

A *checkpoint* entry (action ``checkpoint``) additionally carries an ECDSA P-256 / SHA-256
signature (DER, base64) over the head statement ``canonical({"type": "privfin-audit-head/1",
"node": node, "seq": seq, "hash": hash})`` of its own seq and hash. The signature is stored
next to the entry and is not part of the hash (it cannot be: it signs the hash).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "MAX_EVIDENCE_BYTES",
    "MAX_FIELD_LENGTH",
    "Action",
    "AuditEntry",
    "ChainWalker",
    "Failure",
    "SignedHead",
    "canonical",
    "digest",
    "entry_hash",
    "genesis_hash",
    "key_fingerprint",
    "normalise_evidence",
    "sign_head",
]

FORMAT = "privfin-audit/1"
HEAD_STATEMENT = "privfin-audit-head/1"
MAX_FIELD_LENGTH = 128
# Evidence is digests, signatures, counts and parameters: a few hundred bytes. The bound keeps
# a caller from putting data (rows, models) into the log by mistake.
MAX_EVIDENCE_BYTES = 16 * 1024

RECORD_KEYS = (
    "seq",
    "ts",
    "node",
    "actor",
    "action",
    "job",
    "step",
    "dataset",
    "party",
    "evidence",
    "prev_hash",
)


class Action(StrEnum):
    """What an audit entry records. The vocabulary is fixed: a new kind of event needs a new
    member here (and a line in docs/audit.md), so logs from every node can be read alike.

    ``party`` names the other party involved (the proposer, the approver, the sender of a
    refused message, the receiver of a result), ``actor`` who acted on this node (an operator,
    ``node``, ``scheduler``, ``policy`` for an automatic decision)."""

    node_started = "node_started"
    proposal_sent = "proposal_sent"
    proposal_received = "proposal_received"
    approval = "approval"
    rejection = "rejection"
    revocation = "revocation"
    validation_failed = "validation_failed"
    job_started = "job_started"
    job_finished = "job_finished"
    job_failed = "job_failed"
    job_cancelled = "job_cancelled"
    step_started = "step_started"
    step_done = "step_done"
    step_failed = "step_failed"
    data_access = "data_access"
    message_refused = "message_refused"
    result_delivered = "result_delivered"
    key_release = "key_release"
    dp_spend = "dp_spend"
    dataset_registered = "dataset_registered"
    dataset_changed = "dataset_changed"
    dataset_removed = "dataset_removed"
    policy_changed = "policy_changed"
    artifact_exported = "artifact_exported"
    artifact_imported = "artifact_imported"
    checkpoint = "checkpoint"


def canonical(obj: Any) -> bytes:
    """The canonical JSON encoding of ``obj`` (sorted keys, compact, ASCII, no NaN)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def digest(data: bytes | str) -> str:
    """``sha256:<hex>`` of ``data`` (UTF-8 for a string): how evidence names a spec, a file, a
    message or a dataset version without holding it."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def genesis_hash(node: str) -> str:
    """The ``prev_hash`` of a node's first entry."""
    return hashlib.sha256(f"{FORMAT} genesis\n{node}".encode()).hexdigest()


def _check_json(value: Any, path: str, depth: int = 0) -> Any:
    if depth > 16:
        raise ValueError(f"audit evidence is nested too deeply at {path}")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit evidence {path} is not a finite number")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"audit evidence {path} has a key that is not a string")
            out[k] = _check_json(v, f"{path}.{k}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_check_json(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise ValueError(
        f"audit evidence {path} is a {type(value).__name__}; pass digests and numbers as JSON "
        "values (hex or base64 strings for bytes), never data"
    )


def normalise_evidence(evidence: Mapping[str, Any] | None) -> dict[str, Any]:
    """``evidence`` as plain JSON values (tuples become lists), checked: string keys, finite
    numbers, at most :data:`MAX_EVIDENCE_BYTES` canonically encoded.

    Raises
    ------
    ValueError
        If it holds anything else (bytes, objects, NaN) or is too large.
    """
    if evidence is None:
        return {}
    if not isinstance(evidence, Mapping):
        raise ValueError("audit evidence must be a mapping")
    out: dict[str, Any] = _check_json(evidence, "evidence")
    size = len(canonical(out))
    if size > MAX_EVIDENCE_BYTES:
        raise ValueError(
            f"audit evidence has {size} bytes encoded (at most {MAX_EVIDENCE_BYTES}); "
            "log digests of data, not the data"
        )
    return out


@dataclass(frozen=True)
class AuditEntry:
    """One entry of a node's audit log.

    ``ts`` is in microseconds since the Unix epoch (UTC); ``evidence`` holds digests,
    signatures, counts and parameters, never raw data. ``signature`` is set on ``checkpoint``
    entries only (base64 DER ECDSA over the head statement of this entry's seq and hash)."""

    seq: int
    ts: int
    node: str
    actor: str
    action: str
    job: str | None
    step: str | None
    dataset: str | None
    party: str | None
    evidence: dict[str, Any]
    prev_hash: str
    hash: str
    signature: str | None = None

    def record(self) -> dict[str, Any]:
        """The fields the hash covers."""
        return {k: getattr(self, k) for k in RECORD_KEYS}

    def computed_hash(self) -> str:
        """The hash this entry's record should have."""
        return entry_hash(self.record())

    def to_json(self) -> str:
        """One canonical JSON line (record, ``hash`` and ``signature``), as in a bundle."""
        return canonical({**self.record(), "hash": self.hash, "signature": self.signature}).decode()

    @classmethod
    def from_json(cls, line: str | bytes) -> AuditEntry:
        """Parse a bundle line; it must be in canonical form with exactly the expected keys.

        Raises
        ------
        ValueError
            If it is not.
        """
        raw = line.encode() if isinstance(line, str) else line
        raw = raw.rstrip(b"\n")
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"not JSON ({exc})") from None
        expected = {*RECORD_KEYS, "hash", "signature"}
        if not isinstance(obj, dict) or set(obj) != expected:
            raise ValueError("not an audit entry (wrong keys)")
        try:
            if canonical(obj) != raw:
                raise ValueError("not in canonical form")
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc) or "not in canonical form") from None
        ints = ("seq", "ts")
        strs = ("node", "actor", "action", "prev_hash", "hash")
        opts = ("job", "step", "dataset", "party", "signature")
        if any(not isinstance(obj[k], int) or isinstance(obj[k], bool) for k in ints):
            raise ValueError("seq and ts must be integers")
        if any(not isinstance(obj[k], str) for k in strs):
            raise ValueError("node, actor, action and hashes must be strings")
        if any(obj[k] is not None and not isinstance(obj[k], str) for k in opts):
            raise ValueError("job, step, dataset, party and signature must be strings or null")
        if not isinstance(obj["evidence"], dict):
            raise ValueError("evidence must be an object")
        return cls(**obj)


def entry_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a record's canonical encoding, domain-separated."""
    return hashlib.sha256(FORMAT.encode() + b"\n" + canonical(dict(record))).hexdigest()


def key_fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """``sha256:<hex>`` of a public key's SubjectPublicKeyInfo DER."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def head_statement(node: str, seq: int, hash_: str) -> bytes:
    """The bytes a head signature covers."""
    return canonical({"type": HEAD_STATEMENT, "node": node, "seq": seq, "hash": hash_})


@dataclass(frozen=True)
class SignedHead:
    """A node's statement "my audit log's entry ``seq`` has hash ``hash``", signed with its
    identity key. A peer (or regulator) that keeps one can later prove that the log was
    rewritten or truncated at or before ``seq``, even by someone who recomputed every hash."""

    node: str
    seq: int
    hash: str
    signature: str
    key: str  # fingerprint of the signing key

    def verify(self, public_key: ec.EllipticCurvePublicKey) -> bool:
        """Whether the signature is this key's over this head."""
        if key_fingerprint(public_key) != self.key:
            return False
        return _verify(public_key, self.signature, head_statement(self.node, self.seq, self.hash))

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "seq": self.seq,
            "hash": self.hash,
            "signature": self.signature,
            "key": self.key,
        }

    @classmethod
    def from_dict(cls, obj: Any) -> SignedHead:
        """Raises ``ValueError`` on a malformed head."""
        if not isinstance(obj, dict) or set(obj) != {"node", "seq", "hash", "signature", "key"}:
            raise ValueError("not a signed audit head")
        if not isinstance(obj["seq"], int) or isinstance(obj["seq"], bool) or obj["seq"] < 0:
            raise ValueError("a signed head's seq must be a non-negative integer")
        if not all(isinstance(obj[k], str) for k in ("node", "hash", "signature", "key")):
            raise ValueError("a signed head's node, hash, signature and key must be strings")
        return cls(**obj)


def _sign(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message, ec.ECDSA(hashes.SHA256()))).decode()


def _verify(public_key: ec.EllipticCurvePublicKey, signature: str, message: bytes) -> bool:
    try:
        sig = base64.b64decode(signature, validate=True)
        public_key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_head(
    private_key: ec.EllipticCurvePrivateKey, node: str, seq: int, hash_: str
) -> SignedHead:
    """Sign the head ``(node, seq, hash)``."""
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        private_key.curve, ec.SECP256R1
    ):
        raise ValueError("audit heads are signed with an ECDSA P-256 key (the node's identity)")
    return SignedHead(
        node,
        seq,
        hash_,
        _sign(private_key, head_statement(node, seq, hash_)),
        key_fingerprint(private_key.public_key()),
    )


def sign_bytes(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> str:
    """Base64 DER ECDSA P-256/SHA-256 signature of ``message``."""
    return _sign(private_key, message)


def verify_bytes(public_key: ec.EllipticCurvePublicKey, signature: str, message: bytes) -> bool:
    """Whether ``signature`` (base64 DER) is ``public_key``'s over ``message``."""
    return _verify(public_key, signature, message)


@dataclass(frozen=True)
class Failure:
    """The first problem a walk found: the first seq it cannot vouch for, and why."""

    seq: int
    reason: str


@dataclass
class ChainWalker:
    """Checks entries fed in increasing ``seq`` order and stops at the first problem.

    Parameters
    ----------
    node:
        The node every entry must name.
    start:
        The seq of the first entry expected (1 for a whole log).
    start_prev:
        The ``prev_hash`` the first entry must carry (the genesis hash for seq 1), or ``None``
        to accept what it carries (a bundle that starts later).
    contiguous:
        Whether every seq must be present (a job-filtered bundle has gaps by design: there
        only entries with consecutive seqs are linked).
    keys:
        Public keys checkpoint signatures are checked against. With none, checkpoints are
        counted but not checked. With some, a checkpoint that does not verify under one of
        them is a failure.
    heads:
        Signed heads held elsewhere (their signatures are checked by the caller); the entry at
        each head's seq must have the head's hash.
    known:
        Hashes of entries known from signed evidence held elsewhere (the entries of a signed
        bundle that verified), by seq: each is an anchor like a head, so a rewrite is located
        at the first entry whose hash differs.

    A checkpoint that verifies, or a head that matches, *anchors* the entries up to it:
    someone who rewrote them and recomputed every hash could not have produced it. When an
    anchor fails, the rewrite happened somewhere after the previous anchor, so the failure's
    ``seq`` is the first entry after the last good anchor.
    """

    node: str
    start: int = 1
    start_prev: str | None = None
    contiguous: bool = True
    keys: Sequence[ec.EllipticCurvePublicKey] = ()
    heads: Iterable[SignedHead] = ()
    known: Mapping[int, str] = field(default_factory=dict)
    count: int = 0
    checkpoints: int = 0
    anchored: int = 0  # highest seq vouched for by a good anchor
    last_seq: int = 0
    last_hash: str | None = None
    failure: Failure | None = None
    _heads: dict[int, str] = field(default_factory=dict)
    _keys: dict[str, ec.EllipticCurvePublicKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for h in self.heads:
            if h.node != self.node:
                raise ValueError(
                    f"a signed head of node {h.node!r} cannot check node {self.node!r}"
                )
            if self._heads.get(h.seq, h.hash) != h.hash:
                raise ValueError(f"two signed heads for seq {h.seq} disagree")
            self._heads[h.seq] = h.hash
        self._keys = {key_fingerprint(k): k for k in self.keys}
        self.last_seq = self.start - 1

    def fail(self, seq: int, reason: str) -> Failure:
        """Record a failure found outside the walk (e.g. against a head row)."""
        self.failure = Failure(seq, reason)
        return self.failure

    def _anchor_failed(self, seq: int, what: str) -> Failure:
        first = max(self.anchored + 1, self.start)
        span = f"entry {seq} was" if first >= seq else f"entries {first}..{seq} were"
        return self.fail(
            min(first, seq), f"{what}: {span} rewritten after it was signed (hashes recomputed)"
        )

    def feed(self, e: AuditEntry) -> Failure | None:
        """Check the next entry; the first failure is kept and returned again after."""
        if self.failure is not None:
            return self.failure
        expected = self.last_seq + 1
        if e.seq < expected:
            return self.fail(
                e.seq, f"seq {e.seq} comes after seq {self.last_seq} (entries out of order)"
            )
        if e.seq > expected and self.contiguous:
            missing = (
                f"seq {expected}" if e.seq == expected + 1 else f"seqs {expected}..{e.seq - 1}"
            )
            return self.fail(expected, f"{missing} missing (entry deleted)")
        if e.node != self.node:
            return self.fail(e.seq, f"seq {e.seq} names node {e.node!r}, not {self.node!r}")
        if e.computed_hash() != e.hash:
            return self.fail(e.seq, f"seq {e.seq}: contents do not match its hash (edited)")
        if e.action not in Action.__members__:
            return self.fail(e.seq, f"seq {e.seq}: unknown action {e.action!r}")
        if e.seq == expected:
            prev = self.last_hash if self.count else self.start_prev
            if prev is not None and e.prev_hash != prev:
                return self.fail(
                    e.seq,
                    f"seq {e.seq}: prev_hash does not match the hash of seq {e.seq - 1} "
                    "(an entry before it was replaced, removed or reordered)",
                )
        if e.action == Action.checkpoint:
            self.checkpoints += 1
            if self._keys:
                fp = e.evidence.get("key")
                key = self._keys.get(fp) if isinstance(fp, str) else None
                if key is None or e.signature is None:
                    return self._anchor_failed(
                        e.seq, f"checkpoint seq {e.seq} is not signed by a known key"
                    )
                if not _verify(key, e.signature, head_statement(e.node, e.seq, e.hash)):
                    return self._anchor_failed(
                        e.seq, f"checkpoint seq {e.seq}: its signature does not match the chain"
                    )
                self.anchored = e.seq
        want = self._heads.get(e.seq)
        if want is not None:
            if want != e.hash:
                return self._anchor_failed(
                    e.seq, f"seq {e.seq} does not have the hash of the signed head"
                )
            self.anchored = e.seq
        want = self.known.get(e.seq)
        if want is not None:
            if want != e.hash:
                return self._anchor_failed(
                    e.seq, f"seq {e.seq} does not have the hash a signed bundle records"
                )
            self.anchored = e.seq
        self.count += 1
        self.last_seq, self.last_hash = e.seq, e.hash
        return None

    def finish(self) -> Failure | None:
        """Checks that need the end: a signed head beyond the last entry (truncated tail)."""
        if self.failure is not None:
            return self.failure
        beyond = [s for s in (*self._heads, *self.known) if s > self.last_seq]
        if beyond:
            return self.fail(
                self.last_seq + 1,
                f"the log ends at seq {self.last_seq} but signed evidence names seq "
                f"{max(beyond)} (tail truncated)",
            )
        return None
