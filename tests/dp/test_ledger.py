"""[12] The budget ledger: reserve -> commit/release, BudgetExceeded before any data is
touched, concurrency (threads and processes), persistence across reopen, the audit hook, the
registry's dp_budget as the dataset's total."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from privfin.data.registry import DatasetRegistry, UsagePolicy
from privfin.dp.ledger import (
    DEFAULT_DELTA,
    BudgetExceeded,
    BudgetLedger,
    LedgerEvent,
)
from privfin.dp.mechanisms import PrivacyCost
from privfin.errors import BudgetExceededError, ConfigError
from privfin.store import open_engine, upgrade

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    eng = open_engine(store_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def _reserve(ledger: BudgetLedger, eps: float, *, party: str = "telco", job: str = "j1") -> str:
    return ledger.reserve(
        "loans", PrivacyCost(eps), party=party, job=job, mechanism="discrete_laplace", who="ops"
    ).id


def test_reserve_commit_release_and_refusal(engine: sa.Engine) -> None:
    events: list[LedgerEvent] = []
    ledger = BudgetLedger(engine, on_event=events.append)
    with pytest.raises(BudgetExceeded, match="no differential-privacy budget is set"):
        _reserve(ledger, 0.1)
    ledger.set_budget("loans", 1.0, 1e-6, who="owner")
    a = _reserve(ledger, 0.4)
    b = _reserve(ledger, 0.4)
    with pytest.raises(BudgetExceeded, match=r"needs epsilon 0.4, 0.2 of 1 remains"):
        _reserve(ledger, 0.4)
    ledger.commit(a, who="ops")
    ledger.release(b, who="ops")  # nothing left the node: given back
    assert ledger.spent("loans") == pytest.approx((0.4, 0.0))
    c = _reserve(ledger, 0.6)  # exactly the rest fits (float sums have a tiny slack)
    ledger.commit(c, who="ops")
    budget = ledger.budget("loans")
    assert budget is not None and budget.remaining_epsilon == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="is committed, not reserved"):
        ledger.release(c, who="ops")
    with pytest.raises(ConfigError, match="no DP reservation"):
        ledger.commit("nope", who="ops")
    kinds = [e.kind for e in events]
    assert kinds == [
        "refuse", "budget", "reserve", "reserve", "refuse", "commit", "release", "reserve",
        "commit",
    ]  # fmt: skip
    assert events[2].job == "j1" and events[2].mechanism == "discrete_laplace"
    assert BudgetExceeded is BudgetExceededError


def test_delta_budget_and_party_caps(engine: sa.Engine) -> None:
    ledger = BudgetLedger(engine)
    ledger.set_budget("loans", 5.0, 1e-6, who="owner")
    ledger.set_budget("loans", 1.0, 1e-6, party="telco", who="owner")
    ledger.reserve(
        "loans", PrivacyCost(0.5, 8e-7), party="telco", job="j", mechanism="dpsgd", who="ops"
    )
    with pytest.raises(BudgetExceeded, match="delta"):
        ledger.reserve(
            "loans", PrivacyCost(0.1, 5e-7), party="shop", job="j", mechanism="g", who="ops"
        )
    with pytest.raises(BudgetExceeded, match="party 'telco'"):
        _reserve(ledger, 0.6, party="telco")
    _reserve(ledger, 0.6, party="shop")  # within the total, no cap for shop
    cap = ledger.budget("loans", "telco")
    assert cap is not None and cap.spent_epsilon == pytest.approx(0.5)
    assert ledger.budget("loans", "shop") is None


def test_spend_context_commits_or_releases(engine: sa.Engine) -> None:
    ledger = BudgetLedger(engine)
    ledger.set_budget("loans", 1.0, who="owner")
    with ledger.spend("loans", PrivacyCost(0.3), party="p", job="j", mechanism="m", who="w"):
        pass
    with (
        pytest.raises(RuntimeError),
        ledger.spend("loans", PrivacyCost(0.3), party="p", job="j", mechanism="m", who="w"),
    ):
        raise RuntimeError("failed before anything left")
    states = [s.state for s in ledger.history("loans")]
    assert sorted(states) == ["committed", "released"]
    assert ledger.spent("loans")[0] == pytest.approx(0.3)


def test_registry_dp_budget_is_the_total(engine: sa.Engine, tmp_path: Path) -> None:
    csv = tmp_path / "loans.csv"
    pd.DataFrame({"id": ["a", "b"], "x": [1, 2]}).to_csv(csv, index=False)
    registry = DatasetRegistry(engine)
    registry.register("loans", csv, id_column="id", policy=UsagePolicy(dp_budget=0.5))
    ledger = BudgetLedger(engine, registry)
    b = ledger.budget("loans")
    assert b is not None and (b.epsilon, b.delta) == (0.5, DEFAULT_DELTA)
    with pytest.raises(BudgetExceeded, match=r"0\.5 of 0\.5 remains"):
        _reserve(ledger, 0.6)
    ledger.set_budget("loans", 2.0, 1e-7, who="owner")  # written to the registry's policy
    assert registry.get("loans").policy.dp_budget == 2.0
    b = ledger.budget("loans")
    assert b is not None and (b.epsilon, b.delta) == (2.0, 1e-7)
    _reserve(ledger, 0.6)


def test_persists_across_reopen(store_url: str) -> None:
    eng = open_engine(store_url)
    upgrade(eng)
    ledger = BudgetLedger(eng)
    ledger.set_budget("loans", 1.0, who="owner")
    a = _reserve(ledger, 0.25)
    _reserve(ledger, 0.25)  # reserved, never settled: a crash keeps it counted
    ledger.commit(a, who="ops")
    eng.dispose()
    eng2 = open_engine(store_url)
    upgrade(eng2)
    again = BudgetLedger(eng2)
    assert again.spent("loans") == pytest.approx((0.5, 0.0))
    hist = again.history("loans")
    assert [h.state for h in hist].count("reserved") == 1
    assert {h.who for h in hist} == {"ops"} and all(h.job == "j1" for h in hist)
    with pytest.raises(BudgetExceeded):
        _reserve(again, 0.51)
    eng2.dispose()


def test_concurrent_threads_never_overspend(engine: sa.Engine) -> None:
    ledger = BudgetLedger(engine)
    ledger.set_budget("loans", 1.0, who="owner")
    ok: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        for k in range(8):
            try:
                rid = _reserve(ledger, 0.05, job=f"t{i}-{k}")
            except BudgetExceeded:
                with lock:
                    refused.append("x")
            else:
                with lock:
                    ok.append(rid)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 20 and len(refused) == 28  # 1.0 / 0.05 exactly, 48 attempts
    assert ledger.spent("loans")[0] == pytest.approx(1.0)


_WORKER = """
import sys
from privfin.dp.ledger import BudgetExceeded, BudgetLedger
from privfin.dp.mechanisms import PrivacyCost
from privfin.store import open_engine
ledger = BudgetLedger(open_engine(sys.argv[1]))
got = 0
for k in range(10):
    try:
        ledger.reserve("loans", PrivacyCost(0.1), party="p", job=f"{sys.argv[2]}-{k}",
                       mechanism="m", who="proc")
        got += 1
    except BudgetExceeded:
        pass
print(got)
"""


def test_concurrent_processes_never_overspend(engine: sa.Engine, store_url: str) -> None:
    ledger = BudgetLedger(engine)
    ledger.set_budget("loans", 2.0, who="owner")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", _WORKER, store_url, f"p{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(4)
    ]
    got = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        got.append(int(out.strip()))
    assert sum(got) == 20  # 2.0 / 0.1 out of 40 attempts
    assert ledger.spent("loans")[0] == pytest.approx(2.0)
    assert len({s.job for s in ledger.history("loans")}) == 20


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_budgets_are_rejected(engine: sa.Engine, bad: float) -> None:
    ledger = BudgetLedger(engine)
    with pytest.raises(ConfigError, match="budget must be a finite number >= 0"):
        ledger.set_budget("loans", bad, who="owner")
