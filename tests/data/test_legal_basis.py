"""The legal basis of a dataset's usage policy: recorded at registration, shown, kept in the
stored policy (older policies without one still load), and demanded by a job spec's dataset
use (``legal_basis: [...]``), which the holder's local check refuses when it is missing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.data.registry import LEGAL_BASES, UsagePolicy
from privfin.errors import ConfigError
from privfin.jobs.spec import DatasetUse, parse_spec_data

SPEC = """job: screen-1
purpose: screening
retention_days: 7
parties:
  bank: {datasets: {ids: {name: blacklist, legal_basis: [licensed_source]}}}
  telecom: {datasets: {ids: applicants}}
results: [telecom]
steps:
  hits:
    component: psi
    roles: {telecom: client, bank: server}
    params: {protocol: unbalanced}
    inputs: {table: datasets.ids}
"""


def _run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_policy_records_a_known_legal_basis() -> None:
    p = UsagePolicy(frozenset({"*"}), frozenset({"*"}), None, "licensed_source")
    assert UsagePolicy.from_json(p.to_json()) == p
    old = {"partners": ["*"], "purposes": ["*"], "dp_budget": None}  # stored before [18]
    assert UsagePolicy.from_json(old).legal_basis is None
    assert "legal_basis" not in UsagePolicy.from_json(old).to_json()
    with pytest.raises(ConfigError, match="legal basis 'because' unknown"):
        UsagePolicy(legal_basis="because")
    assert {"consent", "contract", "licensed_source"} <= set(LEGAL_BASES)


def test_a_dataset_use_demands_known_bases_and_keeps_its_canonical_form() -> None:
    assert DatasetUse(name="t").model_dump_json() == '{"name":"t","fields":null}'
    demand = DatasetUse(name="t", legal_basis=["contract"])
    assert '"legal_basis":["contract"]' in demand.model_dump_json()
    with pytest.raises(ConfigError, match="unknown legal basis"):
        parse_spec_data({**_spec(), "parties": {"bank": {"datasets": {"ids": {
            "name": "blacklist", "legal_basis": ["hearsay"]}}}, "telecom": {}}})  # fmt: skip


def _spec() -> dict[str, object]:
    import yaml

    raw = yaml.safe_load(SPEC)
    assert isinstance(raw, dict)
    return raw


def test_validate_refuses_a_blacklist_without_licensed_source(tmp_path: Path) -> None:
    node = tmp_path / "node.yaml"
    node.write_text(
        "party: bank\nport: 8443\nstate_dir: ./state\ncert: ./bank.crt\nkey: ./bank.key\n"
        "peers:\n  telecom: {url: 'https://127.0.0.1:8444', cert: ./telecom.crt}\n"
    )
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"id": ["a", "b"]}).to_csv(ids, index=False)
    spec = tmp_path / "screen.yaml"
    spec.write_text(SPEC)
    register = ["data", "register", "blacklist", ids, "--config", node, "--id-column", "id",
                "--partner", "*",
                "--purpose", "*", "--default-level", "C1"]  # fmt: skip
    code, out = _run(*register)
    assert code == 0, out
    assert "legal basis: (not recorded)" in out
    code, out = _run("job", "validate", spec, "--config", node, "--no-estimate")
    assert code == 1 and "records no legal basis" in out and "licensed_source" in out, out
    code, out = _run(*register, "--legal-basis", "contract", "--replace")
    assert code == 0 and "legal basis: contract" in out, out
    code, out = _run("job", "validate", spec, "--config", node, "--no-estimate")
    assert code == 1 and "records 'contract'" in out, out
    code, out = _run(*register, "--legal-basis", "licensed_source", "--replace")
    assert code == 0, out
    code, out = _run("job", "validate", spec, "--config", node, "--no-estimate")
    assert code == 0 and "valid" in out, out
    code, out = _run("data", "show", "blacklist", "--config", node)
    assert "legal basis: licensed_source" in out
    code, out = _run(*register, "--replace")  # kept when not given again
    assert "legal basis: licensed_source" in out
    code, out = _run(*register, "--legal-basis", "gossip", "--replace")
    assert code != 0


def test_the_approval_inbox_shows_the_basis_recorded_and_demanded() -> None:
    from privfin.jobs.negotiation import usage_summary
    from privfin.node.dashboard.pages import approvals_page

    spec = parse_spec_data(_spec())
    uses = usage_summary(spec, "bank", {"blacklist": {"id": "C2"}}, {"blacklist": None})
    d = uses["datasets"]["ids"]
    assert d["legal_basis"] is None and d["legal_basis_required"] == ["licensed_source"]
    view = {"job": "screen-1", "status": "pending", "initiator": "telecom", "decisions": {},
            "waiting_for": ["bank"], "spec_sha256": "0" * 64, "uses": uses}  # fmt: skip
    page = str(approvals_page([view], show_all=False, me="bank"))
    assert "not recorded" in page and "licensed_source" in page
    uses = usage_summary(spec, "bank", {}, {"blacklist": "licensed_source"})
    view["uses"] = uses
    page = str(approvals_page([view], show_all=False, me="bank"))
    assert "not recorded" not in page and page.count("licensed_source") == 2
