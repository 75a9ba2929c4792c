"""``privfin audit verify|export|verify-bundle|seal`` through the real command (typer's
CliRunner): exit 0 when the log verifies, 1 when it does not, 2 with one line for a mistake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from _audithelp import NODE, fill, recompute_from, sql
from typer.testing import CliRunner

from privfin.audit import AuditLog
from privfin.cli.main import app
from privfin.federation.tls import create_identity
from privfin.store import open_engine, upgrade


@pytest.fixture
def node(store_url: str, tmp_path: Path) -> Iterator[tuple[Path, AuditLog]]:
    ident = create_identity(NODE, tmp_path / "keys")
    cfg = {
        "party": NODE,
        "port": 18443,
        "state_dir": str(tmp_path / "state"),
        "cert": str(ident.cert),
        "key": str(ident.key),
        "store": store_url,
    }
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(cfg))
    engine = open_engine(store_url)
    upgrade(engine)
    yield path, AuditLog(engine, node=NODE)
    engine.dispose()


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def test_verify_ok_then_failed_at_the_edited_seq(node: tuple[Path, AuditLog]) -> None:
    config, log = node
    fill(log, 5)
    code, out, _ = run("audit", "verify", "--config", str(config))
    assert code == 0 and out.startswith("ok: 5 entries"), out
    sql(log.engine, "UPDATE audit_entries SET job = 'j9' WHERE seq = 3")
    code, out, _ = run("audit", "verify", "--config", str(config))
    assert code == 1 and out.strip().startswith("FAILED at seq 3:"), out
    assert len(out.strip().splitlines()) == 1


def test_seal_export_and_verify_bundle(node: tuple[Path, AuditLog], tmp_path: Path) -> None:
    config, log = node
    fill(log, 4, job="j1")
    code, out, _ = run("audit", "seal", "--config", str(config), "--out", str(tmp_path / "h"))
    head = json.loads(out)
    assert code == 0 and head["seq"] == 5 and json.loads((tmp_path / "h").read_text()) == head
    fill(log, 2, job="j2")
    code, out, _ = run("audit", "export", "--config", str(config), "--out", str(tmp_path / "b"))
    assert code == 0 and "ok: node bank_a, 7 entries" in out and "signed by sha256:" in out, out
    code, out, _ = run(
        "audit", "export", "--config", str(config), "--out", str(tmp_path / "j.zip"), "--job", "j2"
    )
    assert code == 0 and "2 entries" in out, out
    cert = yaml.safe_load(config.read_text())["cert"]
    code, out, _ = run("audit", "verify-bundle", str(tmp_path / "b"), "--cert", cert)
    assert code == 0 and out.startswith("ok:"), out
    code, out, _ = run("audit", "verify-bundle", str(tmp_path / "j.zip"))
    assert code == 0 and "compare the signer's fingerprint" in out, out

    # the whole log is rewritten with every hash recomputed and the checkpoint unsigned:
    # only the exported bundle (or the sealed head) still tells
    sql(log.engine, "UPDATE audit_entries SET signature = NULL")
    recompute_from(log.engine, 2, {"actor": "nobody"})
    sql(log.engine, "UPDATE audit_entries SET action = 'approval' WHERE seq = 5")
    recompute_from(log.engine, 5, {})
    code, out, _ = run("audit", "verify", "--config", str(config))
    assert code == 0, out  # the chain alone is fooled
    code, out, _ = run("audit", "verify", "--config", str(config), "--against", str(tmp_path / "b"))
    assert code == 1 and "FAILED at seq 2: seq 2 does not have the hash a signed bundle" in out
    code, out, _ = run("audit", "verify", "--config", str(config), "--head", str(tmp_path / "h"))
    assert code == 1 and "FAILED at seq 1" in out, out

    lines = (tmp_path / "b" / "entries.jsonl").read_text().splitlines(True)
    (tmp_path / "b" / "entries.jsonl").write_text("".join(lines[:3] + lines[4:]))
    code, out, _ = run("audit", "verify-bundle", str(tmp_path / "b"))
    assert code == 1 and out.startswith("FAILED at seq 4"), out


def test_mistakes_are_one_line_and_exit_2(node: tuple[Path, AuditLog], tmp_path: Path) -> None:
    config, _ = node
    code, _, err = run("audit", "verify", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and err.startswith("error: cannot read node config"), err
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    code, _, err = run("audit", "export", "--config", str(config), "--out", str(tmp_path / "b"))
    assert code == 2 and "not an empty directory" in err, err
    code, _, err = run("audit", "verify-bundle", str(tmp_path / "nothing"))
    assert code == 2 and err.strip() == f"error: no audit bundle at {tmp_path / 'nothing'}"
    bad = tmp_path / "head.json"
    bad.write_text("[]")
    code, _, err = run("audit", "verify", "--config", str(config), "--head", str(bad))
    assert code == 2 and "not a signed audit head" in err, err
