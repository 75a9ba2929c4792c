"""FedAvg / FedProx over secure aggregation on scikit-learn's bundled breast cancer data split
non-IID over three banks: accuracy against the same model trained on the pooled data,
agreement with plain aggregation, sampling, stragglers past the deadline, early stopping."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from privfin.config import Settings
from privfin.errors import ConfigError, InputError, InsecureModeError
from privfin.fl.horizontal.fedavg import LocalOptimiser, hfl_component, local_train, make_model
from privfin.fl.horizontal.fedavg import client as client_module
from privfin.ml.metrics import roc_auc
from privfin.runtime import simulate

DEV = Settings(mode="development")
#: Largest AUC shortfall of federated training against pooled training on the test split.
AUC_TOLERANCE = 0.005


def split() -> tuple[
    dict[str, dict[str, np.ndarray]], np.ndarray, np.ndarray, np.ndarray, np.ndarray
]:
    """Standardised data; 170 test rows; the training rows split with label skew: bank a
    mostly benign (91 %), bank b mostly malignant (36 % benign), bank c balanced."""
    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
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
    return inputs, xtr, ytr, x[test], y[test].astype(float)


ROLES = {"server": ["server"], "a": ["client"], "b": ["client"], "c": ["client"]}


def params(kind: str = "logistic", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "n_features": 30,
        "model": kind,
        "rounds": 10,
        "local_epochs": 2,
        "batch_size": 16,
        "l2": 1e-3,
        "round_deadline": 20.0,
        "lr": 0.05 if kind == "logistic" else 0.01,
        "optimiser": "sgd" if kind == "logistic" else "adam",
    }
    return base | over


def pooled_auc(
    p: dict[str, Any], xtr: np.ndarray, ytr: np.ndarray, xt: np.ndarray, yt: np.ndarray
) -> float:
    """The same model and optimiser on the pooled data for as many epochs as a client does."""
    m = make_model(p["model"], 30, l2=p["l2"])
    opt = LocalOptimiser(
        kind=p["optimiser"], lr=p["lr"], epochs=p["rounds"] * p["local_epochs"], batch_size=16
    )
    w, _ = local_train(m, m.init(np.random.default_rng(0)), xtr, ytr, opt, np.random.default_rng(1))
    return roc_auc(yt, m.predict_proba(w, xt))


def train(p: dict[str, Any], **kw: Any) -> dict[str, Any]:
    inputs, *_ = split()
    return simulate(hfl_component, ROLES, params=p, inputs=inputs, seed=0, settings=DEV, **kw)


@pytest.mark.parametrize(
    ("kind", "mu"),
    [("logistic", 0.0), ("logistic", 0.1), ("mlp", 0.0)],
    ids=["fedavg-lr", "fedprox-lr", "fedavg-mlp"],
)
def test_federated_auc_close_to_pooled(kind: str, mu: float) -> None:
    _, xtr, ytr, xt, yt = split()
    p = params(kind, mu=mu)
    out = train(p)
    m = make_model(kind, 30, l2=p["l2"])
    auc = roc_auc(yt, m.predict_proba(out["server"]["weights"], xt))
    assert auc >= pooled_auc(p, xtr, ytr, xt, yt) - AUC_TOLERANCE
    assert auc > 0.98
    hist = out["server"]["history"]
    assert [h["round"] for h in hist] == list(range(10))
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert all(h["rows"] == 399 and h["dropped"] == {} for h in hist)
    # Every client ends with the server's final model.
    for c in "abc":
        np.testing.assert_array_equal(out[c]["weights"], out["server"]["weights"])
        assert out[c]["rounds_trained"] == 10


def test_secure_aggregation_matches_plain_aggregation() -> None:
    secure = train(params(rounds=4))["server"]["weights"]
    plain = train(params(rounds=4, secure_aggregation=False))["server"]["weights"]
    # Same seeds, same local training: only the quantisation (2**-25 per unit of n·Δw,
    # divided by 399 rows) separates the two.
    np.testing.assert_allclose(secure, plain, rtol=0, atol=1e-6)


def test_plain_aggregation_refused_in_production() -> None:
    with pytest.raises(InsecureModeError):
        simulate(
            hfl_component,
            ROLES,
            params=params(rounds=1, secure_aggregation=False),
            inputs=split()[0],
            seed=0,
            settings=Settings(mode="production"),
        )


def test_client_sampling() -> None:
    inputs, *_ = split()
    roles = ROLES | {"d": ["client"]}
    inputs["d"] = inputs["c"]
    out = simulate(
        hfl_component,
        roles,
        params=params(rounds=6, clients_per_round=3),
        inputs=inputs,
        seed=5,
        settings=DEV,
    )
    hist = out["server"]["history"]
    assert all(len(h["selected"]) == 3 and h["survivors"] == h["selected"] for h in hist)
    counts = {c: sum(c in h["selected"] for h in hist) for c in "abcd"}
    assert sum(counts.values()) == 18 and len({tuple(h["selected"]) for h in hist}) > 1
    assert {c: out[c]["rounds_trained"] for c in "abcd"} == counts


def test_straggler_is_dropped_at_the_deadline_and_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bank c trains too slowly in round 1: the round goes on without it after the deadline
    (its masks are removed), and it takes part again from round 2."""
    real = client_module.local_train
    calls = {"n": 0}

    def slow(*args: Any, **kw: Any) -> Any:
        if threading.current_thread().name == "party-c":
            calls["n"] += 1
            if calls["n"] == 2:
                time.sleep(2.5)
        return real(*args, **kw)

    monkeypatch.setattr(client_module, "local_train", slow)
    out = train(params(rounds=5, round_deadline=1.0))
    hist = out["server"]["history"]
    assert hist[1]["dropped"] == {"c": "advertise"} and hist[1]["survivors"] == ["a", "b"]
    assert hist[1]["seconds"] < 1.0 + 1.5
    # Back in time for the last round (it may also miss round 2, which started while it slept).
    assert hist[-1]["dropped"] == {} and hist[-1]["survivors"] == ["a", "b", "c"]
    assert out["c"]["rounds_trained"] == sum("c" in h["survivors"] for h in hist) >= 3


