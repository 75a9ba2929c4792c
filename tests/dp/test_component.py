"""[12] The dp_release pipeline component: the data party's scheduler reserves the budget
before the dataset is read, the result party gets the noisy values and error bars only, a
refused release never reads the data, a malformed release is refused loudly."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from privfin.config import Settings
from privfin.dp.component import dp_release_component
from privfin.dp.ledger import BudgetExceeded, BudgetLedger, LedgerEvent
from privfin.dp.release import ReleaseParams, check_release_json
from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.jobs.local import LocalRun
from privfin.jobs.spec import parse_spec_data
from privfin.runtime import Context
from privfin.store import open_engine, upgrade


@pytest.fixture
def loans() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(500)],
            "amount": rng.gamma(2.0, 1000.0, 500),
            "grade": rng.choice(["A", "B"], 500),
        }
    )


def _spec(job: str, params: dict[str, Any]) -> Any:
    return parse_spec_data(
        {
            "job": job,
            "purpose": "marketing statistics",
            "retention_days": 7,
            "parties": {"bank": {"datasets": {"loans": "loans"}}, "shop": {}},
            "results": ["shop"],
            "steps": {
                "stats": {
                    "component": "dp_release",
                    "roles": {"bank": "data", "shop": "result"},
                    "params": params,
                    "inputs": {"table": "datasets.loans"},
                }
            },
        }
    )


def _ledger(tmp_path: Path, events: list[LedgerEvent]) -> BudgetLedger:
    engine = open_engine(tmp_path / "bank-ledger.sqlite")
    upgrade(engine)
    ledger = BudgetLedger(engine, on_event=events.append)
    ledger.set_budget("loans", 1.0, who="bank-owner")
    return ledger


def _run(tmp_path: Path, job: str, params: dict[str, Any], loans: pd.DataFrame,
         ledger: BudgetLedger, reads: list[str]) -> LocalRun:  # fmt: skip
    run = LocalRun(
        _spec(job, params),
        {"bank": {"loans": loans}},
        tmp_path / job,
        settings=Settings(mode="development"),
        seed=5,
        ledgers={"bank": ledger},
    )
    pipe = run.pipelines["bank"]
    inner = pipe.load_dataset

    def spy(name: str, fields: list[str] | None) -> pd.DataFrame:
        reads.append(name)
        return inner(name, fields)

    pipe.load_dataset = spy  # type: ignore[method-assign]
    run.run()
    return run


def test_release_step_charges_then_delivers(tmp_path: Path, loans: pd.DataFrame) -> None:
    events: list[LedgerEvent] = []
    ledger = _ledger(tmp_path, events)
    reads: list[str] = []
    params = {"query": "mean", "epsilon": 0.6, "column": "amount", "lower": 0, "upper": 10_000,
              "id_column": "id"}  # fmt: skip
    run = _run(tmp_path, "dp-1", params, loans, ledger, reads)
    got = run.output("shop", "stats", "release")
    mine = run.output("bank", "stats", "release")
    assert got == mine and reads == ["loans"]
    est = got["estimates"]["mean"]
    assert est["low"] <= loans["amount"].clip(0, 10_000).mean() <= est["high"]
    assert got["epsilon"] == 0.6 and got["unit"].startswith("one customer")
    (spend,) = ledger.history("loans")
    assert (spend.state, spend.job, spend.step, spend.party, spend.mechanism) == (
        "committed", "dp-1", "stats", "shop", "mean:grid_laplace",
    )  # fmt: skip
    assert [e.kind for e in events] == ["budget", "reserve", "commit"]

    # over budget: refused before the dataset is read, nothing charged
    params = {"query": "count", "epsilon": 0.5}
    with pytest.raises(BudgetExceeded, match=r"0\.4 of 1 remains"):
        _run(tmp_path, "dp-2", params, loans, ledger, reads)
    assert reads == ["loans"]  # not read a second time
    assert events[-1].kind == "refuse" and events[-1].job == "dp-2"
    assert len(ledger.history("loans")) == 1


def test_release_step_needs_a_ledger_and_a_registered_dataset(
    tmp_path: Path, loans: pd.DataFrame
) -> None:
    spec = _spec("dp-3", {"query": "count", "epsilon": 0.1})
    run = LocalRun(spec, {"bank": {"loans": loans}}, tmp_path / "x",
                   settings=Settings(mode="development"))  # fmt: skip
    with pytest.raises(ConfigError, match="no privacy-budget ledger"):
        run.run()


def test_params_are_validated() -> None:
    with pytest.raises(ConfigError, match="query must be one of"):
        ReleaseParams.from_mapping({"query": "max", "epsilon": 1.0})
    with pytest.raises(ConfigError, match="epsilon must be a finite number > 0"):
        ReleaseParams.from_mapping({"query": "count", "epsilon": 0})
    with pytest.raises(ConfigError, match="declared bounds"):
        ReleaseParams.from_mapping({"query": "sum", "epsilon": 1, "column": "x"})
    with pytest.raises(ConfigError, match=r"lower .* must be below upper"):
        ReleaseParams.from_mapping(
            {"query": "mean", "epsilon": 1, "column": "x", "lower": 3, "upper": 1}
        )
    with pytest.raises(ConfigError, match="unknown dp_release parameters"):
        ReleaseParams.from_mapping({"query": "count", "epsilon": 1, "sigma": 2})


class _Wire:
    def __init__(self, message: object) -> None:
        self.message = message

    def recv(self, peer: str, tag: str) -> object:
        return self.message


def _good() -> dict[str, Any]:
    return {
        "query": "count", "estimates": {"count": {"value": 10.0, "low": 7.0, "high": 13.0}},
        "confidence": 0.95, "epsilon": 1.0, "delta": 0.0, "mechanism": "discrete_laplace",
        "unit": "one row", "notes": {},
    }  # fmt: skip


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.pop("epsilon"),
        lambda m: m["estimates"]["count"].update(value=math.nan),
        lambda m: m["estimates"]["count"].update(value="10"),
        lambda m: m["estimates"]["count"].update(extra=1.0),
        lambda m: m.update(estimates={}),
        lambda m: m.update(unit=3),
    ],
)
def test_a_tampered_release_is_refused_loudly(tamper: Any) -> None:
    assert check_release_json(_good()) == _good()
    bad = _good()
    tamper(bad)
    with pytest.raises(DecodeError):
        check_release_json(bad)
    ctx = Context(job="j", component="stats", party="shop",
                  roles={"bank": ("data",), "shop": ("result",)},
                  channel=_Wire(bad))  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(ProtocolAbort, match="malformed DP release") as info:
        dp_release_component(ctx, {"query": "count", "epsilon": 1.0}, {})
    assert info.value.party == "bank"
