"""[12] DP PSI-cardinality (SPEC.md §10): the receiver gets a DP release of the intersection
size per segment (the exact size never reaches it), the sender's dataset budget is charged
per segment before its data is read, and deviations on either side abort the job."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from privfin.config import Settings
from privfin.dp.ledger import BudgetExceeded, BudgetLedger, LedgerEvent
from privfin.dp.release import DummyLaw
from privfin.errors import ConfigError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub, MemoryTransport
from privfin.jobs.local import LocalRun
from privfin.jobs.spec import parse_spec_data
from privfin.psi.api import simulate
from privfin.psi.component import psi_component
from privfin.runtime import simulate as run_simulation
from privfin.store import open_engine, upgrade

ALPHA = 1e-3  # false-alarm rate of the goodness-of-fit test


def _sets(n_r: int, n_s: int, overlap: int) -> tuple[list[str], list[str]]:
    common = [f"both-{i}" for i in range(overlap)]
    return (
        common + [f"r-{i}" for i in range(n_r - overlap)],
        common + [f"s-{i}" for i in range(n_s - overlap)],
    )


def _law_pmf(law: DummyLaw) -> np.ndarray:
    r = math.exp(-law.epsilon)
    k = np.arange(-law.shift, law.shift + 1)
    w = r ** np.abs(k)
    return np.asarray(w / w.sum())


def test_released_counts_follow_the_dummy_law() -> None:
    """Seeded runs of the real protocol, several segments each: ``revealed - true`` per
    segment must follow the shifted discrete Laplace conditioned on the slots (chi-square
    at a fixed false-alarm rate; the same samples reject a slightly wider law)."""
    law = DummyLaw(1.0, 1e-3)
    labels = ["a", "b", "c", "d", "e", "f"]
    x, _ = _sets(12, 0, 0)
    # sender: 6 segments of 4 items, segment j shares j items with the receiver
    y = [x[i] for i in range(6)] + [f"s-{i}" for i in range(18)]
    seg = ["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["d"] * 4 + ["e"] * 4 + ["f"] * 4
    table = pd.DataFrame({"id": y, "tier": seg})
    truth = Counter(s for s, i in zip(seg, y, strict=True) if i in set(x))
    params = {"protocol": "ecdh", "cardinality_only": True, "reveal_to": "receiver",
              "normalize": "exact", "dp_epsilon": 1.0, "dp_delta": 1e-3, "segments": "tier",
              "segment_values": labels}  # fmt: skip
    noise: list[int] = []
    for seed in range(40):
        out = run_simulation(
            psi_component,
            {"bank": ("receiver",), "shop": ("sender",)},
            params=params,
            inputs={"bank": {"ids": x}, "shop": {"table": table}},
            component_name="psi",
            seed=seed,
        )
        release = out["bank"]["dp"]
        assert out["shop"]["dp"] is None and out["bank"]["size"] is None
        assert release["shift"] == law.shift and release["slots"] == law.slots
        for label in labels:
            noise.append(release["segments"][label]["revealed"] - truth[label] - law.shift)
    k = np.arange(-law.shift, law.shift + 1)
    counts = Counter(noise)
    assert set(counts) <= set(k.tolist())  # never outside the slots
    obs = np.array([counts.get(int(v), 0) for v in k], dtype=float)

    def pvalue(pmf: np.ndarray) -> float:
        exp = pmf * len(noise)
        keep = exp >= 5
        o = np.array([*obs[keep], obs[~keep].sum()])
        e = np.array([*exp[keep], exp[~keep].sum()])
        return float(stats.chisquare(o, e).pvalue)

    assert pvalue(_law_pmf(law)) > ALPHA
    wider = DummyLaw(0.6, 1e-3)  # same support, 40% smaller epsilon
    w = math.exp(-0.6) ** np.abs(k)
    assert pvalue(w / w.sum()) < ALPHA, wider


@pytest.mark.parametrize("curve", ["x25519", "ristretto255"])
def test_the_exact_count_never_reaches_the_receiver(curve: str) -> None:
    x, y = _sets(40, 30, 17)
    hub = MemoryHub()
    got = simulate({"bank": x, "shop": y}, cardinality_only=True, reveal_to="receiver",
                   seed=3, hub=hub, params={"dp_epsilon": 0.5, "curve": curve})  # fmt: skip
    release = got["bank"]
    assert isinstance(release, dict) and "shop" not in got
    law = DummyLaw(0.5, 1e-6)
    est = release["segments"]["all"]
    assert est["low"] <= est["value"] <= est["high"]
    assert est["value"] == max(0, est["revealed"] - law.shift)
    assert 17 <= est["revealed"] <= 17 + law.slots
    # what the receiver was sent: hellos and blinded points / fingerprints only, no count
    kinds = Counter(
        (type(codec.decode(p)).__name__, k.tag) for k, p in hub.wire if k.receiver == "bank"
    )
    assert {kind for kind, _ in kinds} == {"Hello", "Chunk"}
    assert {tag for _, tag in kinds} == {"hello", "dp0.b", "dp0.ab"}
    # the sender's lists have the fixed, public lengths: n_s + slots and n_r + slots rows
    rows = Counter()
    for k, p in hub.wire:
        if k.receiver == "bank" and k.tag != "hello":
            rows[k.tag] += codec.decode(p).rows.shape[0]
    assert rows == {"dp0.b": 30 + law.slots, "dp0.ab": 40 + law.slots}


def test_params_are_checked() -> None:
    base = {"protocol": "ecdh", "cardinality_only": True, "reveal_to": "receiver"}
    from privfin.psi.component import PsiParams

    with pytest.raises(ConfigError, match="reveal_to: receiver"):
        PsiParams.from_mapping({**base, "reveal_to": "both", "dp_epsilon": 1.0})
    with pytest.raises(ConfigError, match="cardinality_only"):
        PsiParams.from_mapping({**base, "cardinality_only": False, "dp_epsilon": 1.0})
    with pytest.raises(ConfigError, match="epsilon must be a finite number > 0"):
        PsiParams.from_mapping({**base, "dp_epsilon": 0})
    with pytest.raises(ConfigError, match="delta"):
        PsiParams.from_mapping({**base, "dp_epsilon": 1.0, "dp_delta": 0})
    with pytest.raises(ConfigError, match="distinct"):
        PsiParams.from_mapping({**base, "dp_epsilon": 1.0, "segments": "t",
                                "segment_values": ["a", "a"]})  # fmt: skip
    with pytest.raises(ConfigError, match="set dp_epsilon"):
        PsiParams.from_mapping({**base, "segments": "t", "segment_values": ["a"]})
    p = PsiParams.from_mapping({**base, "dp_epsilon": 0.3, "segments": "t",
                                "segment_values": ["a", "b", 3]})  # fmt: skip
    assert [(c.epsilon, c.delta) for c, _ in p.dp_charges()] == [(0.3, 1e-6)] * 3


def _wire_tamper(monkeypatch: pytest.MonkeyPatch, sender: str, tag: str) -> None:
    """``sender`` repeats one of its rows under ``tag`` (a deviating party)."""
    original = MemoryTransport.send

    def send(self: MemoryTransport, key: Any, payload: bytes) -> None:
        if key.sender == sender and key.tag == tag:
            msg = codec.decode(payload)
            if msg.offset == 0 and msg.rows.shape[0] > 1:
                rows = msg.rows.copy()
                rows[0] = rows[1]
                payload = codec.encode(type(msg)(offset=0, rows=rows))
        original(self, key, payload)

    monkeypatch.setattr(MemoryTransport, "send", send)


@pytest.mark.parametrize(
    ("deviant", "tag", "honest"),
    [("shop", "dp0.b", "bank"), ("shop", "dp0.ab", "bank"), ("bank", "dp0.a", "shop")],
)
def test_a_party_repeating_an_item_is_detected(
    monkeypatch: pytest.MonkeyPatch, deviant: str, tag: str, honest: str
) -> None:
    x, y = _sets(20, 20, 5)
    _wire_tamper(monkeypatch, deviant, tag)
    with pytest.raises(ProtocolAbort, match="repeated") as info:
        simulate({"bank": x, "shop": y}, cardinality_only=True, reveal_to="receiver", seed=1,
                 params={"dp_epsilon": 1.0})  # fmt: skip
    assert info.value.party == deviant


def test_parties_with_different_privacy_parameters_abort() -> None:
    x, y = _sets(10, 10, 3)

    def component(ctx: Any, params: Any, inputs: Any) -> Any:
        if ctx.party == "shop":  # the sender tries a larger epsilon (less noise)
            params = {**params, "dp_epsilon": 4.0}
        return psi_component(ctx, params, inputs)

    with pytest.raises(ProtocolAbort, match="different parameters"):
        run_simulation(
            component,
            {"bank": ("receiver",), "shop": ("sender",)},
            params={"cardinality_only": True, "normalize": "exact", "dp_epsilon": 1.0},
            inputs={"bank": {"ids": x}, "shop": {"ids": y}},
            component_name="psi",
            seed=2,
        )


# -- as a job step: the sender's scheduler charges each segment before reading the data


def _spec(job: str, epsilon: float) -> Any:
    return parse_spec_data(
        {
            "job": job,
            "purpose": "marketing: customers shared per segment",
            "retention_days": 7,
            "parties": {
                "bank": {"datasets": {"t": "customers"}},
                "shop": {"datasets": {"t": "buyers"}},
            },
            "results": ["bank"],
            "steps": {
                "overlap": {
                    "component": "psi",
                    "roles": {"bank": "receiver", "shop": "sender"},
                    "params": {
                        "cardinality_only": True,
                        "dp_epsilon": epsilon,
                        "segments": "tier",
                        "segment_values": ["gold", "silver", "bronze"],
                    },
                    "inputs": {"table": "datasets.t"},
                }
            },
        }
    )


def test_job_step_charges_each_segment_before_the_data_is_read(tmp_path: Path) -> None:
    customers = pd.DataFrame({"id": [f"c{i}" for i in range(60)]})
    buyers = pd.DataFrame(
        {"id": [f"c{i}" for i in range(30, 90)], "tier": ["gold", "silver", "bronze"] * 20}
    )
    events: list[LedgerEvent] = []
    engine = open_engine(tmp_path / "shop-ledger.sqlite")
    upgrade(engine)
    ledger = BudgetLedger(engine, on_event=events.append)
    ledger.set_budget("buyers", 1.0, delta=1e-4, who="shop-owner")
    reads: list[str] = []

    def run(job: str, epsilon: float) -> LocalRun:
        r = LocalRun(_spec(job, epsilon), {"bank": {"customers": customers},
                     "shop": {"buyers": buyers}}, tmp_path / job,
                     settings=Settings(mode="development"), seed=4,
                     ledgers={"shop": ledger})  # fmt: skip
        pipe = r.pipelines["shop"]
        inner = pipe.load_dataset

        def spy(name: str, fields: list[str] | None) -> pd.DataFrame:
            reads.append(name)
            return inner(name, fields)

        pipe.load_dataset = spy  # type: ignore[method-assign]
        r.run()
        return r

    done = run("dpca-1", 0.25)
    summary = done.output("bank", "overlap", "summary")["dp_cardinality"]
    assert set(summary["segments"]) == {"gold", "silver", "bronze"}
    for est in summary["segments"].values():
        assert est["low"] <= est["value"] <= est["high"]
    spends = ledger.history("buyers")
    assert len(spends) == 3 and {s.state for s in spends} == {"committed"}
    assert sorted(s.mechanism for s in spends) == [
        f"psi_cardinality:dummy_dlap[{t}]" for t in ("bronze", "gold", "silver")
    ]
    assert {(s.job, s.step, s.party) for s in spends} == {("dpca-1", "overlap", "bank")}
    assert ledger.spent("buyers") == pytest.approx((0.75, 3e-6))
    assert reads == ["buyers"]
    # 3 x 0.1 more would exceed the budget: refused before the dataset is read, and the
    # segments reserved before the refused one are returned
    with pytest.raises(BudgetExceeded):
        run("dpca-2", 0.1)
    assert reads == ["buyers"]
    assert ledger.spent("buyers") == pytest.approx((0.75, 3e-6))
    kinds = [e.kind for e in events if e.job == "dpca-2"]
    assert kinds == ["reserve", "reserve", "refuse", "release", "release"]
