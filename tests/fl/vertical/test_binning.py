"""Hetero WOE/IV binning, hetero Pearson and per-party scaling against plaintext references.

Small Paillier keys through the explicit insecure flag (tests only). Rows aligned by id stand
for PSI's aligned output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _datasets import breast_hetero
from privfin.config import Settings
from privfin.errors import ConfigError, DecodeError
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import MessageKey
from privfin.fl.vertical.binning import (
    Scaler,
    hetero_binning_component,
    hetero_pearson_component,
    pearson,
    vertical_scaling_component,
    woe_transform,
)
from privfin.ml import binning
from privfin.runtime import simulate

KEYS = {"key_bits": 768, "insecure_allow_small_keys": True}
DEV = Settings(mode="development")


def breast() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    g, h = breast_hetero()
    h = h.set_index("id").loc[g["id"]].reset_index()
    return g.drop(columns=["id", "y"]), h.drop(columns=["id"]), g["y"].to_numpy(float)


def test_woe_iv_hand_values() -> None:
    stats = binning.woe_iv([10, 30], [50, 50])
    # shares: events (0.25, 0.75), non-events (40/60, 20/60)
    woe0, woe1 = np.log((40 / 60) / 0.25), np.log((20 / 60) / 0.75)
    np.testing.assert_allclose(stats.woe, [woe0, woe1])
    assert stats.iv == pytest.approx((40 / 60 - 0.25) * woe0 + (20 / 60 - 0.75) * woe1)
    with pytest.raises(ConfigError):
        binning.woe_iv([0, 0], [5, 5])


def test_quantile_and_chi_merge() -> None:
    x = np.arange(100.0)
    edges = binning.quantile_edges(x, 4)
    assert np.bincount(binning.apply_bins(x, edges)).tolist() == [25, 25, 25, 25]
    assert binning.apply_bins([np.nan], edges).tolist() == [len(edges) + 1]
    # Two identical-rate halves merge into one bin each.
    groups = binning.chi_merge([1, 1, 9, 9], [10, 10, 10, 10], max_bins=4)
    assert groups == [[0, 1], [2, 3]]
    assert binning.chi_merge([1, 1, 9, 9], [10, 10, 10, 10], max_bins=1) == [[0, 1, 2, 3]]


@pytest.mark.parametrize("method", ["quantile", "chimerge"])
def test_hetero_binning_matches_pooled_plaintext(method: str) -> None:
    xg, xh, y = breast()
    xh = xh.copy()
    xh.iloc[::17, 0] = np.nan  # missing values get their own bin
    params = {**KEYS, "method": method, "reveal_woe_to_hosts": True, "iv_threshold": 0.5}
    out = simulate(
        hetero_binning_component, {"bank": ["guest"], "telco": ["host"]}, params=params,
        inputs={"bank": {"X": xg, "y": y}, "telco": {"X": xh}}, settings=DEV,
    )  # fmt: skip
    bank, telco = out["bank"], out["telco"]
    for j, name in enumerate(xh.columns):
        edges = telco["edges"][j]
        ev, tot = binning.bin_counts(binning.apply_bins(xh[name], edges), y, len(edges) + 2)
        ref = binning.woe_iv(ev, tot)
        assert bank["iv"]["telco"][name] == pytest.approx(ref.iv, abs=1e-12)
        assert bank["woe"]["telco"][name] == pytest.approx(ref.woe.tolist(), abs=1e-12)
        # Hosts get their WOE rounded to woe_decimals (default 1).
        assert telco["woe"][j] == [round(v, 1) for v in ref.woe.tolist()]
    if method == "chimerge":
        assert all(len(e) + 1 <= 10 for e in telco["edges"])
    kept = {f for f, v in bank["iv"]["telco"].items() if v >= 0.5}
    assert set(telco["selected"]) == kept == set(bank["selected"]["telco"])
    w = woe_transform(xh.to_numpy(), telco["edges"], telco["woe"])
    assert w.shape == xh.shape and np.all(np.isfinite(w))


def test_woe_stays_with_guest_by_default_and_tamper_fails() -> None:
    xg, xh, y = breast()
    out = simulate(
        hetero_binning_component, {"bank": ["guest"], "telco": ["host"]}, params=KEYS,
        inputs={"bank": {"X": xg, "y": y}, "telco": {"X": xh}}, settings=DEV,
    )  # fmt: skip
    assert out["telco"]["woe"] is None

    class Tamper(MemoryHub):
        def _deliver(self, key: MessageKey, payload: bytes) -> None:
            if key.tag == "labels":
                msg = codec.decode(payload)
                col = dict(msg.columns[0])
                col["ct"] = bytes(len(col["ct"]))
                payload = codec.encode(type(msg)(columns=[col]))
            super()._deliver(key, payload)

    with pytest.raises(DecodeError):
        simulate(
            hetero_binning_component, {"bank": ["guest"], "telco": ["host"]}, params=KEYS,
            inputs={"bank": {"X": xg, "y": y}, "telco": {"X": xh}}, settings=DEV, hub=Tamper(),
        )  # fmt: skip


def test_hetero_pearson_matches_numpy() -> None:
    xg, xh, _ = breast()
    xg, xh = xg.iloc[:200, :4], xh.iloc[:200, :6]
    out = simulate(
        hetero_pearson_component, {"bank": ["guest"], "telco": ["host"]},
        params={**KEYS, "reveal_to_hosts": True, "feature_counts": {"bank": 4, "telco": 6}},
        inputs={"bank": {"X": xg}, "telco": {"X": xh}}, settings=DEV,
    )  # fmt: skip
    ref = np.corrcoef(xg.to_numpy().T, xh.to_numpy().T)[:4, 4:]
    np.testing.assert_allclose(out["bank"]["corr"]["telco"], ref, atol=1e-4)
    np.testing.assert_allclose(out["telco"]["corr"], ref, atol=1e-4)
    # By default the host gets nothing back.
    hub = MemoryHub()
    out = simulate(
        hetero_pearson_component, {"bank": ["guest"], "telco": ["host"]},
        params={**KEYS, "feature_counts": {"bank": 4, "telco": 6}},
        inputs={"bank": {"X": xg}, "telco": {"X": xh}}, settings=DEV, hub=hub,
    )  # fmt: skip
    np.testing.assert_allclose(out["bank"]["corr"]["telco"], ref, atol=1e-4)
    assert out["telco"]["corr"] is None
    assert not [k for k, _ in hub.wire if k.receiver == "telco" and k.tag == "corr"]


def test_pearson_quantisation_sums_to_zero() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    spike = np.zeros(n)
    spike[7] = 1.0  # standardised: one value near sqrt(n) = 44.7 sd, clipped at 32
    z = np.column_stack([rng.standard_normal(n), spike])
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    q = pearson.quantise(z)
    assert q.sum(axis=0).tolist() == [0, 0]
    assert int(np.abs(q).max()) < 2**pearson.QUANT_BITS
    # Each entry moves by at most ceil(|rounding residue| / n) from its rounded value.
    scale = (2 ** (pearson.QUANT_BITS - 1) - 1) / pearson.CLIP
    rounded = np.rint(np.clip(z, -32, 32) * scale)
    moved = np.abs(q - rounded).max(axis=0)
    limits = np.array([-(-abs(r) // n) for r in rounded.sum(axis=0)])
    assert np.all(moved <= limits)
    assert moved[0] <= 1 < moved[1]  # the clipped spike needed a shift of every entry


def test_scaling_is_local() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, size=(50, 3))
    hub = MemoryHub()
    out = simulate(
        vertical_scaling_component, {"a": ["guest"], "b": ["host"]}, params={"method": "standard"},
        inputs={"a": {"X": x}, "b": {"X": x[:, :1]}}, hub=hub,
    )  # fmt: skip
    assert not hub.wire  # nothing exchanged
    np.testing.assert_allclose(out["a"]["X"].mean(axis=0), 0, atol=1e-12)
    mm = Scaler("minmax").fit(x).transform(x)
    assert mm.min() == 0.0 and mm.max() == 1.0
