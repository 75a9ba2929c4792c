"""The audit log in the node's store (SQLite and PostgreSQL): appends, every kind of tamper
found at the right seq, signed checkpoints and heads, concurrency, migration."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter

import pytest
from _audithelp import NODE, entry_hash_at, fill, head_row, recompute_from, sql
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, event, inspect, select, update

from privfin.audit import AuditLog, genesis_hash
from privfin.audit.store import audit_entries, metadata
from privfin.errors import ConfigError
from privfin.store import open_engine, upgrade


def test_append_chains_entries_from_the_genesis(log: AuditLog) -> None:
    clock = iter([1000.0, 1000.5, 1001.25])
    log = AuditLog(log.engine, node=NODE, clock=lambda: next(clock))
    a = log.append(
        "proposal_received",
        actor="node",
        job="j1",
        party="telco",
        evidence={"spec": "sha256:" + "1" * 64},
    )
    b = log.append(
        "approval", actor="operator:alice", job="j1", evidence={"signature": "MEUCIQ..."}
    )
    c = log.append("data_access", actor="scheduler", job="j1", step="psi", dataset="loans")
    assert [e.seq for e in (a, b, c)] == [1, 2, 3]
    assert [e.ts for e in (a, b, c)] == [1_000_000_000, 1_000_500_000, 1_001_250_000]
    assert a.prev_hash == genesis_hash(NODE) and b.prev_hash == a.hash and c.prev_hash == b.hash
    assert list(log.entries()) == [a, b, c]
    assert list(log.entries(job="j1", since=2)) == [b, c]
    assert log.head() == (3, c.hash) and log.count() == 3
    report = log.verify()
    assert report.ok and report.entries == 3 and report.head_hash == c.hash, report


def test_bad_arguments_are_refused_without_writing(log: AuditLog) -> None:
    with pytest.raises(ValueError):
        log.append("made_up", actor="node")
    with pytest.raises(ValueError, match="actor"):
        log.append("approval", actor="")
    with pytest.raises(ValueError, match="control"):
        log.append("approval", actor="node", job="j\n2")
    with pytest.raises(ValueError, match="bytes"):
        log.append("data_access", actor="node", evidence={"rows": b"raw"})
    with pytest.raises(ValueError, match="seal"):
        log.append("checkpoint", actor="node")
    assert log.count() == 0 and log.verify().ok


def test_another_nodes_log_and_missing_tables_are_refused(engine: Engine, tmp_path) -> None:
    AuditLog(engine, node=NODE).append("node_started", actor="node")
    with pytest.raises(ConfigError, match="belongs to node 'bank_a'"):
        AuditLog(engine, node="bank_b").append("node_started", actor="node")
    with pytest.raises(ConfigError, match="belongs to node 'bank_a'"):
        AuditLog(engine, node="bank_b").verify()
    bare = open_engine(tmp_path / "bare.sqlite")
    with pytest.raises(ConfigError, match="no audit log tables"):
        AuditLog(bare, node=NODE).append("node_started", actor="node")
    bare.dispose()


def test_append_in_the_callers_transaction_rolls_back_with_it(log: AuditLog) -> None:
    fill(log, 2)
    with pytest.raises(RuntimeError), log.engine.begin() as conn:
        log.append("approval", actor="node", job="j1", connection=conn)
        raise RuntimeError("the caller's own change failed")
    assert log.count() == 2 and log.head()[0] == 2
    with log.engine.begin() as conn:
        e = log.append("approval", actor="node", job="j1", connection=conn)
    assert e.seq == 3 and log.verify().ok


def test_callers_transaction_appending_twice_while_another_thread_waits(log: AuditLog) -> None:
    fill(log, 1)
    # Two pooled connections exist before the caller's transaction starts: on SQLite a *new*
    # connection waits for the write lock in open_engine's connect-time PRAGMA auto_vacuum,
    # before the worker's append would even run.
    with log.engine.connect(), log.engine.connect():
        pass
    worker_waits = threading.Event()

    def spy(conn, cursor, statement, params, context, executemany) -> None:
        if threading.current_thread() is t and statement.startswith("UPDATE audit_head"):
            worker_waits.set()  # the worker is about to wait for the caller's lock

    event.listen(log.engine, "before_cursor_execute", spy)
    t = threading.Thread(target=lambda: log.append("job_started", actor="other", job="j2"))
    try:
        with log.engine.begin() as conn:
            log.append("approval", actor="node", job="j1", connection=conn)
            t.start()
            assert worker_waits.wait(60)
            log.append("job_started", actor="node", job="j1", connection=conn)
        t.join(120)
    finally:
        event.remove(log.engine, "before_cursor_execute", spy)
    assert not t.is_alive()
    assert [(e.seq, e.actor) for e in log.entries()][1:] == [
        (2, "node"),
        (3, "node"),
        (4, "other"),
    ]
    assert log.verify().ok


def test_edited_field_is_found_at_its_seq(log: AuditLog) -> None:
    fill(log, 6)
    sql(log.engine, "UPDATE audit_entries SET actor = 'someone else' WHERE seq = 4")
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 4 and "edited" in (r.reason or ""), r


def test_edited_evidence_is_found_at_its_seq(log: AuditLog) -> None:
    fill(log, 6)
    sql(log.engine, "UPDATE audit_entries SET evidence = :e WHERE seq = 2", e='{"rows":0}')
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 2, r


def test_deleted_entry_is_found(log: AuditLog) -> None:
    fill(log, 6)
    sql(log.engine, "DELETE FROM audit_entries WHERE seq = 3")
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 3 and "missing" in (r.reason or ""), r


def test_deleted_entry_with_renumbering_is_found(log: AuditLog) -> None:
    fill(log, 6)
    sql(log.engine, "DELETE FROM audit_entries WHERE seq = 3")
    for seq in (4, 5, 6):
        sql(log.engine, "UPDATE audit_entries SET seq = :s WHERE seq = :t", s=seq - 1, t=seq)
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 3, r


def test_swapped_entries_are_found_at_the_first(log: AuditLog) -> None:
    fill(log, 6)
    with log.engine.begin() as conn:
        rows = {
            r.seq: r._asdict()
            for r in conn.execute(select(audit_entries).where(audit_entries.c.seq.in_([3, 4])))
        }
        for seq, other in ((3, 4), (4, 3)):
            values = {k: v for k, v in rows[other].items() if k != "seq"}
            conn.execute(update(audit_entries).where(audit_entries.c.seq == seq).values(**values))
    assert [e.step for e in log.entries()][2:4] == ["s3", "s2"]
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 3, r


def test_edited_head_row_and_entries_behind_the_head_are_found(log: AuditLog) -> None:
    fill(log, 4)
    good = head_row(log.engine)[1]
    sql(log.engine, "UPDATE audit_head SET hash = :h", h="0" * 64)
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 4 and "head row" in (r.reason or ""), r
    sql(log.engine, "UPDATE audit_head SET hash = :h", h=good)
    assert log.verify().ok
    sql(
        log.engine,
        "INSERT INTO audit_entries (seq, ts, node, actor, action, evidence, prev_hash, hash) "
        "VALUES (5, 0, 'bank_a', 'x', 'approval', '{}', :p, :p)",
        p=good,
    )
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 5 and "behind" in (r.reason or ""), r


def test_verify_while_appending_sees_no_false_alarm(log: AuditLog) -> None:
    fill(log, 3)
    done = threading.Event()

    def appender() -> None:
        for i in range(150):
            log.append("step_done", actor="scheduler", job="j", evidence={"i": i})
        done.set()

    t = threading.Thread(target=appender)
    t.start()
    reports = []
    while not done.is_set():
        reports.append(log.verify())
    t.join()
    reports.append(log.verify())
    assert all(r.ok for r in reports), [str(r) for r in reports if not r.ok]
    assert reports[-1].entries == 153


def test_truncated_tail_is_found_by_the_head_row(log: AuditLog) -> None:
    fill(log, 8)
    sql(log.engine, "DELETE FROM audit_entries WHERE seq > 5")
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 6 and "truncated" in (r.reason or ""), r


def test_truncation_with_the_head_row_fixed_is_found_by_a_signed_head(
    log: AuditLog, key: ec.EllipticCurvePrivateKey
) -> None:
    fill(log, 6)
    held_by_peer = log.seal(key)  # seq 7
    fill(log, 2)
    sql(log.engine, "DELETE FROM audit_entries WHERE seq > 5")
    sql(log.engine, "UPDATE audit_head SET seq = 5, hash = :h", h=entry_hash_at(log.engine, 5))
    assert log.verify().ok  # the chain alone cannot tell: the tail was cut cleanly
    r = log.verify(keys=[key.public_key()], heads=[held_by_peer])
    assert not r.ok and r.first_bad_seq == 6 and "truncated" in (r.reason or ""), r


def test_recomputed_chain_is_caught_by_signed_checkpoints(
    log: AuditLog, key: ec.EllipticCurvePrivateKey
) -> None:
    fill(log, 4)
    log.seal(key)  # seq 5
    fill(log, 4)  # 6..9
    log.seal(key)  # seq 10
    fill(log, 2)  # 11, 12
    assert log.verify(keys=[key.public_key()]).ok
    recompute_from(log.engine, 7, {"dataset": "other_table"})
    # every hash and the head row are consistent again: the chain alone is fooled ...
    assert log.verify().ok
    # ... the checkpoint at seq 10, which the attacker cannot re-sign, is not
    r = log.verify(keys=[key.public_key()])
    assert not r.ok and r.first_bad_seq == 6 and "rewritten" in (r.reason or ""), r
    assert "6..10" in (r.reason or "")
    assert r.checkpoints == 2


def test_recomputed_chain_is_caught_by_a_head_held_elsewhere(
    log: AuditLog, key: ec.EllipticCurvePrivateKey
) -> None:
    fill(log, 5)
    head = log.seal(key)  # seq 6, kept by a peer
    fill(log, 3)
    # the attacker also strips the checkpoint's signature and recomputes everything
    sql(log.engine, "UPDATE audit_entries SET signature = NULL")
    recompute_from(log.engine, 2, {"party": "nobody"})
    assert log.verify().ok
    r = log.verify(heads=[head])
    assert not r.ok and r.first_bad_seq == 1 and "signed head" in (r.reason or ""), r


def test_signed_head_of_another_key_is_refused(
    log: AuditLog, key: ec.EllipticCurvePrivateKey
) -> None:
    fill(log, 2)
    other = ec.generate_private_key(ec.SECP256R1())
    head = log.seal(other)
    with pytest.raises(ConfigError, match="not signed by this node's key"):
        log.verify(keys=[key.public_key()], heads=[head])
    r = log.verify(keys=[key.public_key()])  # the checkpoint itself: unknown key
    assert not r.ok and r.first_bad_seq == 1 and "known key" in (r.reason or ""), r


def test_threads_append_a_gapless_valid_chain(log: AuditLog) -> None:
    threads, per = 8, 25
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(per):
                log.append("message_refused", actor=f"t{t}", party="telco", evidence={"i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    entries = list(log.entries())
    assert [e.seq for e in entries] == list(range(1, threads * per + 1))
    assert Counter(e.actor for e in entries) == {f"t{t}": per for t in range(threads)}
    # each thread's own entries are in its order
    for t in range(threads):
        assert [e.evidence["i"] for e in entries if e.actor == f"t{t}"] == list(range(per))
    assert log.verify().ok


_WORKER = """
import sys
from privfin.audit import AuditLog
from privfin.store import open_engine
log = AuditLog(open_engine(sys.argv[1]), node="bank_a")
for i in range(int(sys.argv[3])):
    log.append("data_access", actor=sys.argv[2], evidence={"i": i})
