"""Hetero LR: accuracy on FATE's breast split, agreement with the plaintext reference in both
modes, determinism, leakage scan of the hosts' outbound bytes, tamper tests.

Tests use small Paillier keys through the explicit insecure flag (``insecure_allow_small_keys``
plus a development-mode ``Settings``) to stay fast; production defaults are 2048-bit. Rows are
aligned by id directly: that stands for PSI's aligned output (see test_hetero_lr_psi.py for the
end-to-end PSI -> LR run).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from _datasets import breast_hetero
from privfin.config import Settings
from privfin.errors import ConfigError, DecodeError, InsecureModeError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import MessageKey
from privfin.fl.vertical.hetero_lr import (
    HeteroLogisticRegression,
    LRParams,
    hetero_lr_component,
    plaintext_reference,
)
from privfin.fl.vertical.hetero_lr.common import PartyModel, batch_plan
from privfin.ml.metrics import roc_auc
from privfin.runtime import simulate

SMALL = {"key_bits": 768, "insecure_allow_small_keys": True}


def breast() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g, h = breast_hetero()
    h = h.set_index("id").loc[g["id"]].reset_index()  # stands for PSI's aligned output
    return (
        g.drop(columns=["id", "y"]).to_numpy(),
        h.drop(columns=["id"]).to_numpy(),
        g["y"].to_numpy(float),
    )


def synthetic(
    n: int = 90, hosts: int = 2, seed: int = 0
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    xg = rng.normal(size=(n, 3))
    xs = [rng.normal(size=(n, 2 + k)) for k in range(hosts)]
    z = xg @ [1.0, -0.5, 0.2] + sum(x.sum(axis=1) * 0.7 for x in xs) - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return xg, xs, y


def run(
    params: dict[str, Any],
    xg: np.ndarray,
    xs: list[np.ndarray],
    y: np.ndarray,
    *,
    hub: MemoryHub | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    roles: dict[str, list[str]] = {"bank": ["guest"]}
    inputs: dict[str, dict[str, Any]] = {"bank": {"X": xg, "y": y}}
    for k, x in enumerate(xs):
        roles[f"host{k}"] = ["host"]
        inputs[f"host{k}"] = {"X": x}
    if params.get("mode", "arbiter") == "arbiter":
        roles["arb"] = ["arbiter"]
    params = {"feature_counts": counts(xg, xs), **params}
    return simulate(
        hetero_lr_component, roles, params=params, inputs=inputs, seed=seed, hub=hub,
        settings=Settings(mode="development"), timeout=120,
    )  # fmt: skip


def counts(xg: np.ndarray, xs: list[np.ndarray]) -> dict[str, int]:
    """The agreed ``feature_counts`` of the parties of :func:`run`."""
    return {"bank": xg.shape[1], **{f"host{k}": x.shape[1] for k, x in enumerate(xs)}}


def reference(
    params: dict[str, Any], xg: np.ndarray, xs: list[np.ndarray], y: np.ndarray, out: dict[str, Any]
) -> None:
    """Compare with the plaintext reference run on the same batch seed."""
    # The batch seed is the guest's first draw: recover it from a seeded run of the same draw.
    from privfin.crypto.random import SeededRandom

    seed = SeededRandom("7/bank").below(2**63)
    g, hs, epochs = plaintext_reference(xg, xs, y, LRParams.from_mapping(params), seed)
    assert out["bank"]["n_iter"] == epochs
    np.testing.assert_allclose(out["bank"]["coef"], g.coef, atol=2e-5)
    assert out["bank"]["intercept"] == pytest.approx(g.bias, abs=2e-5)
    for k, h in enumerate(hs):
        np.testing.assert_allclose(out[f"host{k}"]["coef"], h.coef, atol=2e-5)


def test_breast_reaches_fate_auc_and_hosts_leak_nothing() -> None:
    xg, xh, y = breast()
    params = {**SMALL, "mode": "arbiter"}
    hub = MemoryHub()
    out = run(params, xg, [xh], y, hub=hub)
    z = xg @ out["bank"]["coef"] + xh @ out["host0"]["coef"] + out["bank"]["intercept"]
    assert roc_auc(y, z) >= 0.994  # FATE coordinated LR: 0.9944
    reference(params, xg, [xh], y, out)
    # Leakage: no 8-byte float or fixed-point encoding of a host feature, the labels or the
    # host's final weights appears anywhere in what the host sent.
    sent = b"".join(p for k, p in hub.wire if k.sender == "host0")
    assert sent
    needles = [struct.pack("<d", v) for v in xh.reshape(-1)[:400]]
    needles += [struct.pack("<d", v) for v in out["host0"]["coef"]]
    needles += [np.asarray(y[:64], dtype=np.uint8).tobytes(), y[:16].tobytes()]
    # The host's first-batch gradient (weights start at zero, batches in order: d = 0.5 - y),
    # as floats and as the integers that are masked before decryption.
    # (Taylor and Fourier residuals alike at zero weights; Fourier: 24 + 16 fractional bits.)
    lr_params = LRParams.from_mapping(params)
    f_res = lr_params.residual_frac_bits(1, guest=False)
    model = PartyModel(xh, lr_params, intercept=False)
    d_int = [round((0.5 - v) * 2**f_res) for v in y[:240]]
    g_int = [sum(int(a) * b for a, b in zip(col, d_int, strict=True)) for col in model.q[:240].T]
    needles += [struct.pack("<d", v) for v in model.gradient_from_ints(g_int, f_res, 240)]
    needles += [v.to_bytes(16, "big", signed=True)[-8:] for v in g_int]
    needles += [v.to_bytes(16, "little", signed=True)[:8] for v in g_int]
    needles += [
        round(v * 2**24).to_bytes(8, "little", signed=True)
        for v in xh.reshape(-1)[:200]
        if abs(v) > 1e-3
    ]
    assert not [n for n in needles if n in sent]


@pytest.mark.parametrize("mode", ["arbiter", "guest"])
def test_multi_host_weighted_matches_reference(mode: str) -> None:
    xg, xs, y = synthetic()
    params = {**SMALL, "mode": mode, "max_iter": 3, "batch_size": 40, "class_weight": "balanced",
              "optimizer": "adam", "learning_rate": 0.1, "shuffle": True}  # fmt: skip
    out = run(params, xg, xs, y)
    reference(params, xg, xs, y, out)


def test_guest_mode_single_host_l1_schedule_early_stop() -> None:
    xg, xs, y = synthetic(hosts=1)
    params = {
        **SMALL, "mode": "guest", "max_iter": 40, "batch_size": 0, "penalty": "l1",
        "alpha": 0.01, "lr_schedule": "step", "lr_decay": 0.5, "lr_step": 2,
        "early_stopping": True, "tol": 1e-3, "optimizer": "sgd", "learning_rate": 0.5,
    }  # fmt: skip
    out = run(params, xg, xs, y)
    assert out["bank"]["n_iter"] < 40  # stopped early
    reference(params, xg, xs, y, out)


def test_arbiter_two_hosts_unweighted_and_deterministic() -> None:
    xg, xs, y = synthetic(n=60)
    params = {**SMALL, "max_iter": 2, "batch_size": 25, "class_weight": {0: 1.0, 1: 2.0}}
    first = run(params, xg, xs, y)
    reference(params, xg, xs, y, first)
    unweighted = {**SMALL, "max_iter": 2, "batch_size": 25}
    a, b = run(unweighted, xg, xs, y), run(unweighted, xg, xs, y)
    reference(unweighted, xg, xs, y, a)
    for party in ("bank", "host0", "host1"):
        assert a[party] == b[party]  # identical results run to run (fixed point, exact masks)


def test_estimator_fit_and_joint_scoring() -> None:
    xg, xs, y = synthetic(hosts=2)
    features = {"bank": xg, "telco": xs[0], "shop": xs[1]}
    est = HeteroLogisticRegression(
        **SMALL, guest="bank", mode="guest", max_iter=5, batch_size=30, seed=3,
        settings=Settings(mode="development"),
    )  # fmt: skip
    est.fit(features, y)
    proba = est.predict_proba(features)
    z = (
        xg @ est.coef_["bank"]
        + xs[0] @ est.coef_["telco"]
        + xs[1] @ est.coef_["shop"]
        + est.intercept_
    )
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-z)), atol=1e-6)
    assert roc_auc(y, proba[:, 1]) > 0.8
    assert est.predict(features).shape == (y.size,)


class _Tamper(MemoryHub):
    """Corrupts the first message of ``tag`` sent by ``sender``."""

    def __init__(self, sender: str, tag: str, how: str) -> None:
        super().__init__()
        self.sender, self.tag, self.how, self.done = sender, tag, how, False

    def _deliver(self, key: MessageKey, payload: bytes) -> None:
        if key.sender == self.sender and key.tag == self.tag and not self.done:
            self.done = True
            msg = codec.decode(payload)
            vec = dict(msg.vec)
            width = len(vec["ct"]) // vec["count"]
            if self.how == "zero":
                vec["ct"] = bytes(width) + vec["ct"][width:]
            else:
                vec["ct"] = vec["ct"][:-1]
            payload = codec.encode(type(msg)(vec=vec))
        super()._deliver(key, payload)


@pytest.mark.parametrize(
    ("sender", "tag", "how"),
    [("host0", "u", "zero"), ("bank", "d", "short"), ("host0", "masked", "zero")],
)
def test_malformed_ciphertexts_fail_loudly(sender: str, tag: str, how: str) -> None:
    xg, xs, y = synthetic(n=30, hosts=1)
    with pytest.raises(DecodeError):
        run({**SMALL, "max_iter": 1, "batch_size": 0}, xg, xs, y, hub=_Tamper(sender, tag, how))


def test_misaligned_rows_and_bad_params_are_refused() -> None:
    xg, xs, y = synthetic(n=30, hosts=1)
    with pytest.raises(ProtocolAbort, match="align"):
        run({**SMALL, "max_iter": 1}, xg, [xs[0][:-1]], y)
    with pytest.raises(ConfigError):
        LRParams.from_mapping({"optimizer": "lbfgs"})
    with pytest.raises(ConfigError):
        LRParams.from_mapping({"learning_rat": 0.1})
    with pytest.raises(InsecureModeError):
        simulate(hetero_lr_component, {"g": ["guest"], "h": ["host"], "a": ["arbiter"]},
                 params={"key_bits": 1024, "insecure_allow_small_keys": True,
                         "feature_counts": {"g": 3, "h": 2}},
                 inputs={"g": {"X": xg, "y": y}, "h": {"X": xs[0]}})  # fmt: skip


def test_feature_counts_are_agreed_parameters() -> None:
    """The count a key holder decrypts for is public and agreed, never self-declared: the
    component requires it, each party checks its own data, and no party's gradient entries may
    reach a batch's row count (the last, short batch included)."""
    xg, xs, y = synthetic(n=30, hosts=1)
    roles = {"g": ["guest"], "h": ["host"], "a": ["arbiter"]}
    inputs = {"g": {"X": xg, "y": y}, "h": {"X": xs[0]}}

    def go(**params: Any) -> None:
        simulate(hetero_lr_component, roles, params={**SMALL, "max_iter": 1, **params},
                 inputs=inputs, settings=Settings(mode="development"), timeout=30)  # fmt: skip

    with pytest.raises(ConfigError, match="needs the parameter 'feature_counts'"):
        go()
    with pytest.raises(ConfigError, match=r"2 feature columns, feature_counts\['h'\] agreed 3"):
        go(feature_counts={"g": 3, "h": 3})
    with pytest.raises(ConfigError, match=r"exactly the guest and the hosts \['g', 'h'\]"):
        go(feature_counts={"g": 3, "h": 2, "x": 1})
    # Batches of 4 rows = the guest's 3 features + intercept: its gradient would give d.
    with pytest.raises(ConfigError, match="'g' has 4 gradient entries but a batch of only 4"):
        go(feature_counts={"g": 3, "h": 2}, batch_size=4)
    with pytest.raises(ConfigError, match="feature_counts must map"):
        LRParams.from_mapping({"feature_counts": {"g": 0}})
    with pytest.raises(ConfigError, match="feature_counts must map"):
        LRParams.from_mapping({"feature_counts": {"g": 5000}})
    # The in-process estimator holds every party's data: it fills the counts in.
    est = HeteroLogisticRegression(
        **SMALL, guest="g", mode="guest", max_iter=1, batch_size=0, seed=1,
        settings=Settings(mode="development"),
    )  # fmt: skip
    est.fit({"g": xg, "h": xs[0]}, y)
    assert est.coef_["h"].shape == (2,)


