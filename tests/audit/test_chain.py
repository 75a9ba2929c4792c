"""The chain format on its own: canonical encoding, hash, entry lines, evidence checks, signed
heads, and the walk over entries (no database)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from privfin.audit.chain import (
    Action,
    AuditEntry,
    ChainWalker,
    canonical,
    digest,
    entry_hash,
    genesis_hash,
    normalise_evidence,
    sign_head,
)


def _chain(n: int, node: str = "bank_a") -> list[AuditEntry]:
    out: list[AuditEntry] = []
    prev = genesis_hash(node)
    for seq in range(1, n + 1):
        rec = {
            "seq": seq,
            "ts": 1_700_000_000_000_000 + seq,
            "node": node,
            "actor": "node",
            "action": "data_access",
            "job": "j",
            "step": None,
            "dataset": "loans",
            "party": None,
            "evidence": {"digest": f"sha256:{seq:064x}"},
            "prev_hash": prev,
        }
        prev = entry_hash(rec)
        out.append(AuditEntry(**rec, hash=prev))
    return out


def test_hash_is_sha256_of_the_domain_separated_canonical_record() -> None:
    rec = _chain(1)[0].record()
    body = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert entry_hash(rec) == hashlib.sha256(b"privfin-audit/1\n" + body.encode()).hexdigest()
    assert canonical({"b": 1, "a": "é"}) == b'{"a":"\\u00e9","b":1}'
    assert genesis_hash("bank_a") != genesis_hash("bank_b")
    assert digest("abc") == digest(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert genesis_hash("bank_a") == hashlib.sha256(b"privfin-audit/1 genesis\nbank_a").hexdigest()


def test_entry_line_round_trip_and_strict_parsing() -> None:
    e = _chain(2)[1]
    assert AuditEntry.from_json(e.to_json()) == e
    obj = json.loads(e.to_json())
    with pytest.raises(ValueError, match="canonical"):
        AuditEntry.from_json(json.dumps(obj, indent=1))  # same content, other bytes
    dup = e.to_json()[:-1] + ',"seq":3}'  # a duplicated key: json.loads keeps the last one
    with pytest.raises(ValueError):
        AuditEntry.from_json(dup)
    with pytest.raises(ValueError, match="keys"):
        AuditEntry.from_json(canonical({**obj, "extra": 1}))
    with pytest.raises(ValueError, match="integers"):
        AuditEntry.from_json(canonical({**obj, "seq": "2"}))


def test_evidence_must_be_plain_json_digests_not_data() -> None:
    assert normalise_evidence({"a": (1, 2), "b": {"c": None}}) == {"a": [1, 2], "b": {"c": None}}
    assert normalise_evidence(None) == {}
    with pytest.raises(ValueError, match="bytes"):
        normalise_evidence({"raw": b"\x00\x01"})
    with pytest.raises(ValueError, match="finite"):
        normalise_evidence({"eps": float("nan")})
    with pytest.raises(ValueError, match="string"):
        normalise_evidence({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="digests"):
        normalise_evidence({"rows": "x" * 20_000})


def test_walker_accepts_a_chain_and_names_the_first_bad_seq() -> None:
    chain = _chain(6)
    w = ChainWalker("bank_a", start_prev=genesis_hash("bank_a"))
    assert all(w.feed(e) is None for e in chain) and w.finish() is None
    assert (w.count, w.last_seq, w.last_hash) == (6, 6, chain[-1].hash)

    w = ChainWalker("bank_a", start_prev=genesis_hash("bank_a"))
    bad = [*chain[:2], chain[3], *chain[4:]]  # seq 3 removed
    fails = [w.feed(e) for e in bad]
    assert fails[2] is not None and fails[2].seq == 3 and "missing" in fails[2].reason

    w = ChainWalker("bank_a", start_prev=genesis_hash("bank_b"))  # another node's genesis
    first = w.feed(chain[0])
    assert first is not None and first.seq == 1 and "prev_hash" in first.reason


def test_signed_head_verifies_only_under_its_key_and_for_its_values() -> None:
    k1 = ec.generate_private_key(ec.SECP256R1())
    k2 = ec.generate_private_key(ec.SECP256R1())
    h = sign_head(k1, "bank_a", 5, "ab" * 32)
    assert h.verify(k1.public_key())
    assert not h.verify(k2.public_key())
    forged = type(h)(h.node, 6, h.hash, h.signature, h.key)
    assert not forged.verify(k1.public_key())
    with pytest.raises(ValueError, match="P-256"):
        sign_head(ec.generate_private_key(ec.SECP384R1()), "bank_a", 1, "00" * 32)


def test_vocabulary_is_fixed() -> None:
    assert Action("dp_spend") is Action.dp_spend
    with pytest.raises(ValueError):
        Action("made_up")


def _walk(entries: list[AuditEntry]) -> int | None:
    w = ChainWalker("bank_a", start_prev=genesis_hash("bank_a"))
    for e in entries:
        if (f := w.feed(e)) is not None:
            return f.seq
    f = w.finish()
    return None if f is None else f.seq


@given(n=st.integers(2, 12), data=st.data())
def test_every_edit_delete_and_swap_is_found_at_its_seq(n: int, data: st.DataObject) -> None:
    chain = _chain(n)
    assert _walk(chain) is None
    k = data.draw(st.integers(1, n), label="seq")
    field_name = data.draw(st.sampled_from(["ts", "actor", "job", "evidence", "prev_hash"]))
    new_value = {
        "ts": 1,
        "actor": "x",
        "job": None,
        "evidence": {"digest": "sha256:" + "f" * 64},
        "prev_hash": "0" * 64,
    }[field_name]
    edited = [*chain]
    edited[k - 1] = replace(chain[k - 1], **{field_name: new_value})
    assert _walk(edited) == k
    if k < n:
        assert _walk(chain[: k - 1] + chain[k:]) == k  # entry k deleted
        swapped = [*chain]
        swapped[k - 1], swapped[k] = chain[k], chain[k - 1]
        assert _walk(swapped) == k  # out of order
        # contents swapped, seqs kept
        a, b = chain[k - 1], chain[k]
        swapped[k - 1], swapped[k] = replace(b, seq=a.seq), replace(a, seq=b.seq)
        assert _walk(swapped) == k