def test_dead_client_does_not_stall_training() -> None:
    def component(ctx: Any, p: Any, inputs: Any) -> Any:
        if ctx.party == "c":
            return None  # never answers
        return hfl_component(ctx, p, inputs)

    inputs, *_ = split()
    out = simulate(
        component,
        ROLES,
        params=params(rounds=3, round_deadline=0.5),
        inputs=inputs,
        seed=0,
        settings=DEV,
    )
    hist = out["server"]["history"]
    assert all(h["survivors"] == ["a", "b"] and h["dropped"] == {"c": "advertise"} for h in hist)
    assert all(h["rows"] == len(inputs["a"]["y"]) + len(inputs["b"]["y"]) for h in hist)


def test_early_stopping_on_validation_auc() -> None:
    inputs, _, _, xt, yt = split()
    inputs["server"] = {"X_val": xt, "y_val": yt}
    out = simulate(
        hfl_component,
        ROLES,
        params=params(rounds=40, patience=2),
        inputs=inputs,
        seed=0,
        settings=DEV,
    )
    hist = out["server"]["history"]
    assert len(hist) < 40
    best = max(range(len(hist)), key=lambda i: (hist[i]["val_auc"], -i))
    assert len(hist) - 1 - best == 2
    m = make_model("logistic", 30, l2=1e-3)
    assert roc_auc(yt, m.predict_proba(out["server"]["weights"], xt)) == hist[best]["val_auc"]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown hfl parameters"):
        train(params(rounds=1, learning_rate=0.1))
    with pytest.raises(ConfigError, match="at least 2"):
        train(params(rounds=1, threshold=1))
    with pytest.raises(ConfigError, match="cannot reach"):
        train(params(rounds=1, threshold=4))


