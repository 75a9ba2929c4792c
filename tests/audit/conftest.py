"""Fixtures of the audit tests: a fresh store (SQLite and, when configured, PostgreSQL) with
the audit tables, and a node identity."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _audithelp import NODE
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine

from privfin.audit import AuditLog
from privfin.audit.store import metadata
from privfin.federation.tls import Identity, create_identity
from privfin.store import open_engine


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    eng = open_engine(store_url)
    metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def log(engine: Engine) -> AuditLog:
    return AuditLog(engine, node=NODE)


@pytest.fixture(scope="session")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return create_identity(NODE, tmp_path_factory.mktemp("ident"))


@pytest.fixture(scope="session")
def key(identity: Identity) -> ec.EllipticCurvePrivateKey:
    k = serialization.load_pem_private_key(identity.key.read_bytes(), None)
    assert isinstance(k, ec.EllipticCurvePrivateKey)
    return k


@pytest.fixture(scope="session")
def cert(identity: Identity) -> bytes:
    return identity.cert.read_bytes()
