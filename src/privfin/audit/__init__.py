"""A node's audit log: append-only, hash-chained entries, signed checkpoints, evidence bundles.

- :mod:`privfin.audit.chain` — the format: :class:`Action` (the vocabulary),
  :class:`AuditEntry`, the canonical encoding and hash, :class:`SignedHead`, and the walk that
  checks a chain (shared by the database check and the offline bundle check).
- :mod:`privfin.audit.store` — the tables, on :data:`privfin.audit.store.metadata`.
- :mod:`privfin.audit.log` — :class:`AuditLog`: append, seal, verify, export.
- :mod:`privfin.audit.bundle` — evidence bundles: :func:`export_bundle`, :func:`verify_bundle`.

See docs/audit.md for what is logged and what the chain does and does not prove.
"""

from __future__ import annotations

from privfin.audit.bundle import (
    BundleReport,
    bundle_evidence,
    bundle_head,
    export_bundle,
    verify_bundle,
)
from privfin.audit.chain import (
    Action,
    AuditEntry,
    SignedHead,
    digest,
    genesis_hash,
    key_fingerprint,
)
from privfin.audit.log import AuditLog, VerifyReport

__all__ = [
    "Action",
    "AuditEntry",
    "AuditLog",
    "BundleReport",
    "SignedHead",
    "VerifyReport",
    "bundle_evidence",
    "bundle_head",
    "digest",
    "export_bundle",
    "genesis_hash",
    "key_fingerprint",
    "verify_bundle",
]