"""


def test_processes_append_a_gapless_valid_chain(log: AuditLog, store_url: str) -> None:
    procs, per = 3, 15
    running = [
        subprocess.Popen([sys.executable, "-c", _WORKER, store_url, f"p{p}", str(per)])
        for p in range(procs)
    ]
    assert [p.wait(timeout=120) for p in running] == [0] * procs
    entries = list(log.entries())
    assert [e.seq for e in entries] == list(range(1, procs * per + 1))
    assert Counter(e.actor for e in entries) == {f"p{p}": per for p in range(procs)}
    assert log.verify().ok


def test_migration_creates_the_tables_of_the_metadata(store_url: str) -> None:
    eng = open_engine(store_url)
    try:
        upgrade(eng)
        insp = inspect(eng)
        for table in metadata.sorted_tables:
            cols = {c["name"]: c for c in insp.get_columns(table.name)}
            assert set(cols) == set(table.columns.keys()), table.name
            for col in table.columns:
                got = cols[col.name]
                assert got["type"].python_type is col.type.python_type, (table.name, col.name)
                assert bool(got["nullable"]) == bool(col.nullable) or col.primary_key
            pk = insp.get_pk_constraint(table.name)["constrained_columns"]
            assert pk == [c.name for c in table.primary_key.columns]
            got_ix = {(i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table.name)}
            want_ix = {(i.name, tuple(c.name for c in i.columns)) for i in table.indexes}
            assert got_ix == want_ix, table.name
        log = AuditLog(eng, node=NODE)
        fill(log, 3)
        assert log.verify().ok and head_row(eng)[0] == 3
    finally:
        eng.dispose()
