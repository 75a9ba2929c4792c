"""Evidence bundles: export (directory and zip, whole log, one job, from a seq), offline check,
and every kind of tampering with a bundle found."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from _audithelp import bundle_lines, fill, recompute_from, sql
from cryptography.hazmat.primitives.asymmetric import ec

from privfin.audit import AuditEntry, AuditLog, bundle_evidence, bundle_head, verify_bundle
from privfin.audit.chain import canonical, entry_hash
from privfin.errors import ConfigError
from privfin.federation.tls import create_identity


@pytest.fixture
def sample(log: AuditLog, key: ec.EllipticCurvePrivateKey) -> AuditLog:
    fill(log, 5, job="j1")
    log.seal(key)  # 6
    fill(log, 4, job="j2")  # 7..10
    return log


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _write_manifest(path: Path, m: dict) -> None:
    (path / "manifest.json").write_text(json.dumps(m))


def test_signed_bundle_verifies_offline(
    sample: AuditLog, key: ec.EllipticCurvePrivateKey, cert: bytes, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    out = sample.export(
        tmp_path / "b", key=key, certificate=cert, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1] == (10, 10)
    m = _manifest(out)
    assert (m["node"], m["count"], m["first_seq"], m["last_seq"]) == ("bank_a", 10, 1, 10)
    assert m["head"] == {"seq": 10, "hash": sample.head()[1]} and m["complete"]
    assert m["actions"]["checkpoint"] == 1 and sum(m["actions"].values()) == 10
    assert [AuditEntry.from_json(x) for x in bundle_lines(out)] == list(sample.entries())
    r = verify_bundle(out, certificate=cert)
    assert r.ok and r.entries == 10 and r.signer and r.signer.startswith("sha256:"), r
    assert verify_bundle(out).ok  # with the certificate it carries
    assert (out / "entries.jsonl").stat().st_mode & 0o777 == 0o600


def test_zip_job_and_since_bundles(sample: AuditLog, tmp_path: Path) -> None:
    z = sample.export(tmp_path / "all.zip")
    with zipfile.ZipFile(z) as zf:
        assert set(zf.namelist()) == {"manifest.json", "entries.jsonl"}
    r = verify_bundle(z)
    assert r.ok and r.entries == 10 and r.signer is None and "UNSIGNED" in str(r), r
    j = sample.export(tmp_path / "j2", job="j2")
    r = verify_bundle(j)
    assert r.ok and r.entries == 4 and not r.complete, r
    assert {e["job"] for e in map(json.loads, bundle_lines(j))} == {"j2"}
    m = _manifest(j)
    _write_manifest(j, {**m, "head": {"seq": 8, "hash": m["head"]["hash"]}})
    r = verify_bundle(j)
    assert not r.ok and r.first_bad_seq == 10 and "after the node's head" in (r.reason or ""), r
    s = sample.export(tmp_path / "since", since=8)
    r = verify_bundle(s)
    assert r.ok and (r.first_seq, r.last_seq, r.entries) == (8, 10, 3), r


def test_edited_line_is_found_at_its_seq(sample: AuditLog, tmp_path: Path) -> None:
    out = sample.export(tmp_path / "b")
    lines = bundle_lines(out)
    obj = json.loads(lines[3])
    obj["dataset"] = "other"
    lines[3] = canonical(obj).decode() + "\n"
    (out / "entries.jsonl").write_text("".join(lines))
    r = verify_bundle(out)
    assert not r.ok and r.first_bad_seq == 4 and "edited" in (r.reason or ""), r


def test_edited_line_with_its_hash_recomputed_breaks_the_next_link(
    sample: AuditLog, tmp_path: Path
) -> None:
    out = sample.export(tmp_path / "b")
    lines = bundle_lines(out)
    obj = json.loads(lines[3])
    obj["dataset"] = "other"
    obj["hash"] = entry_hash({k: v for k, v in obj.items() if k not in ("hash", "signature")})
    lines[3] = canonical(obj).decode() + "\n"
    (out / "entries.jsonl").write_text("".join(lines))
    r = verify_bundle(out)
    assert not r.ok and r.first_bad_seq == 5 and "prev_hash" in (r.reason or ""), r


def test_removed_and_reordered_lines_are_found(sample: AuditLog, tmp_path: Path) -> None:
    out = sample.export(tmp_path / "b")
    lines = bundle_lines(out)
    (out / "entries.jsonl").write_text("".join(lines[:4] + lines[5:]))
    r = verify_bundle(out)
    assert not r.ok and r.first_bad_seq == 5 and "missing" in (r.reason or ""), r
    (out / "entries.jsonl").write_text("".join([*lines[:2], lines[3], lines[2], *lines[4:]]))
    r = verify_bundle(out)
    assert not r.ok and r.first_bad_seq == 3, r
    (out / "entries.jsonl").write_text("".join(lines[:8]))  # tail cut
    r = verify_bundle(out)
    assert not r.ok and r.first_bad_seq == 9 and "manifest says 10" in (r.reason or ""), r


def test_unsigned_bundle_rewritten_consistently_passes_but_a_signed_one_does_not(
    sample: AuditLog, key: ec.EllipticCurvePrivateKey, cert: bytes, tmp_path: Path
) -> None:
    """Honest limit: an unsigned bundle proves only its own consistency."""
    for signed in (False, True):
        out = sample.export(
            tmp_path / f"b{signed}",
            key=key if signed else None,
            certificate=cert if signed else None,
        )
        lines = [json.loads(x) for x in bundle_lines(out)]
        lines = lines[:7]  # drop 8..10 and fix the manifest to match
        data = "".join(canonical(x).decode() + "\n" for x in lines)
        (out / "entries.jsonl").write_text(data)
        m = _manifest(out)
        m.update(
            count=7,
            last_seq=7,
            head={"seq": 7, "hash": lines[-1]["hash"]},
            entries_sha256=hashlib.sha256(data.encode()).hexdigest(),
        )
        m["actions"] = {}
        for x in lines:
            m["actions"][x["action"]] = m["actions"].get(x["action"], 0) + 1
        _write_manifest(out, m)
        r = verify_bundle(out)
        if signed:
            assert not r.ok and "signature" in (r.reason or ""), r
        else:
            assert r.ok, r


def test_manifest_edits_and_wrong_certificate_are_found(
    sample: AuditLog, key: ec.EllipticCurvePrivateKey, cert: bytes, tmp_path: Path
) -> None:
    out = sample.export(tmp_path / "b", key=key, certificate=cert)
    m = _manifest(out)
    _write_manifest(out, {**m, "entries_sha256": "0" * 64})
    r = verify_bundle(out)
    assert not r.ok and "signature" in (r.reason or ""), r
    _write_manifest(out, m)
    assert verify_bundle(out).ok
    other = create_identity("bank_a", tmp_path / "other").cert.read_bytes()
    r = verify_bundle(out, certificate=other)
    assert not r.ok and "another certificate" in (r.reason or ""), r
    unsigned = sample.export(tmp_path / "u")
    r = verify_bundle(unsigned, certificate=cert)
    assert not r.ok and "not signed" in (r.reason or ""), r
    (out / "manifest.json").write_text(json.dumps(m)[:-1] + ', "x": NaN}')
    r = verify_bundle(out)
    assert not r.ok and "expected fields" in (r.reason or ""), r
    (out / "manifest.json").write_text(
        json.dumps({**m, "filter": {"job": None, "since": 1}}).replace('"since": 1', '"since": NaN')
    )
    r = verify_bundle(out)
    assert not r.ok and "manifest edited" in (r.reason or ""), r
    (out / "manifest.json").write_text("{not json")
    r = verify_bundle(out)
    assert not r.ok and "not JSON" in (r.reason or ""), r
    with pytest.raises(ConfigError, match="no audit bundle"):
        verify_bundle(tmp_path / "nothing")


def test_tampered_zip_is_found(sample: AuditLog, tmp_path: Path) -> None:
    z = sample.export(tmp_path / "b.zip")
    with zipfile.ZipFile(z) as zf:
        manifest, lines = zf.read("manifest.json"), zf.read("entries.jsonl").splitlines(True)
    obj = json.loads(lines[0])
    obj["actor"] = "nobody"
    lines[0] = canonical(obj) + b"\n"
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("manifest.json", manifest)
        zf.writestr("entries.jsonl", b"".join(lines))
    r = verify_bundle(bad)
    assert not r.ok and r.first_bad_seq == 1, r
    (tmp_path / "junk.zip").write_bytes(b"PK not a zip")
    assert not verify_bundle(tmp_path / "junk.zip").ok


def test_bundle_head_catches_a_recomputed_log(
    sample: AuditLog, key: ec.EllipticCurvePrivateKey, cert: bytes, tmp_path: Path
) -> None:
    peer_copy = sample.export(tmp_path / "peer.zip", key=key, certificate=cert)
    fill(sample, 2)
    head = bundle_head(peer_copy, certificate=cert)
    assert sample.verify(keys=[key.public_key()], heads=[head]).ok
    recompute_from(sample.engine, 8, {"actor": "nobody"})
    r = sample.verify(heads=[head])  # without the key: the head alone catches it
    assert not r.ok and r.first_bad_seq == 1 and "7..10" not in (r.reason or ""), r
    r = sample.verify(keys=[key.public_key()], heads=[head])  # checkpoint 6 anchors 1..6
    assert not r.ok and r.first_bad_seq == 7 and "entries 7..10" in (r.reason or ""), r
    head, hashes = bundle_evidence(peer_copy, certificate=cert)
    assert sorted(hashes) == list(range(1, 11))
    r = sample.verify(heads=[head], known=hashes)  # the bundle's entries locate the rewrite
    assert not r.ok and r.first_bad_seq == 8 and "entry 8 was rewritten" in (r.reason or ""), r
    with pytest.raises(ConfigError, match="not signed"):
        bundle_head(sample.export(tmp_path / "u"))


def test_export_refuses_a_broken_log_and_an_existing_target(
    sample: AuditLog, key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not an empty directory"):
        sample.export(tmp_path / "full")
    with pytest.raises(ConfigError, match="certificate"):
        sample.export(tmp_path / "nocert", key=key)
    sql(sample.engine, "UPDATE audit_entries SET actor = 'x' WHERE seq = 2")
    with pytest.raises(ConfigError, match="seq 2"):
        sample.export(tmp_path / "broken.zip")
    assert not (tmp_path / "broken.zip").exists()
    with pytest.raises(ConfigError, match="seq 2"):
        sample.export(tmp_path / "broken")
    assert not (tmp_path / "broken").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(ConfigError, match="seq 2"):
        sample.export(tmp_path / "mine")
    assert (tmp_path / "mine").is_dir() and not list((tmp_path / "mine").iterdir())
    assert not list(tmp_path.glob(".broken.zip*"))
