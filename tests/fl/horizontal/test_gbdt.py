"""Federated histogram GBDT: against the same histogram GBDT on the pooled rows, secure sums
against plain sums, a client dropping mid-training, too many dropouts, deviating parties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer

from privfin.config import Settings
from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.federation.codec import decode, encode
from privfin.fl.horizontal.gbdt import GBDTParams, hfl_gbdt_component
from privfin.fl.horizontal.gbdt import client as client_module
from privfin.fl.horizontal.gbdt import server as server_module
from privfin.fl.horizontal.gbdt.common import edges_from_sketch, sketch_counts
from privfin.fl.horizontal.gbdt.estimator import FedGBDTClassifier
from privfin.fl.horizontal.gbdt.messages import GBLevel, GBSetup, GBTree
from privfin.fl.horizontal.secagg import SecAggClient
from privfin.ml.metrics import roc_auc
from privfin.ml.trees import PlainGBDT, TreeParams
from privfin.runtime import simulate

DEV = Settings(mode="development")
DATA = Path(__file__).resolve().parents[2] / "data" / "fate"
#: Test AUC of the federated model may fall short of the pooled model's by at most this.
AUC_TOLERANCE = 0.005
#: Raw scores of the federated model and the pooled model with the same bin edges differ by
#: the quantisation of the sums only (2**-25 per client and coordinate): 1e-5 is ample.
SCORE_TOLERANCE = 1e-5
ROLES = {"server": ["server"], "a": ["client"], "b": ["client"], "c": ["client"]}
PARAMS: dict[str, Any] = {"n_features": 30, "n_trees": 5, "max_depth": 3, "round_deadline": 20}


def breast() -> tuple[
    dict[str, dict[str, np.ndarray]], np.ndarray, np.ndarray, np.ndarray, np.ndarray
]:
    """Breast cancer rows (unscaled), 170 test rows; training rows split with label skew."""
    x, y = load_breast_cancer(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))
    test, train = idx[:170], idx[170:]
    xtr, ytr = x[train], y[train].astype(float)
    pos, neg = np.flatnonzero(ytr == 1), np.flatnonzero(ytr == 0)
    cut = lambda a, lo, hi: a[int(lo * len(a)) : int(hi * len(a))]  # noqa: E731
    parts = {
        "a": np.concatenate([cut(pos, 0, 0.6), cut(neg, 0, 0.1)]),
        "b": np.concatenate([cut(pos, 0.6, 0.8), cut(neg, 0.1, 0.7)]),
        "c": np.concatenate([cut(pos, 0.8, 1), cut(neg, 0.7, 1)]),
    }
    inputs = {k: {"X": xtr[v], "y": ytr[v]} for k, v in parts.items()}
    xs = np.concatenate([inputs[k]["X"] for k in "abc"])
    ys = np.concatenate([inputs[k]["y"] for k in "abc"])
    return inputs, xs, ys, x[test], y[test].astype(float)


def plain() -> PlainGBDT:
    return PlainGBDT(n_trees=5, learning_rate=0.3, n_bins=32, tree=TreeParams(max_depth=3))


def test_same_trees_as_pooled_training_with_the_same_edges() -> None:
    inputs, xs, ys, xt, yt = breast()
    out = simulate(hfl_gbdt_component, ROLES, params=PARAMS, inputs=inputs, seed=0, settings=DEV)
    model = out["server"]["model"]
    assert len(model.trees) == 5 and out["server"]["restarts"] == 0
    # Depth 3 with histogram subtraction: 1 sketch + at most 3 aggregations per tree.
    assert out["server"]["aggregations"] <= 1 + 5 * 3
    for c in "abc":
        assert out[c]["model"].to_json() == model.to_json()
    ref = plain().fit(xs, ys, edges=model.edges)
    # Exact ties between features may pick another split of the same training rows: compare
    # on the training rows.
    np.testing.assert_allclose(
        model.decision_function(xs), ref.decision_function(xs)[:, 0], rtol=0, atol=SCORE_TOLERANCE
    )
    own = plain().fit(xs, ys)
    auc = roc_auc(yt, model.predict_proba(xt)[:, 1])
    assert auc >= roc_auc(yt, own.predict_proba(xt)[:, 1]) - AUC_TOLERANCE
    assert auc > 0.97


def test_credit_auc_close_to_pooled_gbdt() -> None:
    """default_credit_homo (shipped subsample: 1,000 rows per bank, 1,500 test rows). No
    randomness reaches the trees (only the masks), so one run is the result."""
    files = {"bank_a": "guest", "bank_b": "host_1", "bank_c": "host_2", "test": "test"}
    fr = {p: pd.read_csv(DATA / f"default_credit_homo_{f}.csv.gz") for p, f in files.items()}
    cols = [c for c in fr["test"].columns if c.startswith("x")]
    banks = ["bank_a", "bank_b", "bank_c"]
    inputs = {b: {"X": fr[b][cols].to_numpy(float), "y": fr[b]["y"].to_numpy(float)} for b in banks}
    xt, yt = fr["test"][cols].to_numpy(float), fr["test"]["y"].to_numpy(float)
    out = simulate(
        hfl_gbdt_component,
        {"server": ["server"], **{b: ["client"] for b in banks}},
        params=PARAMS | {"n_features": len(cols), "n_trees": 10},
        inputs=inputs,
        seed=1,
        settings=DEV,
    )
    fed = roc_auc(yt, out["server"]["model"].predict_proba(xt)[:, 1])
    xa = np.concatenate([inputs[b]["X"] for b in banks])
    ya = np.concatenate([inputs[b]["y"] for b in banks])
    pooled = PlainGBDT(n_trees=10, learning_rate=0.3, n_bins=32, tree=TreeParams(max_depth=3))
    ref = roc_auc(yt, pooled.fit(xa, ya).predict_proba(xt)[:, 1])
    assert fed >= ref - AUC_TOLERANCE
    assert fed > 0.74


def test_secure_histograms_equal_the_plain_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every aggregated vector (sketch, histograms) against the sum of what the clients put in,
    within the quantisation bound the aggregation reports; counts exactly."""
    sent: dict[int, dict[str, np.ndarray]] = {}
    got: dict[int, Any] = {}
    real_contribute = client_module.GBClient.contribute
    real_aggregate = server_module.GBServer.aggregate

    def contribute(self: Any, seq: int, vec: np.ndarray) -> bool:
        sent.setdefault(seq, {})[self.ctx.party] = vec.copy()
        return bool(real_contribute(self, seq, vec))

    def aggregate(self: Any, dim: int) -> Any:
        seq = self.seq
        res = real_aggregate(self, dim)
        got[seq] = res
        return res

    monkeypatch.setattr(client_module.GBClient, "contribute", contribute)
    monkeypatch.setattr(server_module.GBServer, "aggregate", aggregate)
    inputs, *_ = breast()
    simulate(hfl_gbdt_component, ROLES, params=PARAMS, inputs=inputs, seed=0, settings=DEV)
    assert sorted(got) == sorted(sent) and len(got) >= 6
    p = GBDTParams(**PARAMS)
    size = p.n_features * p.slots
    for seq, res in got.items():
        exact = sum(sent[seq].values())
        err = np.abs(res.total - exact)
        assert 0 < res.error_bound < 1e-6
        assert err.max() <= res.error_bound
        counts = (
            slice(0, -2)
            if seq == 0
            else np.concatenate(
                [np.arange(i + 2 * size, i + 3 * size) for i in range(0, exact.size, p.node_dim)]
            )
        )
        np.testing.assert_array_equal(np.rint(res.total[counts]), exact[counts])


