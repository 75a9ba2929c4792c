"""The data registry (privfin.data.registry) on the node's store (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from privfin.data import registry as reg
from privfin.data.registry import (
    DatasetInfo,
    DatasetRegistry,
    Level,
    SourceKind,
    UsagePolicy,
    metadata,
)
from privfin.errors import ConfigError, DataPolicyError
from privfin.store import open_engine, upgrade


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    e = open_engine(store_url)
    upgrade(e)  # the registry's tables come from migration 0004_registry
    try:
        yield e
    finally:
        e.dispose()


@pytest.fixture
def registry(engine: sa.Engine) -> DatasetRegistry:
    return DatasetRegistry(engine, clock=Clock())


def _loans(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"{i:03d}" for i in range(n)],  # leading zeros survive only as strings
            "income": [1000.5 + i for i in range(n)],
            "age": [30 + i for i in range(n)],
            "password": [f"pw{i}" for i in range(n)],
            "branch": [f"B{i % 2}" for i in range(n)],
            "default": [i % 2 for i in range(n)],
        }
    )


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    p = tmp_path / "loans.csv"
    _loans().to_csv(p, index=False)
    return p


OPEN = UsagePolicy(frozenset({"telecom"}), frozenset({"credit scoring"}))


def _register_csv(registry: DatasetRegistry, csv: Path, **kw: object) -> DatasetInfo:
    args: dict[str, object] = {
        "id_column": "id",
        "label": "default",
        "levels": {"password": Level.C3, "branch": Level.C1},
        "policy": OPEN,
    }
    args.update(kw)
    return registry.register("loans", csv, **args)  # type: ignore[arg-type]


def test_csv_schema_levels_rows_digest(registry: DatasetRegistry, csv: Path) -> None:
    info = _register_csv(registry, csv)
    assert info.kind is SourceKind.csv
    assert info.version == 1
    assert info.location == str(csv.resolve())
    assert info.rows == 6
    assert info.digest == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert [(f.name, f.dtype, f.level) for f in info.fields] == [
        ("id", "string", Level.C2),
        ("income", "float", Level.C2),
        ("age", "int", Level.C2),
        ("password", "string", Level.C3),
        ("branch", "string", Level.C1),
        ("default", "int", Level.C2),
    ]
    assert (info.id_column, info.label) == ("id", "default")
    # stored, read back by a fresh registry on the same database
    again = DatasetRegistry(registry.engine).get("loans")
    assert again == info
    assert [d.name for d in registry.list()] == ["loans"]
    df = registry.load("loans", ["id", "income"])
    assert list(df.columns) == ["id", "income"]
    assert df["id"].tolist() == [f"{i:03d}" for i in range(6)]


def test_id_column_is_at_least_c2_unless_named(registry: DatasetRegistry, csv: Path) -> None:
    info = _register_csv(registry, csv, levels={}, default_level=Level.C1)
    assert info.field("id").level is Level.C2  # identifiers of persons are C2
    assert info.field("income").level is Level.C1
    info = _register_csv(registry, csv, levels={"id": Level.C1}, replace=True)
    assert info.field("id").level is Level.C1  # an explicit level wins


def test_csv_in_chunks_counts_and_merges_types(
    registry: DatasetRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reg, "_CHUNK_ROWS", 4)  # bounded memory: the file is read in chunks
    df = pd.DataFrame(
        {
            "id": [str(i) for i in range(10)],
            "x": [1, 2, 3, 4, 5, 6, 7, 8, 9.5, 10],  # int in the first chunks, float later
            "gap": [None] * 4 + ["a"] * 6,  # empty first chunk, strings later
        }
    )
    p = tmp_path / "big.csv"
    df.to_csv(p, index=False)
    info = registry.register("big", p, id_column="id", policy=OPEN)
    assert info.rows == 10
    assert {f.name: f.dtype for f in info.fields} == {"id": "string", "x": "float", "gap": "string"}


def test_parquet(registry: DatasetRegistry, tmp_path: Path) -> None:
    p = tmp_path / "loans.parquet"
    df = _loans()
    df["id"] = range(100, 106)  # integer ids are read back as strings
    df.to_parquet(p, index=False)
    info = registry.register("pq", p, id_column="id", levels={"password": Level.C3}, policy=OPEN)
    assert info.kind is SourceKind.parquet
    assert info.rows == 6
    assert info.digest == hashlib.sha256(p.read_bytes()).hexdigest()
    assert {f.name: f.dtype for f in info.fields} == {
        "id": "string",
        "income": "float",
        "age": "int",
        "password": "string",
        "branch": "string",
        "default": "int",
    }
    assert info.field("password").level is Level.C3
    out = registry.load("pq", ["id", "age"])
    assert out["id"].tolist() == [str(i) for i in range(100, 106)]
    assert out["age"].tolist() == df["age"].tolist()


def _sql_source(url: str) -> str:
    """A ``customers`` table in the database at ``url`` (the test's store database: SQLite or
    PostgreSQL, so both dialects serve as a source)."""
    e = sa.create_engine(url)
    try:
        with e.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE customers "
                    "(cid INTEGER, score DOUBLE PRECISION, name TEXT, card TEXT, n NUMERIC(8, 2))"
                )
            )
            conn.execute(
                sa.text("INSERT INTO customers VALUES (:c, :s, :n, :k, :d)"),
                [
                    {"c": i, "s": i / 4, "n": f"n{i}", "k": f"4000{i:012d}", "d": f"{i}.25"}
                    for i in range(7)
                ],
            )
    finally:
        e.dispose()
    return url


def _update(url: str, sql: str) -> None:
    e = sa.create_engine(url)
    try:
        with e.begin() as conn:
            conn.execute(sa.text(sql))
    finally:
        e.dispose()


def test_sql_source(registry: DatasetRegistry, store_url: str) -> None:
    url = _sql_source(store_url)
    query = "SELECT cid, score, name, card FROM customers ORDER BY cid"
    info = registry.register(
        "core", url, id_column="cid", query=query, levels={"card": "C3"}, policy=OPEN
    )
    assert info.kind is SourceKind.sql
    assert info.query == query
    assert info.rows == 7
    assert [(f.name, f.dtype, f.level) for f in info.fields] == [
        ("cid", "int", Level.C2),
        ("score", "float", Level.C2),
        ("name", "string", Level.C2),
        ("card", "string", Level.C3),
    ]
    df = registry.load("core", ["cid", "score"])
    assert df["cid"].tolist() == [str(i) for i in range(7)]
    assert df["score"].tolist() == [i / 4 for i in range(7)]
    # the same rows give the same digest; a changed row is seen
    again = registry.register(
        "core",
        url,
        id_column="cid",
        query=query,
        levels={"card": "C3"},
        policy=OPEN,
        replace=True,
    )
    assert again.version == 1
    _update(url, "UPDATE customers SET score = 99 WHERE cid = 3")
    with pytest.raises(ConfigError, match="'core' changed since it was registered as version 1"):
        registry.load("core")
    with pytest.raises(ConfigError, match="needs a query"):
        registry.register("other", url, id_column="cid")
    with pytest.raises(ConfigError, match=r"SQL source .*nope"):
        registry.register("other", url, id_column="cid", query="SELECT * FROM nope")
    # NUMERIC (Decimal on PostgreSQL, float on SQLite) hashes and loads too
    dec = registry.register(
        "dec", url, id_column="cid", query="SELECT cid, n FROM customers ORDER BY cid"
    )
    assert dec.field("n").dtype in ("decimal", "float")
    assert [float(v) for v in registry.load("dec")["n"]] == [i + 0.25 for i in range(7)]
    _update(url, "UPDATE customers SET n = 1.5 WHERE cid = 0")
    with pytest.raises(ConfigError, match="'dec' changed since"):
        registry.verify("dec")


def test_sql_password_is_never_shown() -> None:
    info = DatasetInfo(
        name="core",
        version=1,
        kind=SourceKind.sql,
        location="postgresql://reader:s3cret@db.bank/core",
        query="SELECT 1",
        id_column="id",
        label=None,
        fields=(),
        rows=0,
        digest="0" * 64,
        registered_at=pd.Timestamp(0, tz="UTC").to_pydatetime(),
        policy=UsagePolicy(),
    )
    assert info.display_location == "postgresql://reader:***@db.bank/core"
    assert "s3cret" not in repr(info)
    assert "s3cret" not in str(info.public())


def test_reregister_bumps_version_and_changed_source_is_refused(
    registry: DatasetRegistry, csv: Path
) -> None:
    first = _register_csv(registry, csv)
    with pytest.raises(ConfigError, match="already registered; pass --replace"):
        _register_csv(registry, csv)
    same = _register_csv(registry, csv, replace=True)
    assert same == first  # identical registration: same version, same date
    # another policy on the same content is a new version
    assert _register_csv(registry, csv, replace=True, policy=UsagePolicy.open()).version == 2
    # the file changes under the registry: load refuses it, naming what changed
    df = _loans()
    df["extra"] = 1
    df.to_csv(csv, index=False)
    with pytest.raises(ConfigError, match=r"'loans' changed since.*version 2.*new columns extra"):
        registry.load("loans")
    with pytest.raises(ConfigError, match="changed since"):
        registry.verify("loans")
    third = _register_csv(registry, csv, replace=True)
    assert third.version == 3
    assert "extra" in third.columns
    everything = registry.load("loans")
    assert everything["extra"].tolist() == [1] * 6
    # a C3 field is never read, whether implied or asked for
    assert "password" not in everything.columns
    assert list(everything.columns) == [c for c in third.columns if c != "password"]
    with pytest.raises(DataPolicyError, match="'password' of dataset 'loans' is C3"):
        registry.load("loans", ["id", "password"])
    with pytest.raises(DataPolicyError, match="is C3"):
        next(registry.iter_column("loans", "password"))
    # versions are never reused, also after removal
    registry.remove("loans")
    with pytest.raises(ConfigError, match="not registered"):
        registry.get("loans")
    with pytest.raises(ConfigError, match="not registered"):
        registry.remove("loans")
    assert _register_csv(registry, csv).version == 4
    assert [h["version"] for h in registry.history("loans")] == [1, 2, 3, 4]
    csv.unlink()
    with pytest.raises(ConfigError, match="does not exist"):
        registry.load("loans")


def test_check_use(registry: DatasetRegistry, csv: Path) -> None:
    _register_csv(registry, csv)
    ok = {"partner": "telecom", "purpose": "credit scoring"}
    registry.check_use("loans", ["id", "income", "default"], **ok, keeps_private=True)
    registry.check_use("loans", ["branch"], **ok, keeps_private=False)  # C1: any component
    with pytest.raises(DataPolicyError, match="'password' of dataset 'loans' is C3"):
        registry.check_use("loans", ["income", "password"], **ok, keeps_private=True)
    with pytest.raises(DataPolicyError, match="'income' of dataset 'loans' is C2"):
        registry.check_use("loans", ["branch", "income"], **ok, keeps_private=False)
    with pytest.raises(DataPolicyError, match="no field 'salary'; fields: id, income"):
        registry.check_use("loans", ["salary"], **ok, keeps_private=True)
    with pytest.raises(DataPolicyError, match=r"party 'ecommerce'.*allowed partners: telecom"):
        registry.check_use(
            "loans",
            ["income"],
            partner="ecommerce",
            purpose="credit scoring",
            keeps_private=True,
        )
    with pytest.raises(DataPolicyError, match="purpose 'marketing'"):
        registry.check_use(
            "loans", ["income"], partner="telecom", purpose="marketing", keeps_private=True
        )
    with pytest.raises(ConfigError, match="'nope' is not registered"):
        registry.check_use("nope", [], **ok, keeps_private=True)
    info = registry.get("loans")
    assert info.usable_fields(keeps_private=True) == ["id", "income", "age", "branch", "default"]
    assert info.usable_fields(keeps_private=False) == ["branch"]
    registry.check_use("loans", info.usable_fields(keeps_private=True), **ok, keeps_private=True)
    with pytest.raises(DataPolicyError, match="is C3"):
        registry.check_use("loans", info.columns, **ok, keeps_private=True)


def test_default_policy_allows_nothing_and_star_allows_all(
    registry: DatasetRegistry, csv: Path
) -> None:
    _register_csv(registry, csv, policy=None)
    with pytest.raises(DataPolicyError, match="allowed partners: none"):
        registry.check_use("loans", [], partner="telecom", purpose="x", keeps_private=True)
    _register_csv(registry, csv, policy=UsagePolicy(frozenset({"*"}), frozenset()), replace=True)
    with pytest.raises(DataPolicyError, match="allowed purposes: none"):
        registry.check_use("loans", [], partner="telecom", purpose="x", keeps_private=True)
    _register_csv(registry, csv, policy=UsagePolicy.open(), replace=True)
    registry.check_use("loans", ["income"], partner="anyone", purpose="x", keeps_private=True)
    # a policy change is stored as a new version
    info = registry.set_policy("loans", UsagePolicy(frozenset({"telecom"}), frozenset({"x"})))
    assert info.version == 4
    with pytest.raises(DataPolicyError):
        registry.check_use("loans", [], partner="anyone", purpose="x", keeps_private=True)


def test_register_errors_name_the_problem(
    registry: DatasetRegistry, csv: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        registry.register("x", tmp_path / "missing.csv", id_column="id")
    with pytest.raises(ConfigError, match="not a regular file"):
        registry.register("x", tmp_path, id_column="id")
    with pytest.raises(
        ConfigError,
        match="id column 'cust' is not in 'x'; available columns: id, income, age, password",
    ):
        registry.register("x", csv, id_column="cust")
    with pytest.raises(ConfigError, match=r"label column 'y' .*available columns"):
        registry.register("x", csv, id_column="id", label="y")
    with pytest.raises(ConfigError, match=r"unknown column.*salary"):
        registry.register("x", csv, id_column="id", levels={"salary": Level.C1})
    with pytest.raises(ConfigError, match="levels must be one of C1, C2, C3"):
        registry.register("x", csv, id_column="id", levels={"income": "C4"})
    with pytest.raises(ConfigError, match="dataset name"):
        registry.register("../x", csv, id_column="id")
    with pytest.raises(ConfigError, match="partner"):
        UsagePolicy(frozenset({"bad name"}))
    assert registry.list() == []  # nothing half-registered


def test_sync_config(registry: DatasetRegistry, csv: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"phone": ["1", "2"]}).to_csv(ids, index=False)
    config = {"loans": csv, "ids": ids, "gone": tmp_path / "gone.csv"}
    out = registry.sync_config(config)
    assert out["loans"] == "registered"
    assert out["ids"] == "registered"
    assert out["gone"].startswith("skipped:") and "does not exist" in out["gone"]
    loans = registry.get("loans")
    assert loans.origin == "config"
    assert loans.id_column == "id"
    assert registry.get("ids").id_column == "phone"  # no "id" column: the first one
    assert all(f.level is Level.C2 for f in loans.fields)
    # node.yaml datasets are offered to every pinned peer for any purpose (as before)
    registry.check_use("loans", ["income"], partner="p", purpose="q", keeps_private=True)
    assert registry.sync_config(config)["loans"] == "unchanged"
    pd.DataFrame({"phone": ["1", "2", "3"]}).to_csv(ids, index=False)
    assert registry.sync_config(config)["ids"] == "refreshed"
    assert registry.get("ids").version == 2
    assert registry.get("ids").rows == 3
    # a dataset registered with the CLI wins over node.yaml
    _register_csv(registry, csv, replace=True, origin="cli")
    assert registry.sync_config(config)["loans"] == "kept (registered with the CLI)"
    assert registry.get("loans").policy == OPEN


def test_migration_matches_metadata(engine: sa.Engine) -> None:
    insp = sa.inspect(engine)
    for table in metadata.sorted_tables:
        have = {c["name"]: c for c in insp.get_columns(table.name)}
        assert list(have) == [c.name for c in table.columns], table.name
        for col in table.columns:
            got = have[col.name]
            assert got["type"]._type_affinity is col.type._type_affinity, (table.name, col.name)
            assert bool(got["nullable"]) == (col.nullable and not col.primary_key)
        pk = insp.get_pk_constraint(table.name)["constrained_columns"]
        assert pk == [c.name for c in table.primary_key.columns], table.name


def test_iter_column_streams_checked_ids(
    registry: DatasetRegistry, csv: Path, tmp_path: Path
) -> None:
    _register_csv(registry, csv)
    chunks = list(registry.iter_column("loans", "id", chunk_rows=4))
    assert chunks == [["000", "001", "002", "003"], ["004", "005"]]
    p = tmp_path / "ids.parquet"
    pd.DataFrame({"id": [7, None, 9]}, dtype="Int64").to_parquet(p, index=False)
    registry.register("pq", p, id_column="id", policy=OPEN)
    assert list(registry.iter_column("pq", "id", chunk_rows=2)) == [["7", None], ["9"]]
    url = _sql_source(f"sqlite:///{tmp_path / 'core.db'}")
    registry.register("core", url, id_column="cid", query="SELECT cid FROM customers ORDER BY cid")
    assert list(registry.iter_column("core", "cid", chunk_rows=5)) == [
        ["0", "1", "2", "3", "4"],
        ["5", "6"],
    ]
    with pytest.raises(DataPolicyError, match="no field 'phone'"):
        next(registry.iter_column("loans", "phone"))
    with csv.open("a") as f:
        f.write("006,1.0,36,pw,B0,0\n")
    with pytest.raises(ConfigError, match="changed since"):
        next(registry.iter_column("loans", "id"))


def test_concurrent_registration_is_refused_cleanly(registry: DatasetRegistry, csv: Path) -> None:
    """Another process re-registers the name after this one read the current version and
    before it writes: the version history's primary key refuses this write (nothing of it is
    stored) with a one-line error."""
    _register_csv(registry, csv)
    other = DatasetRegistry(open_engine(registry.engine.url))
    raced: list[bool] = []

    def race(conn: object, cursor: object, statement: str, *args: object) -> None:
        if not raced and statement.lstrip().upper().startswith("UPDATE REGISTRY_DATASETS"):
            raced.append(True)
            _register_csv(other, csv, replace=True, policy=UsagePolicy.open())

    sa.event.listen(registry.engine, "before_cursor_execute", race)
    try:
        with pytest.raises(ConfigError, match="registered by someone else at the same time"):
            _register_csv(registry, csv, replace=True, levels={})
    finally:
        sa.event.remove(registry.engine, "before_cursor_execute", race)
        other.engine.dispose()
    assert raced
    info = registry.get("loans")
    assert (info.version, info.policy) == (2, UsagePolicy.open())  # the other one's
    assert [h["version"] for h in registry.history("loans")] == [1, 2]
