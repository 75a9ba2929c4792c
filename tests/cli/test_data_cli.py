"""``privfin data register|list|show`` against a node's store (node.yaml's default SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.data.registry import DatasetRegistry, Level
from privfin.errors import ConfigError, DataPolicyError
from privfin.node.config import load_config
from privfin.store import open_engine


@pytest.fixture
def node_yaml(tmp_path: Path) -> Path:
    p = tmp_path / "node.yaml"
    p.write_text(
        "party: bank\nport: 8443\nstate_dir: ./state\ncert: ./bank.crt\nkey: ./bank.key\n"
        "peers:\n  telecom: {url: 'https://127.0.0.1:8444', cert: ./telecom.crt}\n"
    )
    return p


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    p = tmp_path / "loans.csv"
    pd.DataFrame(
        {"cust": ["a", "b", "c"], "income": [1.5, 2.5, 3.5], "pin": ["1", "2", "3"], "y": [0, 1, 0]}
    ).to_csv(p, index=False)
    return p


def _run(*args: str | Path) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output, result.exception


def test_register_list_show(node_yaml: Path, csv: Path) -> None:
    code, out, exc = _run(
        "data",
        "register",
        "loans",
        csv,
        "--config",
        node_yaml,
        "--id-column",
        "cust",
        "--label",
        "y",
        "--level",
        "pin=C3",
        "--level",
        "y=c1",
        "--partner",
        "telecom",
        "--purpose",
        "credit scoring",
    )
    assert (code, exc) == (0, None), out
    assert "dataset 'loans' registered: version 1, 3 rows" in out
    assert "note:" not in out  # telecom is a pinned peer
    # the node (same node.yaml) sees it in its own store, with the levels given
    cfg = load_config(node_yaml)
    assert Path(cfg.store_url()) == (node_yaml.parent / "state" / "node.sqlite").resolve()
    registry = DatasetRegistry(open_engine(cfg.store_url()))
    info = registry.get("loans")
    assert {f.name: f.level for f in info.fields} == {
        "cust": Level.C2,
        "income": Level.C2,
        "pin": Level.C3,
        "y": Level.C1,
    }
    registry.check_use(
        "loans",
        ["cust", "income", "y"],
        partner="telecom",
        purpose="credit scoring",
        keeps_private=True,
    )
    with pytest.raises(DataPolicyError):
        registry.check_use(
            "loans", ["pin"], partner="telecom", purpose="credit scoring", keeps_private=True
        )

    code, out, _ = _run("data", "list", "--config", node_yaml)
    assert code == 0
    line = next(x for x in out.splitlines() if "loans" in x)
    assert line.split("│")[1:-1] == [
        " loans ",
        "   1 ",
        " csv  ",
        "    3 ",
        " 1  ",
        " 2  ",
        " 1  ",
        " telecom  ",
        " credit scoring ",
    ]
    code, out, _ = _run("data", "show", "loans", "--config", node_yaml)
    assert code == 0
    assert info.digest in out
    assert "purposes:    credit scoring" in out
    rows = {x.split("│")[1].strip(): x for x in out.splitlines() if x.count("│") == 5}
    assert rows["pin"].split("│")[3].strip() == "C3"
    assert rows["cust"].split("│")[4].strip() == "id"
    code, out, _ = _run("data", "show", "loans", "--config", node_yaml, "--json")
    shown = json.loads(out)
    assert shown.pop("dp")["budget"] is None  # [12] the DP ledger's view: no budget set
    assert shown == info.public()

    # re-register: same content, new policy -> version 2
    code, out, _ = _run(
        "data",
        "register",
        "loans",
        csv,
        "--config",
        node_yaml,
        "--id-column",
        "cust",
        "--partner",
        "ecommerce",
        "--replace",
    )
    assert code == 0
    assert "re-registered (was version 1): version 2" in out
    assert "note: partner 'ecommerce' is not a pinned peer" in out
    assert "(none: no job may use it)" in out  # no purpose given: none allowed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "--id-column", "cust"], "does not exist"),
        (
            ["loans.csv", "--id-column", "id"],
            "id column 'id' is not in 'x'; available columns: cust, income, pin, y",
        ),
        (["loans.csv", "--id-column", "cust", "--level", "pin"], "bad --level 'pin': use FIELD="),
        (["loans.csv", "--id-column", "cust", "--level", "pin=C5"], "bad --level 'pin=C5'"),
        (
            ["loans.csv", "--id-column", "cust", "--default-level", "high"],
            "bad --default-level 'high'",
        ),
        (["sqlite:///nowhere.db", "--id-column", "cust"], "needs a query (--query)"),
    ],
)
def test_register_errors_are_one_line(
    node_yaml: Path, csv: Path, args: list[str], message: str
) -> None:
    args = [str(csv.parent / a) if a.endswith(".csv") else a for a in args]
    _, _, exc = _run("data", "register", "x", *args, "--config", node_yaml)
    assert isinstance(exc, ConfigError)
    assert message in str(exc)
    assert "\n" not in str(exc)


def test_show_unknown_and_empty_list(node_yaml: Path) -> None:
    code, out, _ = _run("data", "list", "--config", node_yaml)
    assert (code, out.strip()) == (0, "no datasets registered")
    _, _, exc = _run("data", "show", "nope", "--config", node_yaml)
    assert isinstance(exc, ConfigError)
    assert "dataset 'nope' is not registered on this node" in str(exc)


def test_dp_budget_and_spent_in_show(node_yaml: Path, csv: Path) -> None:
    """[12] the DP budget is set by the data owner; the epsilon spent shows in `data show`."""
    code, out, exc = _run(
        "data", "register", "loans", csv, "--config", node_yaml, "--id-column", "cust",
        "--dp-budget", "2.5",
    )  # fmt: skip
    assert code == 0, (out, exc)
    code, out, exc = _run("data", "show", "loans", "--config", node_yaml)
    assert code == 0, (out, exc)
    assert "dp budget:   2.5" in out
    assert "dp spent:    epsilon 0 of 2.5 (delta 1e-06)" in out
    from privfin.dp.ledger import BudgetLedger
    from privfin.dp.mechanisms import PrivacyCost

    engine = open_engine(load_config(node_yaml).store_url())
    ledger = BudgetLedger(engine, DatasetRegistry(engine))
    ledger.reserve(
        "loans", PrivacyCost(0.75), party="telecom", job="j1", mechanism="count", who="t"
    )
    code, out, exc = _run("data", "budget", "loans", "--config", node_yaml, "--epsilon", "3")
    assert code == 0, (out, exc)
    assert "spent epsilon 0.75" in out
    code, out, exc = _run("data", "show", "loans", "--config", node_yaml, "--json")
    assert code == 0, (out, exc)
    shown = json.loads(out)
    assert shown["policy"]["dp_budget"] == 3.0
    assert shown["dp"]["spent_epsilon"] == 0.75
    assert shown["dp"]["spends"][0]["job"] == "j1"
    # re-registering keeps the budget
    code, out, exc = _run(
        "data", "register", "loans", csv, "--config", node_yaml, "--id-column", "cust",
        "--replace", "--partner", "telecom",
    )  # fmt: skip
    assert code == 0, (out, exc)
    assert DatasetRegistry(engine).get("loans").policy.dp_budget == 3.0
    engine.dispose()
