"""[08] item 4: a malicious host in hetero Pearson.

Before [08] the guest decrypted any packed vector whose size was a multiple of its feature count
and returned it: a host that packed the guest's own encrypted columns read the guest's
standardised feature matrix. Each test plays the host by monkeypatching a host-only piece of the
honest role (``quantise`` and ``encrypted_matvec`` in the Pearson module, which the guest never
calls, or the setup message it sends) and asserts a :class:`ProtocolAbort` naming the host
with nothing sent back, or states exactly what the residual leak is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from privfin.config import Settings
from privfin.errors import ConfigError, ProtocolAbort
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import Channel
from privfin.fl.vertical.binning import hetero_pearson_component, pearson
from privfin.fl.vertical.binning.messages import PearsonSetup
from privfin.runtime import simulate

KEYS = {"key_bits": 768, "insecure_allow_small_keys": True}
DEV = Settings(mode="development")
ROLES = {"bank": ["guest"], "telco": ["host"]}
N, D_G, D_H = 120, 3, 2
AGREED = {"bank": D_G, "telco": D_H}  # public, in the job spec


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    xg = rng.normal(size=(N, D_G))
    xh = np.column_stack([xg[:, 0] + rng.normal(size=N), rng.normal(size=N)])
    return xg, xh


def run(params: dict[str, Any] | None = None, hub: MemoryHub | None = None) -> dict[str, Any]:
    xg, xh = data()
    return simulate(
        hetero_pearson_component, ROLES,
        params={**KEYS, "feature_counts": AGREED, **(params or {})},
        inputs={"bank": {"X": xg}, "telco": {"X": xh}}, settings=DEV, hub=hub,
    )  # fmt: skip


def assert_aborts_naming_host(match: str, params: dict[str, Any] | None = None) -> None:
    hub = MemoryHub()
    with pytest.raises(ProtocolAbort, match=match) as info:
        run({"reveal_to_hosts": True, **(params or {})}, hub)
    assert info.value.party == "telco"
    assert not [k for k, _ in hub.wire if k.receiver == "telco" and k.tag == "corr"]


def test_packing_back_the_guests_columns_aborts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's attack, within the exact count: the 'products' are the guest's own
    ciphertexts of rows 0..d_h-1 (the announced count is respected). Each carries the guest's
    secret column weight K * rho_a, which no zero-sum combination has: out of range."""
    monkeypatch.setattr(
        pearson, "encrypted_matvec", lambda pk, cts, q, bits: list(cts[: q.shape[1]])
    )
    assert_aborts_naming_host("outside the honest range")


def announce(monkeypatch: pytest.MonkeyPatch, d_h: int) -> None:
    """The host's setup message announces ``d_h`` features (whatever it holds)."""
    real = Channel.send

    def send(self: Channel, peer: str, tag: str, message: object) -> None:
        if isinstance(message, PearsonSetup):
            message = PearsonSetup(n_features=d_h)
        real(self, peer, tag, message)

    monkeypatch.setattr(Channel, "send", send)


def test_more_products_than_agreed_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host announces the agreed count but returns one product more."""
    real = pearson.encrypted_matvec

    def one_more(pk: Any, cts: Any, q: np.ndarray, bits: int) -> list[Any]:
        out: list[Any] = real(pk, cts, q, bits)
        return [*out, out[0]]

    monkeypatch.setattr(pearson, "encrypted_matvec", one_more)
    assert_aborts_naming_host(f"not {D_G} x {D_H} values")


def test_weights_that_do_not_sum_to_zero_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 'feature' that is one row scaled up (weights e_i: sum 1) reads z_g[i, :] if unchecked;
    so does plain rounding without the zero-sum correction (sum = rounding residue)."""

    def one_row(z: np.ndarray) -> np.ndarray:
        q = np.zeros(z.shape, dtype=np.int64)
        q[7, :] = 2**18
        return q

    monkeypatch.setattr(pearson, "quantise", one_row)
    assert_aborts_naming_host("outside the honest range")


def test_unstandardised_features_fail_the_range_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zero-sum weights, but ten times the standardised scale: |corr| > 1.01."""
    real = pearson.quantise
    monkeypatch.setattr(pearson, "quantise", lambda z: real(z * 10))
    assert_aborts_naming_host("outside \\[-1.01, 1.01\\]")


@pytest.mark.parametrize("d_h", [D_H - 1, D_H + 1, pearson.BinParams().max_features + 1, N // 2])
def test_a_host_announcing_another_count_than_agreed_aborts(
    monkeypatch: pytest.MonkeyPatch, d_h: int
) -> None:
    """``d_h`` is public and agreed (``feature_counts``): any other announcement, and so any
    count beyond ``max_features`` or half the rows, stops the run naming the host."""
    announce(monkeypatch, d_h)
    assert_aborts_naming_host(f"announced {d_h} features, {D_H} were agreed")


def test_agreed_counts_are_required_and_bounded() -> None:
    """Every party checks the public counts: present, its own data matching, below n/2."""
    with pytest.raises(ConfigError, match="needs the parameter 'feature_counts'"):
        run({"feature_counts": None})
    with pytest.raises(
        ConfigError, match="2 feature columns, feature_counts\\['telco'\\] agreed 3"
    ):
        run({"feature_counts": {"bank": D_G, "telco": 3}})
    with pytest.raises(ConfigError, match="exactly the parties"):
        run({"feature_counts": {"bank": D_G, "telco": D_H, "x": 1}})
    wide = np.random.default_rng(0).normal(size=(N, N // 2))
    with pytest.raises(ConfigError, match=r"'bank'\] = 60: .* fewer columns than half the 120"):
        simulate(
            hetero_pearson_component, ROLES,
            params={**KEYS, "feature_counts": {"bank": N // 2, "telco": D_H}},
            inputs={"bank": {"X": wide}, "telco": {"X": data()[1]}}, settings=DEV,
        )  # fmt: skip


def test_residual_leak_is_zero_sum_combinations_and_only_if_revealed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What remains (SPEC.md): a host that chooses zero-sum 'features' w = c * (e_i - e_j)
    learns, *only* with reveal_to_hosts, z_g[i, a] - z_g[j, a] for every guest column a: at
    most d_guest * d_h values per run. By default it learns nothing."""
    c = 2**18
    pairs = [(3, 4), (10, 90)]

    def differences(z: np.ndarray) -> np.ndarray:
        q = np.zeros(z.shape, dtype=np.int64)
        for b, (i, j) in enumerate(pairs):
            q[i, b], q[j, b] = c, -c
        return q

    monkeypatch.setattr(pearson, "quantise", differences)
    out = run()  # default: nothing revealed
    assert out["telco"]["corr"] is None
    out = run({"reveal_to_hosts": True})
    zg = pearson.standardise(data()[0])
    scale = (2 ** (pearson.QUANT_BITS - 1) - 1) / pearson.CLIP
    leaked = np.asarray(out["telco"]["corr"]) * N * scale / c
    want = np.array([[zg[i, a] - zg[j, a] for i, j in pairs] for a in range(D_G)])
    np.testing.assert_allclose(leaked, want, atol=1e-4)
    assert leaked.size == D_G * D_H


