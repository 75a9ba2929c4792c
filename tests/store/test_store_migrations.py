"""The node's store ([09] item 6): Alembic migrations on SQLite and PostgreSQL.

The migrations create exactly the tables the code defines (every package's exported
``MetaData``, listed in ``METADATA``), ``upgrade`` is idempotent, goes to every head of the
branches off "0001_base", serialises concurrent upgrades, adopts a database from before
migrations (a legacy state directory) and refuses one migrated by a newer privfin.
"""

from __future__ import annotations

import importlib
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, insert, inspect, select, text

import privfin.store.migrate as migrate
from privfin.errors import StoreError
from privfin.federation.mailbox import Mailbox
from privfin.federation.transport import MessageKey
from privfin.store import (
    BASE_REVISION,
    BASE_TABLES,
    current_revisions,
    head_revisions,
    open_engine,
    upgrade,
)

# Every MetaData the migrations must create, as (module, attribute). Add yours here when you
# add a migration. The first two exist since "0001_base"; a module of a feature that has not
# landed yet is left out (a migration whose tables no listed metadata defines fails the test).
METADATA = [
    ("privfin.federation.mailbox", "metadata"),
    ("privfin.node.runner", "_meta"),
    ("privfin.jobs.store", "metadata"),
    ("privfin.audit.store", "metadata"),
    ("privfin.data.registry", "metadata"),
    ("privfin.jobs.negotiation", "metadata"),
    ("privfin.dp.ledger", "metadata"),
]
_REQUIRED = {"privfin.federation.mailbox", "privfin.node.runner"}


def code_metadata() -> MetaData:
    """All tables the code defines, on one MetaData (no table name claimed twice)."""
    combined = MetaData()
    for module_name, attr in METADATA:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if module_name in _REQUIRED or exc.name != module_name:
                raise
            continue
        meta = getattr(module, attr)
        assert isinstance(meta, MetaData), f"{module_name}.{attr}"
        for table in meta.tables.values():
            assert table.name not in combined.tables, f"table {table.name} defined twice"
            table.to_metadata(combined)
    return combined


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    eng = open_engine(store_url)
    yield eng
    eng.dispose()


def test_migrations_create_exactly_the_tables_of_the_code(engine: Engine) -> None:
    assert upgrade(engine) == head_revisions()
    meta = code_metadata()
    assert set(meta.tables) >= BASE_TABLES
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), meta)
    assert diff == [], diff
    assert tables(engine) == set(meta.tables)


def test_upgrade_is_idempotent_and_keeps_rows(engine: Engine) -> None:
    first = upgrade(engine)
    box = Mailbox(engine)
    key = MessageKey("job1", "c", "t", "alice", "bob", 0)
    assert box.put(key, b"kept")
    before = tables(engine)
    assert upgrade(engine) == first == current_revisions(engine) == head_revisions()
    assert tables(engine) == before
    assert box.get(key) == b"kept"
    with engine.connect() as conn:  # one row per head, nothing duplicated
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert sorted(rows) == list(head_revisions())


def test_every_head_branches_off_the_base() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate._config())
    assert script.get_bases() == [BASE_REVISION]
    for head in head_revisions():
        chain = [rev.revision for rev in script.iterate_revisions(head, "base")]
        assert chain[-1] == BASE_REVISION, chain