def test_client_level_dp_reports_epsilon_per_round() -> None:
    from privfin.dp import Accountant, GaussianVector

    # Client-level DP needs many clients: 24 banks of about 16 customers each.
    _, xtr, ytr, xt, yt = split()
    banks = [f"bank{i:02d}" for i in range(24)]
    parts = np.array_split(np.random.default_rng(3).permutation(len(ytr)), len(banks))
    inputs = {b: {"X": xtr[ix], "y": ytr[ix]} for b, ix in zip(banks, parts, strict=True)}
    roles = {"server": ["server"], **{b: ["client"] for b in banks}}
    p = params(rounds=5, dp_noise_multiplier=0.8, dp_clip=2.0, dp_delta=1e-5)
    out = simulate(hfl_component, roles, params=p, inputs=inputs, seed=0, settings=DEV)
    srv = out["server"]
    gv = GaussianVector(0.8, 2.0)
    eps = [h["epsilon"] for h in srv["history"]]
    # One Gaussian mechanism of the effective noise multiplier per round, composed by RDP.
    expected = [
        Accountant("rdp").gaussian(gv.effective_noise_multiplier(31), count=r).epsilon(1e-5)
        for r in range(1, 6)
    ]
    assert eps == pytest.approx(expected, rel=1e-12) and eps == sorted(eps)
    assert srv["dp"]["epsilon"] == eps[-1] and srv["dp"]["delta"] == 1e-5
    assert "train_loss" not in srv["history"][0]  # no un-noised statistic is released
    m = make_model("logistic", 30, l2=1e-3)
    auc = roc_auc(yt, m.predict_proba(srv["weights"], xt))
    assert 0.95 < auc < 1.0
    plain = simulate(
        hfl_component, roles, params=params(rounds=5), inputs=inputs, seed=0, settings=DEV
    )["server"]["weights"]
    assert np.max(np.abs(srv["weights"] - plain)) > 1e-3  # the noise is there


def test_dp_refuses_early_stopping_on_clear_validation() -> None:
    with pytest.raises(ConfigError, match="not with client-level DP"):
        train(params(rounds=2, dp_noise_multiplier=1.0, patience=1))


def test_fedadam_server_optimiser() -> None:
    _, xtr, ytr, xt, yt = split()
    p = params(server_optimiser="fedadam", server_lr=0.05)
    out = train(p)
    m = make_model("logistic", 30, l2=1e-3)
    auc = roc_auc(yt, m.predict_proba(out["server"]["weights"], xt))
    assert auc >= pooled_auc(params(), xtr, ytr, xt, yt) - AUC_TOLERANCE
    plain = train(params())["server"]["weights"]
    assert np.max(np.abs(out["server"]["weights"] - plain)) > 1e-3  # a different optimiser