def test_a_short_last_batch_is_merged_into_the_previous_one() -> None:
    """30 rows in batches of 13 leave a last batch of 4 rows, no more than the guest's 4
    gradient entries: it is merged (13 + 17 rows) at every party and in the reference."""
    assert [b.size for b in batch_plan(0, 30, 13, 0, False, 5)] == [13, 17]
    assert [b.size for b in batch_plan(0, 30, 13, 0, False, 4)] == [13, 13, 4]
    xg, xs, y = synthetic(n=30, hosts=1)
    params = {**SMALL, "max_iter": 1, "batch_size": 13}
    hub = MemoryHub()
    out = run(params, xg, xs, y, hub=hub)
    reference(params, xg, xs, y, out)
    assert len([k for k, _ in hub.wire if k.sender == "host0" and k.tag == "masked"]) == 2


@pytest.mark.parametrize("mode", ["arbiter", "guest"])
def test_ou_scheme_matches_reference(mode: str) -> None:
    xg, xs, y = synthetic(n=60)
    params = {**SMALL, "scheme": "ou", "mode": mode, "max_iter": 2, "batch_size": 25,
              "class_weight": "balanced"}  # fmt: skip
    out = run(params, xg, xs, y)
    reference(params, xg, xs, y, out)


def test_joint_scoring_hides_each_hosts_partial_score() -> None:
    from privfin.fl.vertical.scoring import FRAC_BITS, vertical_lr_scoring

    rng = np.random.default_rng(4)
    xs = {p: rng.normal(size=(20, 2)) for p in ("bank", "h1", "h2")}
    coef = {p: rng.normal(size=2) for p in xs}
    hub = MemoryHub()
    out = simulate(
        vertical_lr_scoring, {"bank": ["guest"], "h1": ["host"], "h2": ["host"]}, hub=hub,
        inputs={p: {"X": x, "coef": coef[p], **({"intercept": 0.3} if p == "bank" else {})}
                for p, x in xs.items()},
    )  # fmt: skip
    z = sum(xs[p] @ coef[p] for p in xs) + 0.3
    np.testing.assert_allclose(out["bank"]["z"], z, atol=1e-6)
    assert out["h1"]["score"] is None
    for host in ("h1", "h2"):
        u = np.rint(np.ldexp(xs[host] @ coef[host], FRAC_BITS)).astype(np.int64)
        sent = b"".join(p for k, p in hub.wire if k.sender == host and k.receiver == "bank")
        assert u[:4].tobytes() not in sent and u[0].tobytes() not in sent