def test_a_database_of_a_newer_privfin_is_refused(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('9999_future')"))
    with pytest.raises(StoreError, match=r"9999_future.*newer privfin"):
        upgrade(engine)


def test_concurrent_upgrades_of_a_new_database_all_succeed(store_url: str) -> None:
    engines = [open_engine(store_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def run(eng: Engine) -> None:
        barrier.wait()
        try:
            upgrade(eng)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert current_revisions(engines[0]) == head_revisions()
    finally:
        for e in engines:
            e.dispose()


def test_upgrade_goes_to_every_head_of_several_branches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two branches off "0001_base" (as features add them in parallel): both are applied and
    both recorded; a second upgrade changes nothing."""
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate._SCRIPTS, scripts)
    for name in ("left", "right"):
        (scripts / "versions" / f"v9_{name}.py").write_text(
            "import sqlalchemy as sa\nfrom alembic import op\n"
            f"revision = '9_{name}'\ndown_revision = '0001_base'\n"
            "branch_labels = None\ndepends_on = None\n"
            f"def upgrade():\n    op.create_table('t_{name}', sa.Column('id', sa.Integer, "
            "primary_key=True))\n"
            f"def downgrade():\n    op.drop_table('t_{name}')\n"
        )
    monkeypatch.setattr(migrate, "_SCRIPTS", scripts)
    eng = open_engine(tmp_path / "store.sqlite")
    try:
        heads = upgrade(eng)
        assert {"9_left", "9_right"} <= set(heads)
        assert current_revisions(eng) == heads
        assert {"t_left", "t_right"} <= tables(eng)
        assert upgrade(eng) == heads
    finally:
        eng.dispose()


# -- databases from before migrations ([02]..[08]: created by MetaData.create_all at open)

_LEGACY_02 = [  # [02]: the mailbox and the runner's jobs; chunks without the [08] columns
    "CREATE TABLE messages (job VARCHAR(64) NOT NULL, component VARCHAR(64) NOT NULL, "
    "tag VARCHAR(64) NOT NULL, sender VARCHAR(64) NOT NULL, receiver VARCHAR(64) NOT NULL, "
    "seq INTEGER NOT NULL, digest VARCHAR(64) NOT NULL, size INTEGER NOT NULL, "
    "payload BLOB NOT NULL, received_at INTEGER NOT NULL, "
    "PRIMARY KEY (job, component, tag, sender, receiver, seq))",
    "CREATE TABLE chunks (path VARCHAR(400) NOT NULL, idx INTEGER NOT NULL, "
    "total INTEGER NOT NULL, digest VARCHAR(64) NOT NULL, data BLOB NOT NULL, "
    "PRIMARY KEY (path, idx))",
    "CREATE TABLE aborts (job VARCHAR(64) NOT NULL, sender VARCHAR(64) NOT NULL, "
    "reason VARCHAR(1000) NOT NULL, PRIMARY KEY (job, sender))",
    "CREATE TABLE jobs (job VARCHAR(64) NOT NULL, spec TEXT NOT NULL, "
    "status VARCHAR(16) NOT NULL, result TEXT, error TEXT, updated_at INTEGER NOT NULL, "
    "PRIMARY KEY (job))",
    "INSERT INTO messages VALUES ('j', 'c', 't', 'alice', 'bob', 0, 'd', 3, x'616263', 1)",
    "INSERT INTO chunks VALUES ('j/c/t/alice/bob/1', 0, 2, 'd', x'00')",
    "INSERT INTO jobs VALUES ('j', '{}', 'done', NULL, NULL, 1)",
]


def legacy_state_dir(root: Path) -> Path:
    state = root / "state"
    state.mkdir()
    with sqlite3.connect(state / "node.sqlite") as conn:
        for sql in _LEGACY_02:
            conn.execute(sql)
    return state


def test_a_legacy_state_dir_is_adopted_at_the_base_with_its_rows(tmp_path: Path) -> None:
    from privfin.federation.mailbox import chunks, messages
    from privfin.node.runner import jobs_table

    state = legacy_state_dir(tmp_path)
    eng = open_engine(state / "node.sqlite")  # the default store of a node with this state
    try:
        assert current_revisions(eng) == ()
        assert upgrade(eng) == head_revisions()
        assert current_revisions(eng) == head_revisions()
        meta = code_metadata()
        with eng.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), meta)
            assert diff == [], diff
            assert conn.execute(select(messages.c.payload)).scalar_one() == b"abc"
            assert conn.execute(select(chunks.c.path, chunks.c.job)).one() == (
                "j/c/t/alice/bob/1",
                None,
            )
            assert conn.execute(select(jobs_table.c.status)).scalar_one() == "done"
        box = Mailbox(eng)
        assert box.get(MessageKey("j", "c", "t", "alice", "bob", 0)) == b"abc"
    finally:
        eng.dispose()


def test_a_legacy_database_that_does_not_match_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "node.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE aborts (job VARCHAR(64) PRIMARY KEY, why TEXT)")
    eng = open_engine(db)
    try:
        with pytest.raises(StoreError, match=r"do not match.*aborts\.sender is missing"):
            upgrade(eng)
        assert current_revisions(eng) == ()  # nothing recorded, nothing created
        assert tables(eng) == {"aborts"}
    finally:
        eng.dispose()


def test_unrelated_tables_are_left_alone(engine: Engine) -> None:
    """A database that holds other tables (not privfin's) is migrated around them."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO someone_elses VALUES (7)"))
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM someone_elses")).scalar_one() == 7
    assert current_revisions(engine) == head_revisions()


# -- opening


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    eng = open_engine("postgresql://privfin:s3cret@127.0.0.1:1/nodb")
    try:
        with pytest.raises(StoreError, match="cannot migrate the store") as info:
            upgrade(eng)
    finally:
        eng.dispose()
    assert "s3cret" not in str(info.value) and "***" in str(info.value)


def test_a_malformed_url_is_refused() -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        open_engine("postgresql://host:notaport/db")


def test_sqlite_files_are_private_and_insert_works(tmp_path: Path) -> None:
    import os
    import stat

    from privfin.federation.mailbox import aborts

    db = tmp_path / "deep" / "node.sqlite"
    eng = open_engine(f"sqlite:///{db}")
    try:
        upgrade(eng)
        with eng.begin() as conn:
            conn.execute(insert(aborts).values(job="j", sender="s", reason="r"))
        assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(db.parent).st_mode) == 0o700
        with eng.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        eng.dispose()


# -- [16] a new store created from the declared MetaData at once


def schema_of(engine: Engine) -> dict[str, object]:
    """Everything SQLAlchemy's inspector reports of every table (columns by name)."""
    insp = inspect(engine)
    out: dict[str, object] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": {
                c["name"]: (str(c["type"]), c["nullable"], c.get("default"))
                for c in insp.get_columns(table)
            },
            "pk": insp.get_pk_constraint(table),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in insp.get_unique_constraints(table)
            ),
            "fks": sorted(str(f) for f in insp.get_foreign_keys(table)),
            "checks": sorted(str(c["sqltext"]) for c in insp.get_check_constraints(table)),
        }
    return out


