"""Hetero SecureBoost: accuracy against scikit-learn and the plaintext reference, determinism,
leakage (no plaintext in a host's outbound bytes), tampering, options, PSI end to end.

Keys are 1024-bit (``insecure_allow_small_keys`` + development settings) and default_credit is
the 3,000-row subsample shipped under tests/data (see its README) to keep the suite fast; the
full 30,000 rows at 2048-bit keys run in ``benchmarks/vertical.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from _datasets import fate_hetero
from privfin.config import Settings
from privfin.errors import ConfigError, DecodeError, InsecureModeError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.fl.vertical.secureboost import host as host_mod
from privfin.fl.vertical.secureboost.component import (
    secureboost_component,
    secureboost_predict_component,
)
from privfin.fl.vertical.secureboost.estimator import HeteroSecureBoost
from privfin.fl.vertical.secureboost.messages import Histograms, HostDone, HostInfo, SplitResult
from privfin.fl.vertical.secureboost.model import GuestModel, HostModel
from privfin.fl.vertical.secureboost.params import BoostParams
from privfin.ml.trees import PlainGBDT, TreeParams
from privfin.runtime import simulate

DEV = Settings(mode="development")
SMALL = {"key_bits": 1024, "insecure_allow_small_keys": True}


def load(name: str, label: str = "y", rows: int | None = None) -> tuple[Any, Any, Any]:
    """Guest features, labels, host features, aligned by id (this stands for PSI output)."""
    g, h = fate_hetero(name)
    key = g.columns[0]
    m = g.merge(h, on=key, suffixes=("", "_h"))
    if rows is not None:
        m = m.iloc[:rows]
    hcols = [c for c in h.columns if c != key]
    gcols = [c for c in g.columns if c not in (key, label)]
    xh = m[[c + "_h" if c + "_h" in m.columns else c for c in hcols]]
    xh.columns = hcols
    return m[gcols].reset_index(drop=True), m[label].to_numpy(), xh.reset_index(drop=True)


@pytest.fixture(scope="module")
def credit_run() -> dict[str, Any]:
    xg, y, xh = load("default_credit")
    hub = MemoryHub()
    est = HeteroSecureBoost(
        n_trees=5, max_depth=3, n_bins=32, learning_rate=0.3, seed=7, settings=DEV, **SMALL
    )
    est.fit({"guest": xg, "host": xh}, y, hub=hub)
    return {"est": est, "xg": xg, "y": y, "xh": xh, "hub": hub}


# ------------------------------------------------------------------------------ accuracy


@pytest.mark.parametrize("n_trees", [5, 30])
def test_plain_core_matches_sklearn_on_default_credit(n_trees: int) -> None:
    # The federated protocol reproduces this core exactly (see the next tests), so 30 trees
    # are checked here in plaintext; the full 30,000 rows are timed in benchmarks/vertical.py
    # (there: 0.7695 vs sklearn's 0.7728 with 5 trees, 0.7953 vs 0.7995 with 30).
    xg, y, xh = load("default_credit")
    X = np.hstack([xg.to_numpy(), xh.to_numpy()])
    ours = PlainGBDT(n_trees=n_trees, learning_rate=0.3, n_bins=32, tree=TreeParams(max_depth=3))
    auc = roc_auc_score(y, ours.fit(X, y).predict_proba(X)[:, 1])
    sk = GradientBoostingClassifier(
        n_estimators=n_trees, max_depth=3, learning_rate=0.3, random_state=0
    )
    sk_auc = roc_auc_score(y, sk.fit(X, y).predict_proba(X)[:, 1])
    # 32 quantile bins against sklearn's exact splits, 3,000 rows: measured 0.0023 (5 trees)
    # and 0.0013 (30 trees) below sklearn.
    assert abs(auc - sk_auc) < 0.005


def test_secureboost_matches_sklearn_and_plaintext_reference(credit_run: dict[str, Any]) -> None:
    est, xg, y, xh = credit_run["est"], credit_run["xg"], credit_run["y"], credit_run["xh"]
    auc = roc_auc_score(y, est.train_scores_[:, 1])
    X = np.hstack([xg.to_numpy(), xh.to_numpy()])
    sk = GradientBoostingClassifier(n_estimators=5, max_depth=3, learning_rate=0.3, random_state=0)
    sk_auc = roc_auc_score(y, sk.fit(X, y).predict_proba(X)[:, 1])
    assert abs(auc - sk_auc) < 0.005
    ref = PlainGBDT(n_trees=5, learning_rate=0.3, n_bins=32).fit(X, y)
    ref_auc = roc_auc_score(y, ref.predict_proba(X)[:, 1])
    assert abs(auc - ref_auc) < 1e-3  # fixed-point host histograms vs float64


def test_joint_prediction_reproduces_training_scores(credit_run: dict[str, Any]) -> None:
    est, xg, xh = credit_run["est"], credit_run["xg"], credit_run["xh"]
    proba = est.predict_proba({"guest": xg.iloc[:500], "host": xh.iloc[:500]})
    np.testing.assert_allclose(proba, est.train_scores_[:500], rtol=0, atol=1e-12)
    # The guest's model has no host threshold or feature: only the owner's name.
    for tree in est.model_.trees:
        for node in tree.values():
            if node.owner:
                assert node.feature == -1 and node.threshold == float("inf")


def test_models_roundtrip_json(credit_run: dict[str, Any]) -> None:
    est = credit_run["est"]
    g2 = GuestModel.from_json(est.model_.to_json())
    h2 = HostModel.from_json(est.host_models_["host"].to_json())
    assert g2.to_json() == est.model_.to_json()
    assert h2.to_json() == est.host_models_["host"].to_json()
    imp = est.host_models_["host"].feature_importance("split")
    assert imp and all(v > 0 for v in imp.values())
    # Gains derive from decrypted host histograms: not shared unless opted in ([08]).
    assert all(v == 0 for v in est.host_models_["host"].feature_importance("gain").values())
    assert set(imp) <= {f"host.{c}" for c in credit_run["xh"].columns}


# ------------------------------------------------------------------------------ leakage


def test_host_outbound_bytes_hold_no_plaintext(credit_run: dict[str, Any]) -> None:
    hub, xh, y = credit_run["hub"], credit_run["xh"], credit_run["y"]
    outbound = [(k, p) for k, p in hub.wire if k.sender == "host"]
    assert outbound
    allowed = (HostInfo, Histograms, SplitResult, HostDone)
    for _key, payload in outbound:
        assert isinstance(codec.decode(payload), allowed)
    blob = b"".join(p for _, p in outbound)
    values = np.unique(xh.to_numpy().reshape(-1))
    values = values[np.abs(values) > 1e-3]
    rng = np.random.default_rng(0)
    for v in rng.choice(values, size=min(300, values.size), replace=False):
        assert np.float64(v).tobytes() not in blob  # no host feature value
        assert np.float32(v).tobytes() not in blob
    # No gradient of the first tree (p - y with p the prior) and no label vector.
    p0 = y.mean()
    for g in (p0, p0 - 1, p0 * (1 - p0)):
        assert np.float64(g).tobytes() not in blob
    assert y.astype(np.uint8).tobytes()[:64] not in blob
    assert np.packbits(y.astype(bool)).tobytes()[:32] not in blob


# ------------------------------------------------------------------------------ determinism


def _synthetic(n: int, seed: int, missing: float = 0.0) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    xg = rng.normal(size=(n, 4))
    xh = rng.normal(size=(n, 5))
    logit = xg[:, 0] - 0.8 * xh[:, 1] + 0.6 * xh[:, 2] * xg[:, 1] + 0.5 * (xh[:, 3] > 0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    if missing:
        xg[rng.random(xg.shape) < missing] = np.nan
        xh[rng.random(xh.shape) < missing] = np.nan
    return xg, y, xh


def test_same_seed_same_model() -> None:
    xg, y, xh = _synthetic(600, 1)
    models = []
    for _ in range(2):
        est = HeteroSecureBoost(n_trees=2, seed=3, settings=DEV, **SMALL).fit(
            {"guest": xg, "host": xh}, y
        )
        models.append((est.model_.to_json(), est.host_models_["host"].to_json()))
    assert models[0] == models[1]


# ------------------------------------------------------------------------------ tamper


def test_malformed_histogram_ciphertext_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    xg, y, xh = _synthetic(300, 2)
    real = host_mod.ciphertexts_to_bytes

    def zeroed(cts: Any, pk: Any) -> bytes:
        return b"\x00" * len(real(cts, pk))  # 0 is not in Z*_{n^2}

    monkeypatch.setattr(host_mod, "ciphertexts_to_bytes", zeroed)
    with pytest.raises((DecodeError, ProtocolAbort)) as info:
        HeteroSecureBoost(n_trees=1, seed=1, settings=DEV, timeout=30, **SMALL).fit(
            {"guest": xg, "host": xh}, y
        )
    assert "ciphertext" in str(info.value)


def test_overflowing_histogram_plaintext_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    xg, y, xh = _synthetic(300, 2)
    real = host_mod.compress

    def shifted(cts: Any, pk: Any, width: int, per_ct: int, executor: Any = None) -> Any:
        out = real(cts, pk, width, per_ct, executor)
        big = pk.raw_encrypt([1 << (pk.capacity_bits - 1)] * len(out))
        return pk.raw_add(out, big)  # data beyond the packed slots

    monkeypatch.setattr(host_mod, "compress", shifted)
    with pytest.raises(ProtocolAbort, match="tampered"):
        HeteroSecureBoost(n_trees=1, seed=1, settings=DEV, timeout=30, **SMALL).fit(
            {"guest": xg, "host": xh}, y
        )


# ------------------------------------------------------------------------------ options


def test_options_match_plaintext_reference_with_missing_values_and_two_hosts() -> None:
    xg, y, xh = _synthetic(800, 4, missing=0.1)
    hosts = {"telco": xh[:, :2], "shop": xh[:, 2:]}
    est = HeteroSecureBoost(n_trees=3, seed=2, settings=DEV, **SMALL).fit({"guest": xg, **hosts}, y)
    X = np.hstack([xg, xh])
    ref = PlainGBDT(n_trees=3).fit(X, y)
    auc, ref_auc = (roc_auc_score(y, s[:, 1]) for s in (est.train_scores_, ref.predict_proba(X)))
    assert abs(auc - ref_auc) < 2e-3
    proba = est.predict_proba({"guest": xg, **hosts})
    np.testing.assert_allclose(proba, est.train_scores_, atol=1e-12)
    assert {"host:telco", "host:shop"} & set(est.feature_importance())


def test_complete_secure_first_tree_uses_guest_features_only() -> None:
    xg, y, xh = _synthetic(500, 5)
    hub = MemoryHub()
    est = HeteroSecureBoost(n_trees=2, complete_secure=True, seed=2, settings=DEV, **SMALL).fit(
        {"guest": xg, "host": xh}, y, hub=hub
    )
    assert all(not n.owner for n in est.model_.trees[0].values())
    trees_seen = set()
    for key, payload in hub.wire:
        if key.receiver == "host" and key.tag == "cmd":
            msg = codec.decode(payload)
            if hasattr(msg, "tree"):
                trees_seen.add(msg.tree)
    assert trees_seen == {1}


def test_goss_trains_on_a_sample() -> None:
    xg, y, xh = _synthetic(1000, 6)
    hub = MemoryHub()
    est = HeteroSecureBoost(
        n_trees=3, goss=True, top_rate=0.3, other_rate=0.2, seed=2, settings=DEV, **SMALL
    ).fit({"guest": xg, "host": xh}, y, hub=hub)
    starts = [codec.decode(p) for k, p in hub.wire if k.tag == "cmd" and k.receiver == "host"]
    sizes = {m.rows.size for m in starts if type(m).__name__ == "TreeStart"}
    assert sizes == {500}
    assert roc_auc_score(y, est.train_scores_[:, 1]) > 0.7


def test_multiclass_vehicle() -> None:
    xg, y, xh = load("vehicle_scale")
    est = HeteroSecureBoost(
        n_trees=3, objective="multiclass", n_classes=4, seed=1, settings=DEV, **SMALL
    )
    est.fit({"guest": xg, "host": xh}, y)
    X = np.hstack([xg.to_numpy(), xh.to_numpy()])
    ref = PlainGBDT(n_trees=3, objective="multiclass", n_classes=4).fit(X, y)
    acc = (est.train_scores_.argmax(axis=1) == y).mean()
    ref_acc = (ref.predict_proba(X).argmax(axis=1) == y).mean()
    assert acc > 0.6 and abs(acc - ref_acc) < 0.02
    np.testing.assert_allclose(est.train_scores_.sum(axis=1), 1.0)
    pred = est.predict({"guest": xg, "host": xh})
    np.testing.assert_array_equal(pred, est.train_scores_.argmax(axis=1))


def test_regression_student() -> None:
    xg, y, xh = load("student")
    est = HeteroSecureBoost(
        n_trees=3, objective="regression", learning_rate=0.3, seed=1, settings=DEV, **SMALL
    )
    est.fit({"guest": xg, "host": xh}, y)
    X = np.hstack([xg.to_numpy(), xh.to_numpy()])
    ref = PlainGBDT(n_trees=3, objective="regression").fit(X, y)
    mse = float(np.mean((est.train_scores_ - y) ** 2))
    ref_mse = float(np.mean((ref.predict_proba(X) - y) ** 2))
    assert mse < np.var(y) and abs(mse - ref_mse) < 0.02 * ref_mse


# ------------------------------------------------------------------------------ boundary


def test_small_keys_need_explicit_opt_in() -> None:
    xg, y, xh = _synthetic(100, 7)
    with pytest.raises(ConfigError, match="insecure_allow_small_keys"):
        HeteroSecureBoost(key_bits=1024, seed=1).fit({"guest": xg, "host": xh}, y)
    with pytest.raises(InsecureModeError):
        HeteroSecureBoost(seed=1, **SMALL).fit({"guest": xg, "host": xh}, y)
    with pytest.raises(ConfigError, match="unknown SecureBoost parameters"):
        BoostParams.from_mapping({"n_tress": 3})  # job parameters
    with pytest.raises(TypeError, match="n_tress"):
        HeteroSecureBoost(n_tress=3)  # type: ignore[call-arg]


def test_misaligned_rows_are_refused() -> None:
    xg, y, xh = _synthetic(100, 8)
    with pytest.raises(ConfigError, match="PSI"):
        HeteroSecureBoost(n_trees=1, seed=1, settings=DEV, **SMALL).fit(
            {"guest": xg, "host": xh[:90]}, y
        )


def test_psi_then_secureboost_end_to_end() -> None:
    from privfin.psi.component import psi_component

    g, h = fate_hetero("default_credit")
    g, h = g.iloc[:700].copy(), h.iloc[200:900].sample(frac=1, random_state=1)
    g["id"], h["id"] = g["id"].astype(str), h["id"].astype(str)
    aligned = simulate(
        psi_component, {"bank": ("receiver",), "telco": ("sender",)},
        params={"reveal_to": "both"}, inputs={"bank": {"table": g}, "telco": {"table": h}},
        seed=1,
    )  # fmt: skip
    tg, th = aligned["bank"]["table"], aligned["telco"]["table"]
    assert len(tg) == len(th) == 500 and list(tg["id"]) == list(th["id"])
    roles = {"bank": ("guest",), "telco": ("host",)}
    params = {"n_trees": 2, **SMALL}
    out = simulate(
        secureboost_component, roles, params=params, settings=DEV, seed=1,
        inputs={
            "bank": {"X": tg.drop(columns=["id", "y"]), "y": tg["y"].to_numpy()},
            "telco": {"X": th.drop(columns=["id"])},
        },
    )  # fmt: skip
    scores = simulate(
        secureboost_predict_component, roles, settings=DEV, seed=1,
        inputs={
            "bank": {"X": tg.drop(columns=["id", "y"]), "model": out["bank"]["model"].to_json()},
            "telco": {"X": th.drop(columns=["id"]), "model": out["telco"]["model"].to_json()},
        },
    )  # fmt: skip
    np.testing.assert_allclose(scores["bank"]["scores"], out["bank"]["scores"], atol=1e-12)
    assert scores["telco"]["scores"] is None


def test_okamoto_uchiyama_scheme_gives_the_same_model() -> None:
    xg, y, xh = _synthetic(400, 9)
    models = []
    for scheme in ("paillier", "ou"):
        est = HeteroSecureBoost(n_trees=2, he_scheme=scheme, seed=4, settings=DEV, **SMALL).fit(
            {"guest": xg, "host": xh}, y
        )
        models.append(est.train_scores_)
    np.testing.assert_allclose(models[0], models[1], atol=1e-12)


def test_regression_gradients_beyond_the_public_range_are_refused_locally() -> None:
    """Hosts accept gradient slots up to ``regression_range_bits`` ([08]); the guest refuses
    wider gradients itself, before anything is encrypted, and says what to do."""
    xg, _, xh = _synthetic(80, 11)
    y = np.random.default_rng(1).normal(size=80) * 3e6
    opts = {"n_trees": 1, "objective": "regression", "seed": 1, "settings": DEV, "timeout": 30}
    est = HeteroSecureBoost(**opts, **SMALL)
    with pytest.raises(ConfigError, match="regression_range_bits"):
        est.fit({"guest": xg, "host": xh}, y)
    est = HeteroSecureBoost(regression_range_bits=26, **opts, **SMALL)
    est.fit({"guest": xg, "host": xh}, y)