class _Dead(Exception):
    pass


def _dies(party: str, seq: int, after: str) -> Any:
    """GBClient.contribute, except that ``party`` dies in aggregation ``seq`` after the
    secure-aggregation step ``after`` ("nothing", "advertise", "share", "masked")."""
    real = client_module.GBClient.contribute

    def contribute(self: Any, s: int, vec: np.ndarray) -> bool:
        if self.ctx.party != party or s != seq:
            return bool(real(self, s, vec))
        c = SecAggClient(self.ctx, self.server, self.p.secagg(3, vec.size), s, vec, prefix="hgb")
        for name, step in [
            ("nothing", lambda: True),
            ("advertise", c.advertise),
            ("share", c.share),
            ("masked", c.send_masked),
        ]:
            step()
            if name == after:
                raise _Dead
        raise AssertionError(after)

    return contribute


def _tolerating_death(ctx: Any, params: Any, inputs: Any) -> Any:
    try:
        return hfl_gbdt_component(ctx, params, inputs)
    except _Dead:
        return {"role": "client", "dead": True}


@pytest.mark.parametrize("after", ["nothing", "masked"])
def test_client_dying_mid_training_restarts_the_tree_without_it(
    monkeypatch: pytest.MonkeyPatch, after: str
) -> None:
    """Bank c dies in the 5th aggregation (tree 1): before sending anything (not in that sum:
    the tree restarts at once) or after its masked input (in that sum; missing from the next
    one: the tree restarts then). The other banks finish; every later tree is theirs."""
    monkeypatch.setattr(client_module.GBClient, "contribute", _dies("c", 4, after))
    inputs, xs, ys, xt, yt = breast()
    out = simulate(
        _tolerating_death,
        ROLES,
        params=PARAMS | {"round_deadline": 1.0},
        inputs=inputs,
        seed=0,
        settings=DEV,
    )
    srv = out["server"]
    assert out["c"] == {"role": "client", "dead": True}
    assert srv["restarts"] == 1 and list(srv["dropped"]) == ["c"]
    assert srv["clients"] == ["a", "b"] and len(srv["model"].trees) == 5
    assert srv["history"][0]["clients"] == ["a", "b", "c"]
    assert all(h["clients"] == ["a", "b"] for h in srv["history"][1:])
    for bank in "ab":
        assert out[bank]["model"].to_json() == srv["model"].to_json()
    # Tree 0 is the pooled tree of all three banks (same edges).
    ref = plain().fit(xs, ys, edges=srv["model"].edges)
    first = type(srv["model"])(**{**vars(srv["model"]), "trees": srv["model"].trees[:1]})
    ref.trees_ = ref.trees_[:1]
    np.testing.assert_allclose(
        first.decision_function(xs), ref.decision_function(xs)[:, 0], atol=SCORE_TOLERANCE
    )
    assert roc_auc(yt, srv["model"].predict_proba(xt)[:, 1]) > 0.95