def drop_everything(engine: Engine) -> None:
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    assert inspect(engine).get_table_names() == []


def test_a_new_store_is_created_from_the_declared_schema_as_the_migrations_make_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from privfin.node.runner import STORE_HEADS

    assert head_revisions() == STORE_HEADS  # update STORE_HEADS when you add a migration
    ran: list[str] = []
    real_migrate = migrate._migrate
    monkeypatch.setattr(migrate, "_migrate", lambda *a: ran.append("alembic") or real_migrate(*a))
    assert upgrade(engine) == head_revisions()
    assert ran == []  # created at once
    fresh = schema_of(engine)
    assert current_revisions(engine) == head_revisions()
    with engine.connect() as conn:  # Alembic reads the recorded heads
        assert sorted(MigrationContext.configure(conn).get_current_heads()) == list(STORE_HEADS)
    box = Mailbox(engine)  # and the store works
    key = MessageKey("job1", "c", "t", "alice", "bob", 0)
    assert box.put(key, b"kept")
    assert box.get(key) == b"kept"
    assert upgrade(engine) == head_revisions()  # idempotent
    drop_everything(engine)
    monkeypatch.setattr(migrate, "_declared", [])  # nothing declared: every migration runs
    assert upgrade(engine) == head_revisions()
    assert ran == ["alembic"]
    assert schema_of(engine) == fresh


def test_a_store_with_a_table_or_other_heads_is_migrated(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import privfin.node.runner  # noqa: F401  (declares the schema)

    ran: list[str] = []
    real_migrate = migrate._migrate
    monkeypatch.setattr(migrate, "_migrate", lambda *a: ran.append("alembic") or real_migrate(*a))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    assert upgrade(engine) == head_revisions()
    assert ran == ["alembic"]
    drop_everything(engine)
    monkeypatch.setattr(migrate, "_declared", [(("0001_base",), migrate._declared[-1][1])])
    assert upgrade(engine) == head_revisions()
    assert ran == ["alembic", "alembic"]  # declared for other heads: not used


def test_heads_read_from_the_scripts_are_alembic_heads() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate._config())
    assert migrate._script_heads(migrate._SCRIPTS) == tuple(sorted(script.get_heads()))
