"""Shared test configuration: hypothesis profiles (``HYPOTHESIS_PROFILE=ci`` in CI) and the
``store_url`` fixture (a fresh database on SQLite and, when ``PRIVFIN_TEST_POSTGRES_URL`` is
set, on PostgreSQL)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

#: With PRIVFIN_STRICT_SKIPS=1 (.ci/run) a skip other than a missing optional peer or service
#: that says what to install fails the run (tests/_skipcheck.py).
pytest_plugins = ["_skipcheck"]


_POSTGRES_SKIP = "PostgreSQL not available: set PRIVFIN_TEST_POSTGRES_URL (install postgresql)"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a fresh, empty database for the node's store: a SQLite file in ``tmp_path``,
    or a new PostgreSQL database on the server of ``PRIVFIN_TEST_POSTGRES_URL`` (created for
    the test and dropped after it; skipped when the variable is unset)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    server = os.environ.get("PRIVFIN_TEST_POSTGRES_URL")
    if not server:
        pytest.skip(_POSTGRES_SKIP)
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    url = make_url(server)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"t_{secrets.token_hex(8)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