def test_too_many_dropouts_fail_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two of three banks die in one aggregation: one survivor is below the threshold 2; the
    job fails with the reason and the survivor is told (it does not hang)."""
    one = _dies("b", 3, "nothing")
    two = _dies("c", 3, "nothing")

    def contribute(self: Any, s: int, vec: np.ndarray) -> bool:
        return bool((one if self.ctx.party == "b" else two)(self, s, vec))

    monkeypatch.setattr(client_module.GBClient, "contribute", contribute)
    inputs, *_ = breast()
    with pytest.raises(ProtocolAbort, match="below the threshold 2"):
        simulate(
            _tolerating_death,
            ROLES,
            params=PARAMS | {"round_deadline": 0.7},
            inputs=inputs,
            seed=0,
            settings=DEV,
            timeout=30,
        )


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        ("count", "features hold different numbers of rows"),
        ("gradient", "exceeds its row count"),
        ("routing", "not those its parent's split predicted"),
    ],
)
def test_deviating_client_is_detected(
    monkeypatch: pytest.MonkeyPatch, tamper: str, why: str
) -> None:
    """Bank b sends a histogram no honest client could: inflated counts of one feature, a
    gradient sum beyond its rows, or rows routed differently from the announced split
    (consistent within itself). The server refuses the sum (secure aggregation hides who)."""
    real = client_module.GBClient.level_vector
    p = GBDTParams(**PARAMS)
    size = p.n_features * p.slots

    def level_vector(self: Any, build: list[int]) -> np.ndarray:
        if self.ctx.party == "b" and tamper == "routing" and self.at == (0, 1):
            self.node[: len(self.node) // 2] = build[0]  # claims rows of the sibling
        vec = np.asarray(real(self, build)).copy()
        if self.ctx.party == "b" and self.at == (0, 0):
            if tamper == "count":
                vec[2 * size + 3] += 5
            elif tamper == "gradient":
                vec[7] += 3 * len(self.y)
        return vec

    monkeypatch.setattr(client_module.GBClient, "level_vector", level_vector)
    inputs, *_ = breast()
    with pytest.raises(ProtocolAbort, match=why):
        simulate(hfl_gbdt_component, ROLES, params=PARAMS, inputs=inputs, seed=0, settings=DEV)


def test_client_refuses_a_histogram_request_outside_the_tree() -> None:
    """A server asking for the histogram of a node that is not a child of this level's splits
    (e.g. to single out rows) is refused; so are splits of nodes that are not open, levels and
    trees out of order, and a final tree other than the one grown."""
    inputs, *_ = breast()
    p = GBDTParams(**PARAMS)
    x, y = inputs["a"]["X"], inputs["a"]["y"]

    class Ctx:
        party = "a"

        def parties_with(self, role: str) -> list[str]:
            return ["a", "b", "c"]

    cl = client_module.GBClient(Ctx(), p, "server", 3, x, y)  # type: ignore[arg-type]
    total = sketch_counts(x, y, p)
    edges = edges_from_sketch(total, p)
    cl.on_setup(
        GBSetup(
            edges=np.concatenate(edges),
            counts=np.array([e.size for e in edges], dtype=np.int64),
            init=0.0,
        )
    )
    none = np.zeros((0, 4), dtype=np.int64)
    assert cl.on_level(GBLevel(seq=1, tree=0, depth=0, splits=none, build=np.array([0]))) == [0]
    split = np.array([[0, 3, 5, 0]], dtype=np.int64)
    with pytest.raises(ProtocolAbort, match="not open"):
        cl.on_level(GBLevel(seq=2, tree=0, depth=1, splits=split, build=np.array([5])))
    cl.at = (0, 0)
    cl.open = {0}
    with pytest.raises(ProtocolAbort, match="not open"):
        cl.on_level(
            GBLevel(seq=2, tree=0, depth=1, splits=np.array([[4, 3, 5, 0]]), build=np.array([9]))
        )
    cl.at, cl.open = (0, 0), {0}
    with pytest.raises(ProtocolAbort, match="out of order"):
        cl.on_level(GBLevel(seq=2, tree=0, depth=2, splits=split, build=np.array([1])))
    with pytest.raises(ProtocolAbort, match="tree 3 announced"):
        cl.on_level(GBLevel(seq=2, tree=3, depth=0, splits=none, build=np.array([0])))
    # The final tree must keep the splits announced while it grew.
    cl.at, cl.open = (0, 0), {0}
    assert cl.on_level(GBLevel(seq=2, tree=0, depth=1, splits=split, build=np.array([1]))) == [1]
    leaves = {"leaves": np.array([1, 2]), "weights": np.array([0.1, -0.1])}
    with pytest.raises(ProtocolAbort, match="differs from the splits announced"):
        cl.on_tree(GBTree(tree=0, splits=np.array([[0, 4, 5, 0]]), **leaves))
    cl.on_tree(GBTree(tree=0, splits=split, **leaves))
    assert cl.model is not None and len(cl.model.trees) == 1


def test_decoders_refuse_malformed_commands() -> None:
    """Bytes changed on the wire: a NaN leaf weight, a bin beyond 255, a missing flag of 2,
    a repeated leaf: each is a DecodeError."""
    ok = GBTree(
        tree=0,
        splits=np.array([[0, 1, 2, 1]], dtype=np.int64),
        leaves=np.array([5, 6], dtype=np.int64),
        weights=np.array([0.125, -0.25]),
    )
    wire = encode(ok)
    back = decode(wire, expect=GBTree)
    np.testing.assert_array_equal(back.splits, ok.splits)
    i64 = lambda v: np.int64(v).tobytes()  # noqa: E731
    for old, new in (
        (np.float64(-0.25).tobytes(), np.float64(np.nan).tobytes()),
        (i64(2) + i64(1), i64(300) + i64(1)),
        (i64(2) + i64(1), i64(2) + i64(2)),
        (i64(5) + i64(6), i64(5) + i64(5)),
    ):
        assert wire.count(old) == 1
        with pytest.raises(DecodeError):
            decode(wire.replace(old, new), expect=GBTree)
    with pytest.raises(ValueError, match="at least one node"):
        GBLevel(
            seq=0,
            tree=0,
            depth=0,
            splits=np.zeros((0, 4), dtype=np.int64),
            build=np.zeros(0, dtype=np.int64),
        )


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown hfl_gbdt parameters"):
        GBDTParams.from_mapping({"n_features": 3, "n_tree": 2})
    with pytest.raises(ConfigError, match="aggregation"):
        GBDTParams(n_features=3, aggregation="plain")
    with pytest.raises(ConfigError, match="sketch_bins"):
        GBDTParams(n_features=3, n_bins=64, sketch_bins=32)


def test_estimator_fit_predict_clone_save_load(tmp_path: Path) -> None:
    inputs, xs, ys, xt, yt = breast()
    groups = np.concatenate([[k] * len(inputs[k]["y"]) for k in "abc"])
    xs = xs.copy()
    xs[::17, 4] = np.nan  # missing values take their own branch
    est = FedGBDTClassifier(n_trees=4, seed=0, settings=DEV)
    est.fit(
        xs,
        np.where(ys == 1, "benign", "malignant"),
        groups=groups,
        eval_set=(xt, np.where(yt == 1, "benign", "malignant")),
    )
    assert list(est.classes_) == ["benign", "malignant"] and est.clients_ == ["a", "b", "c"]
    assert len(est.history_) == 4 and est.history_[-1]["val_auc"] > 0.95
    proba = est.predict_proba(xt)
    assert proba.shape == (170, 2) and np.allclose(proba.sum(axis=1), 1)
    assert set(est.predict(xt)) <= {"benign", "malignant"}
    assert clone(est).get_params()["n_trees"] == 4
    est.save(tmp_path / "m.json")
    back = FedGBDTClassifier.load(tmp_path / "m.json")
    np.testing.assert_array_equal(back.predict_proba(xt), proba)
