"""Automatic sealing: a checkpoint when asked (a job's end) or on a timer, only if the log grew;
signed heads kept in a file outside the database, which verification uses to catch a tail cut
cleanly or a chain rewritten with every hash recomputed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from _audithelp import entry_hash_at, fill, recompute_from, sql
from cryptography.hazmat.primitives.asymmetric import ec

from privfin.audit import AuditLog
from privfin.audit.sealer import Sealer, read_heads
from privfin.errors import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sealer(log: AuditLog, key: ec.EllipticCurvePrivateKey, path: Path, **kw: object) -> Sealer:
    return Sealer(log, lambda: key, path, **kw)  # type: ignore[arg-type]


def test_seals_when_asked_and_only_if_the_log_grew(
    log: AuditLog, key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    heads = tmp_path / "audit" / "heads.jsonl"
    sealer = _sealer(log, key, heads, interval=0)
    fill(log, 3)
    assert sealer.tick() is None  # not asked, no timer
    sealer.request()
    first = sealer.tick()
    assert first is not None and first.seq == 4  # the checkpoint is entry 4
    sealer.request()
    assert sealer.tick() is None  # nothing new since: an idle node writes nothing
    fill(log, 2)
    sealer.request()
    second = sealer.tick()
    assert second is not None and second.seq == 7
    assert read_heads(heads) == [first, second]
    assert all(h.verify(key.public_key()) for h in read_heads(heads))
    assert stat.S_IMODE(heads.stat().st_mode) == 0o600
    assert log.verify(keys=[key.public_key()], heads=read_heads(heads)).heads_checked == 2
    # a new sealer (a restarted node) knows from the file what was sealed already
    again = _sealer(log, key, heads, interval=0)
    again.request()
    assert again.tick() is None


def test_seals_on_its_timer(log: AuditLog, key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    clock = Clock()
    sealer = _sealer(log, key, tmp_path / "h.jsonl", interval=60, clock=clock)
    fill(log, 2)
    assert sealer.tick() is None
    clock.now += 59
    assert sealer.tick() is None
    clock.now += 1
    head = sealer.tick()
    assert head is not None and head.seq == 3
    clock.now += 600
    assert sealer.tick() is None  # due, but nothing was appended


def test_heads_file_catches_a_clean_cut_and_a_recomputed_chain(
    log: AuditLog, key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    path = tmp_path / "heads.jsonl"
    sealer = _sealer(log, key, path, interval=0)
    fill(log, 5)
    sealer.request()
    sealer.tick()  # seq 6
    fill(log, 3)  # 7..9
    sealer.request()
    sealer.tick()  # seq 10
    keys = [key.public_key()]
    assert log.verify(keys=keys, heads=read_heads(path)).ok
    # rewrite entry 3 and recompute every hash: the chain alone is fooled, the heads are not
    recompute_from(log.engine, 3, {"dataset": "other_table"})
    assert log.verify().ok
    found = log.verify(heads=read_heads(path))
    assert not found.ok and found.first_bad_seq is not None and found.first_bad_seq <= 3, found


def test_heads_file_catches_a_tail_cut_with_the_head_row_fixed(
    log: AuditLog, key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    path = tmp_path / "heads.jsonl"
    sealer = _sealer(log, key, path, interval=0)
    fill(log, 6)
    sealer.request()
    sealer.tick()  # seq 7
    sql(log.engine, "DELETE FROM audit_entries WHERE seq > 5")
    sql(log.engine, "UPDATE audit_head SET seq = 5, hash = :h", h=entry_hash_at(log.engine, 5))
    assert log.verify().ok
    r = log.verify(keys=[key.public_key()], heads=read_heads(path))
    assert not r.ok and "truncated" in (r.reason or ""), r


def test_a_damaged_heads_file_is_reported(tmp_path: Path) -> None:
    assert read_heads(tmp_path / "none.jsonl") == []
    bad = tmp_path / "heads.jsonl"
    bad.write_text('{"node": "bank_a"}\n')
    with pytest.raises(ConfigError, match="line 1: not a signed audit head"):
        read_heads(bad)
    with pytest.raises(ValueError, match="interval"):
        Sealer(None, lambda: None, bad, interval=-1)  # type: ignore[arg-type]