def test_robust_aggregator_resists_a_poisoning_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bank c sends its update scaled by -30 (plain mode): the mean is ruined, the
    coordinate-wise median is not. Robust aggregation needs clear updates, so it is refused
    with secure aggregation."""
    real = client_module.local_train

    def poisoned(model: Any, w0: np.ndarray, *args: Any, **kw: Any) -> Any:
        w, loss = real(model, w0, *args, **kw)
        if threading.current_thread().name == "party-c":
            w = w0 - 30.0 * (w - w0)
        return w, loss

    monkeypatch.setattr(client_module, "local_train", poisoned)
    _, _, _, xt, yt = split()
    m = make_model("logistic", 30, l2=1e-3)
    aucs = {}
    for agg in ("mean", "median", "trimmed_mean"):
        p = params(rounds=5, secure_aggregation=False, aggregator=agg, trim_fraction=0.34)
        aucs[agg] = roc_auc(yt, m.predict_proba(train(p)["server"]["weights"], xt))
    assert aucs["median"] > 0.98 and aucs["trimmed_mean"] > 0.98
    assert aucs["mean"] < 0.9
    with pytest.raises(ConfigError, match="incompatible with secure aggregation"):
        train(params(rounds=1, aggregator="median"))


def test_estimator_fit_predict_save_load(tmp_path: Any) -> None:
    from sklearn.base import clone

    from privfin.fl.horizontal.fedavg import FedAvgClassifier

    inputs, _, _, xt, yt = split()
    x = np.concatenate([inputs[c]["X"] for c in "abc"])
    y = np.where(np.concatenate([inputs[c]["y"] for c in "abc"]) == 1, "benign", "malignant")
    groups = np.repeat(["a", "b", "c"], [len(inputs[c]["y"]) for c in "abc"])
    est = FedAvgClassifier(rounds=5, lr=0.05, local_epochs=2, batch_size=16, l2=1e-3, seed=0)
    est.set_params(settings=DEV)
    assert clone(est).get_params()["rounds"] == 5
    est.fit(x, y, groups=groups)
    assert est.clients_ == ["a", "b", "c"] and len(est.history_) == 5
    labels = np.where(yt == 1, "benign", "malignant")
    assert roc_auc(yt, est.predict_proba(xt)[:, 0]) > 0.98  # classes_[0] is "benign"
    assert est.score(xt, labels) > 0.9
    est.save(tmp_path / "m.json")
    back = FedAvgClassifier.load(tmp_path / "m.json")
    np.testing.assert_array_equal(back.predict_proba(xt), est.predict_proba(xt))
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(InputError, match="cannot load"):
        FedAvgClassifier.load(tmp_path / "bad.json")


def test_client_refuses_a_model_of_the_wrong_size() -> None:
    from privfin.errors import ProtocolAbort
    from privfin.fl.horizontal.fedavg.messages import RoundPlan

    def component(ctx: Any, p: Any, inputs: Any) -> Any:
        if ctx.party == "server":
            for c in "abc":
                plan = RoundPlan(round=0, selected=True, done=False, weights=np.zeros(5))
                ctx.channel.send(c, "hfl.plan", plan)
            return None
        return hfl_component(ctx, p, inputs)

    with pytest.raises(ProtocolAbort, match="model of the wrong size"):
        simulate(component, ROLES, params=params(), inputs=split()[0], seed=0, settings=DEV)


def test_round_plan_decoder_refuses_non_finite_weights() -> None:
    from privfin.errors import DecodeError
    from privfin.federation import codec
    from privfin.fl.horizontal.fedavg.messages import RoundPlan

    w = np.array([1.0, 2.0])
    wire = codec.encode(RoundPlan(round=0, selected=True, done=False, weights=w))
    bad = wire.replace(np.float64(2.0).tobytes(), np.float64(np.nan).tobytes())
    with pytest.raises(DecodeError):
        codec.decode(bad, expect=RoundPlan)


def test_round_below_threshold_is_skipped_and_training_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Banks b and c are both too slow in round 1: one survivor is below the threshold (2),
    so the round is skipped (model unchanged, recorded); every client is told, nobody hangs."""
    real = client_module.local_train
    calls: dict[str, int] = {}

    def slow(*args: Any, **kw: Any) -> Any:
        name = threading.current_thread().name
        calls[name] = calls.get(name, 0) + 1
        if name in ("party-b", "party-c") and calls[name] == 2:
            time.sleep(1.5)
        return real(*args, **kw)

    monkeypatch.setattr(client_module, "local_train", slow)
    out = train(params(rounds=4, round_deadline=0.7))
    hist = out["server"]["history"]
    assert "below the threshold 2" in hist[1]["failed"]
    assert "failed" not in hist[0] and "failed" not in hist[-1]
    assert out["server"]["rounds"] == 4


def test_init_seed_gives_every_party_the_same_start_and_clients_check_it() -> None:
    """With the public init_seed the server starts from Model.init(default_rng(init_seed))
    whatever its own randomness (the clients check the first model, so the honest runs pass
    with two different simulation seeds), and a server starting elsewhere is refused."""
    from privfin.errors import ProtocolAbort
    from privfin.fl.horizontal.fedavg.messages import RoundPlan

    p = params("mlp", rounds=1, init_seed=7)
    firsts = []
    for seed in (0, 1):
        out = simulate(hfl_component, ROLES, params=p, inputs=split()[0], seed=seed, settings=DEV)
        assert len(out["server"]["history"]) == 1
        firsts.append(out["server"]["weights"])
    assert not np.array_equal(firsts[0], firsts[1])  # minibatch order and masks still differ
    mlp = make_model("mlp", 30, l2=1e-3)

    def deviating(ctx: Any, prm: Any, inputs: Any) -> Any:
        if ctx.party == "server":
            other = mlp.init(np.random.default_rng(8))
            for c in "abc":
                plan = RoundPlan(round=0, selected=True, done=False, weights=other)
                ctx.channel.send(c, "hfl.plan", plan)
            return None
        return hfl_component(ctx, prm, inputs)

    with pytest.raises(ProtocolAbort, match="agreed init_seed"):
        simulate(deviating, ROLES, params=p, inputs=split()[0], seed=0, settings=DEV)


@pytest.mark.parametrize("bad", [-1, 1 << 63, 1.5, True, "7"])
def test_bad_init_seed_is_refused(bad: Any) -> None:
    with pytest.raises(ConfigError, match="init_seed"):
        train(params(rounds=1, init_seed=bad))