def test_honest_run_unchanged() -> None:
    out = run({"reveal_to_hosts": True})
    xg, xh = data()
    ref = np.corrcoef(xg.T, xh.T)[:D_G, D_G:]
    np.testing.assert_allclose(out["bank"]["corr"]["telco"], ref, atol=1e-4)
    np.testing.assert_allclose(out["telco"]["corr"], ref, atol=1e-4)


def _crafted_guest(n_columns: int, stolen: dict[str, np.ndarray]) -> Any:
    """The component, with the guest replaced by a malicious one (red team 4B): instead of its
    standardised columns it sends ``n_columns`` unit vectors ``e_i * 2**16`` and decrypts the
    products ``q[i, b]``: row ``i`` of the host's quantised standardised matrix. The host runs
    the honest code."""
    from privfin.fl.vertical.binning.common import BinParams, new_keypair
    from privfin.fl.vertical.binning.messages import BinKey, Correlations, EncryptedColumns
    from privfin.he._packed import PackedEncryptedVector
    from privfin.runtime import Context

    def component(ctx: Context, params: dict[str, Any], inputs: dict[str, Any]) -> Any:
        if not ctx.has_role("guest"):
            return hetero_pearson_component(ctx, params, inputs)
        p = BinParams.from_mapping(KEYS)
        pk, sk = new_keypair(ctx, p)
        ctx.channel.broadcast("key", BinKey(key=pk.to_wire()), peers=["telco"])
        d_h = ctx.channel.recv("telco", "setup", expect=PearsonSetup).n_features
        cols = []
        for i in range(n_columns):
            e = [0] * N
            e[i] = 1 << pearson.FRAC_BITS
            cols.append(pk.encrypt(e, value_bits=pearson._column_bits(N)).to_wire())
        ctx.channel.send("telco", "columns", EncryptedColumns(columns=cols))
        msg = ctx.channel.recv("telco", "products", expect=Correlations)
        assert msg.packed is not None
        vals = sk.decrypt(PackedEncryptedVector.from_wire(pk, msg.packed))
        q = np.asarray(vals, dtype=float).reshape(n_columns, d_h) / 2**pearson.FRAC_BITS
        stolen["z"] = q * pearson.CLIP / (2 ** (pearson.QUANT_BITS - 1) - 1)
        return {}

    return component


def test_a_guest_sending_more_columns_than_agreed_aborts() -> None:
    """Red team 4B: n/2 - 1 = 59 crafted columns would give the guest 59 rows of the host's
    standardised matrix. The host refuses any count but the agreed d_g, naming the guest,
    and computes nothing."""
    stolen: dict[str, np.ndarray] = {}
    hub = MemoryHub()
    xg, xh = data()
    with pytest.raises(ProtocolAbort, match="sent 59 encrypted columns, 3 were agreed") as info:
        simulate(
            _crafted_guest(N // 2 - 1, stolen), ROLES,
            params={**KEYS, "feature_counts": AGREED},
            inputs={"bank": {"X": xg}, "telco": {"X": xh}}, settings=DEV, hub=hub,
        )  # fmt: skip
    assert info.value.party == "bank"
    assert not stolen
    assert not [k for k, _ in hub.wire if k.sender == "telco" and k.tag == "products"]


def test_a_guest_within_the_agreed_count_reads_at_most_d_g_times_d_h_values() -> None:
    """What remains (binning SPEC.md): the host cannot check that the guest's encrypted
    columns are standardised features, so a guest within its agreed ``d_g`` columns chooses
    ``d_g`` linear functionals of each host column: here rows 0..d_g-1 of the host's
    standardised matrix, ``d_g * d_h`` = 6 values per run and no more."""
    stolen: dict[str, np.ndarray] = {}
    xg, xh = data()
    simulate(
        _crafted_guest(D_G, stolen), ROLES, params={**KEYS, "feature_counts": AGREED},
        inputs={"bank": {"X": xg}, "telco": {"X": xh}}, settings=DEV,
    )  # fmt: skip
    want = pearson.standardise(xh)[:D_G]
    assert stolen["z"].shape == (D_G, D_H)
    np.testing.assert_allclose(stolen["z"], want, atol=1e-4)
